// Who is on the other end of fd 0, and the address rules of controllers.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mpasswdd {

// A peer is either local (a pipe, a UNIX socket) or an IP address, kept
// as 16 octets with IPv4 as v4-mapped IPv6 so one comparison serves both.
struct Peer {
    bool local = true;
    std::array<std::uint8_t, 16> address{};
    std::string text = "local";
    // Over TLS with a verified client certificate: its subject (RFC 2253)
    // and SHA-256 fingerprint (lower-case hex); empty otherwise.
    std::string tls_subject;
    std::string tls_fingerprint;
    // Over TLS 1.3: the 32 octets of the tls-exporter channel binding (RFC
    // 9266) for SCRAM-SHA-256-PLUS; empty otherwise.
    std::string tls_exporter;
};

// One entry of a controller's `from` list: `local`, or an address with an
// optional /prefix.
struct AddressRule {
    bool local = false;
    std::array<std::uint8_t, 16> address{};
    unsigned prefix = 128;  // in the 128-bit space

    [[nodiscard]] bool matches(const Peer& peer) const noexcept;
};

// Parses `local`, `192.0.2.1`, `192.0.2.0/24`, `2001:db8::/32`,
// `::ffff:192.0.2.1`. Host bits beyond the prefix must be zero.
std::optional<AddressRule> parse_address_rule(std::string_view text, std::string* error);

// The peer of a connected socket on fd, or local for a pipe, a terminal
// or a UNIX socket.
Peer peer_of_fd(int fd);

// The client address from SSH_CONNECTION ("client port server port").
std::optional<Peer> peer_from_ssh_connection(std::string_view value);

// Parses an IP address (no prefix) into a Peer.
std::optional<Peer> parse_ip(std::string_view text);

}  // namespace mpasswdd
