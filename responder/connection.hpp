// Drives one session over a pair of file descriptors (fd 0 and fd 1 under
// inetd, systemd Accept=yes, or an SSH forced command).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "config.hpp"
#include "limits.hpp"
#include "peer.hpp"
#include "session.hpp"

struct mpasswdd_tls_context;

namespace mpasswdd {

using Clock = std::chrono::steady_clock;

// Milliseconds left until deadline, for poll() (0 once it has passed).
int millis_until(Clock::time_point deadline);

// Waits until fd is ready for events (POLLIN, POLLOUT) or deadline passes.
// False on timeout or error; EINTR is retried.
bool wait_fd(int fd, short events, Clock::time_point deadline);

// The byte stream of one connection: plain file descriptors, or TLS on
// the inherited socket.
class Channel {
public:
    virtual ~Channel() = default;
    // The descriptor to poll for input.
    [[nodiscard]] virtual int poll_fd() const = 0;
    // Input already received and decoded, readable without waiting.
    [[nodiscard]] virtual bool pending() const { return false; }
    // > 0 octets read, 0 end of input, -1 error, -2 nothing yet (poll).
    virtual ssize_t read(char* buf, std::size_t n) = 0;
    // False if the peer is gone or too slow for deadline.
    virtual bool write_all(std::string_view data, Clock::time_point deadline) = 0;
    // The orderly end after the last reply (see linger_close).
    virtual void finish() = 0;
};

// fd 0 and fd 1 (inetd, systemd Accept=yes, an SSH forced command).
std::unique_ptr<Channel> fd_channel(int in_fd, int out_fd);

struct TlsError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The TLS files of the configuration.
struct TlsFiles {
    std::string certificate;
    std::string key;
    std::string client_ca;  // empty: no client certificate asked for
};

// A server context with the files loaded (OpenSSL initialised first): made
// before the process is confined, since the files cannot be read after.
// Server TLS is the plug-in mpasswdd-tls.so (tls_plugin.hpp), loaded by
// the first of these calls: a plug-in that cannot be loaded is a
// TlsError. Throws TlsFileError.
struct TlsContextFree {
    void operator()(mpasswdd_tls_context* ctx) const;
};
using TlsContext = std::unique_ptr<mpasswdd_tls_context, TlsContextFree>;
TlsContext tls_context(const TlsFiles& files);

// Server-side TLS on the socket fd (implicit TLS, before the banner): TLS
// 1.2 at least, no compression or renegotiation, the library's default
// ciphers; with tls_client_ca a verified client certificate is required,
// and its subject and fingerprint are put into *peer. Throws TlsError
// with the reason when the handshake fails or does not finish by deadline
// (the idle timeout or the end of the login grace time, the sooner).
std::unique_ptr<Channel> tls_channel(TlsContext context, int fd, Clock::time_point deadline,
                                     Peer* peer);

// tls_certificate, tls_key or tls_client_ca cannot be used (not a regular
// file, unreadable, not PEM, ...): a configuration error, found before
// anything is read from the peer. The message names the key and the file.
struct TlsFileError : TlsError {
    using TlsError::TlsError;
};

// Loads the TLS files as tls_channel does (for --check-config). Throws
// TlsFileError.
void check_tls_files(const Config& config);

struct Timeouts {
    std::chrono::milliseconds idle = mctp::limits::idle_timeout_default;
    std::chrono::milliseconds session = mctp::limits::session_timeout_default;
    // The end of the login grace time (connect + login_grace_time): until
    // the first successful AUTH, no command extends it.
    Clock::time_point login_deadline = Clock::time_point::max();
};

enum class ConnectionEnd { closed, peer_gone, io_error };

// Sends the banner for verdict, then reads lines until the session
// closes, the peer goes, or a timeout fires. Every wait is bounded by the
// idle and session timeouts, writes included, and until the first
// successful AUTH by the login deadline; a peer that keeps sending is
// stopped by them too.
ConnectionEnd run_connection(mctp::Session& session, mctp::PeerVerdict verdict, Channel& channel,
                             Timeouts timeouts);

// The orderly end of a connection the responder closes (521, 421, 221):
// when out_fd is a socket, shuts down its sending side (FIN after the last
// reply), then reads and discards (wiped) what the peer still sends, until
// the peer closes, limits::linger_max passes or limits::linger_bytes_max
// have been read. Closing with unread input would make the kernel send a
// reset, and a reset makes the client's kernel drop the final reply before
// the client reads it (a controller that sent QUIT right behind its first
// command would lose the 521 that explains the refusal). No-op on pipes.
void linger_close(int in_fd, int out_fd);

}  // namespace mpasswdd
