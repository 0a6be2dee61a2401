// Targets: the hosts a controller changes passwords on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mpasswd {

// How a target is reached: MCTP over plain TCP (loopback, or a network
// declared trusted with insecure_plaintext), or through the system ssh
// client to an mpasswdd forced command.
enum class Via { tcp, tls, ssh };

std::string_view via_name(Via via) noexcept;

struct Target {
    std::string host;  // a host name or an IP address (IPv6 without brackets)
    std::uint16_t port = 0;
    std::string origin;  // where it was named: "FILE:LINE" or "-H"
    Via via = Via::tcp;
    // Plain TCP to an address that is not loopback is refused unless set.
    bool insecure_plaintext = false;
    // tls: the server certificate's SHA-256 fingerprint it must have (64
    // lower-case hex digits); empty: verified against the CA and host name.
    std::string tls_fingerprint{};
    // auth=plain: the old AUTH <secret> instead of SCRAM-SHA-256 (an old
    // responder; the secret goes to whoever answers).
    bool auth_plain = false;

    // "host:port", "[v6]:port": how it is shown and put in JSON.
    [[nodiscard]] std::string label() const;
};

// What a target gets where its line says nothing.
struct TargetDefaults {
    TargetDefaults(std::uint16_t tcp_port) : port(tcp_port) {}  // NOLINT: implicit on purpose
    std::uint16_t port;            // for tcp targets
    std::uint16_t ssh_port = 22;   // for ssh targets
    Via via = Via::tcp;
    bool insecure_plaintext = false;
};

// "host", "host:port", "1.2.3.4", "1.2.3.4:port", "[v6]", "[v6]:port"
// or a bare IPv6 address. Host names are letters, digits, '-' and '.',
// labels of at most 63 and 253 in all. On error returns nullopt and says
// why in *why.
std::optional<Target> parse_target(std::string_view text, std::uint16_t default_port,
                                   std::string* why);

// Targets named on the command line (mpasswd -H HOST[:PORT], in order):
// each with the defaults' transport and insecure_plaintext, and the
// port for that transport where it names none; origin "-H". On a bad
// target or one named twice returns nullopt, and *why says which
// ("-H TEXT: why").
std::optional<std::vector<Target>> parse_target_args(const std::vector<std::string>& args,
                                                     const TargetDefaults& defaults,
                                                     std::string* why);

// One line of a hosts file, its comment removed and trimmed:
// "HOST[:PORT] [OPTION...]", where an option is "tcp", "tls", "ssh",
// "insecure_plaintext", "auth=plain" or "tls_fingerprint=SHA256" (which
// implies tls). On error returns nullopt and says why in *why. The hosts
// file itself (groups, limits) is read by inventory.hpp.
std::optional<Target> parse_hosts_line(std::string_view line, const TargetDefaults& defaults,
                                      std::string* why);

}  // namespace mpasswd
