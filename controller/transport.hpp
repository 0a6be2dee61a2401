// The one interface between the fan-out engine and a way of reaching a
// target (plain TCP here; TLS and SSH plug in beside it).
#pragma once

#include <asio/awaitable.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "target.hpp"

namespace mpasswd {

// An open, bidirectional byte stream to one target. Every operation must
// honour asio per-operation cancellation: the engine cancels the one in
// progress when a step's timeout expires.
class Stream {
public:
    virtual ~Stream() = default;
    // Reads at least one byte; throws std::system_error (asio::error::eof
    // at end of stream).
    virtual asio::awaitable<std::size_t> read_some(std::span<char> buffer) = 0;
    // Writes every byte or throws std::system_error.
    virtual asio::awaitable<void> write_all(std::span<const char> bytes) = 0;
    virtual void close() noexcept = 0;
    // TLS 1.3: the 32 octets of the tls-exporter channel binding (RFC
    // 9266) for SCRAM-SHA-256-PLUS; empty otherwise.
    [[nodiscard]] virtual std::string tls_exporter() const { return {}; }
};

// Why a transport could not open a stream, when it is not a plain
// std::system_error (e.g. a certificate that does not verify).
struct TransportError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A target that could not be authenticated, or a channel that would not
// be secure (plain TCP beyond loopback without insecure_plaintext): the
// engine reports it as `untrusted`. Thrown before anything secret is sent.
struct UntrustedError : TransportError {
    using TransportError::TransportError;
};

class Transport {
public:
    virtual ~Transport() = default;
    // Opens a stream to the target on the calling coroutine's executor.
    // Throws std::system_error or TransportError.
    virtual asio::awaitable<std::unique_ptr<Stream>> connect(const Target& target) = 0;
};

// Plain TCP, IPv4 and IPv6; host names through the system resolver. A
// target that resolves to any address that is not loopback is refused
// (UntrustedError) unless its insecure_plaintext is set.
std::unique_ptr<Transport> make_tcp_transport();

// The system ssh client to a target whose authorized_keys runs "mpasswdd
// --ssh" as a forced command; MCTP runs over ssh's standard input and
// output. ssh is started so that nothing of the calling user's reaches it
// (pam_mctp runs inside setuid passwd): -F with the configured file or
// /dev/null (never ~/.ssh/config), real and effective uid root, a clean
// environment, no descriptors but its three, its own session (no
// terminal), default signals and limits, no control master, proxy, agent
// or forwarding, BatchMode and strict host key checking (see ssh_argv).
// ssh's own messages become the reason of a failure; a host key that
// does not verify is an UntrustedError. Nothing is written before ssh has
// authenticated the host, since the engine first reads the banner.
struct SshSettings {
    std::string command = "/usr/bin/ssh";
    std::string user = "root";
    std::string identity;     // empty: ssh's default identities (root's)
    std::string known_hosts;  // empty: ssh's default known-hosts files (root's)
    unsigned connect_timeout_s = 5;  // ssh's ConnectTimeout, whole seconds
    std::string config;       // ssh -F FILE; empty: /dev/null
};
// Throws TransportError when `config` is not a regular file that only root
// (or the caller) may write.
std::unique_ptr<Transport> make_ssh_transport(SshSettings settings);

// TLS 1.2 or later over TCP (OpenSSL through asio::ssl). The server
// certificate is verified against `ca` (empty: the system store) and the
// target's host name or IP address, or, when the target has a
// tls_fingerprint, only against that pin. Any failure to set up a
// verified channel is an UntrustedError, before anything is sent. An
// optional client certificate (certificate and key, PEM; the key file
// must be private) is presented to responders that ask for one.
struct TlsSettings {
    std::string ca;
    std::string certificate;
    std::string key;
};
// Throws TransportError when a file cannot be used.
std::unique_ptr<Transport> make_tls_transport(const TlsSettings& settings);

// TCP, TLS or SSH, by each target's `via`, for these targets. When one of
// them uses TLS (ssh) the TLS context (ssh settings) is made here, so a
// TLS file or ssh_config that cannot be used throws TransportError before
// anything is sent; without such targets no such file is read.
std::unique_ptr<Transport> make_transport(SshSettings ssh, const TlsSettings& tls,
                                          const std::vector<Target>& targets);

}  // namespace mpasswd
