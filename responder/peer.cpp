#include "peer.hpp"

#include <arpa/inet.h>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>

namespace mpasswdd {
namespace {

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_v4_mapped(const std::array<std::uint8_t, 16>& a) {
    return std::memcmp(a.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size()) == 0;
}

std::string to_text(const std::array<std::uint8_t, 16>& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (is_v4_mapped(a)) {
        inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
    }
    return buf;
}

Peer make_ip_peer(const std::array<std::uint8_t, 16>& a) {
    Peer p;
    p.local = false;
    p.address = a;
    p.text = to_text(a);
    return p;
}

}  // namespace

std::optional<Peer> parse_ip(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
        return std::nullopt;
    }
    const std::string s(text);
    std::array<std::uint8_t, 16> a{};
    in_addr v4{};
    if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
        std::memcpy(a.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size());
        std::memcpy(a.data() + 12, &v4, 4);
        return make_ip_peer(a);
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
        std::memcpy(a.data(), &v6, 16);
        return make_ip_peer(a);
    }
    return std::nullopt;
}

bool AddressRule::matches(const Peer& peer) const noexcept {
    if (local || peer.local) {
        return local && peer.local;
    }
    unsigned bits = prefix;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
        const unsigned take = bits >= 8 ? 8 : bits;
        const auto mask = static_cast<std::uint8_t>(0xFF00U >> take);
        if ((peer.address[i] & mask) != (address[i] & mask)) {
            return false;
        }
        bits -= take;
    }
    return true;
}

std::optional<AddressRule> parse_address_rule(std::string_view text, std::string* error) {
    AddressRule rule;
    if (text == "local") {
        rule.local = true;
        return rule;
    }
    std::string_view addr = text;
    std::optional<unsigned> prefix;
    if (const auto slash = text.find('/'); slash != std::string_view::npos) {
        addr = text.substr(0, slash);
        const std::string_view digits = text.substr(slash + 1);
        unsigned n = 0;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
            *error = "bad prefix length in '" + std::string(text) + "'";
            return std::nullopt;
        }
        prefix = n;
    }
    const auto ip = parse_ip(addr);
    if (!ip) {
        *error = "'" + std::string(text) + "' is not an address, a CIDR block or 'local'";
        return std::nullopt;
    }
    const bool v4 = is_v4_mapped(ip->address) && addr.find(':') == std::string_view::npos;
    const unsigned width = v4 ? 32 : 128;
    if (prefix && *prefix > width) {
        *error = "prefix length of '" + std::string(text) + "' is more than " +
                 std::to_string(width);
        return std::nullopt;
    }
    rule.address = ip->address;
    rule.prefix = (v4 ? 96 : 0) + prefix.value_or(width);
    // Host bits set beyond the prefix usually mean a typo (10.1.2.3/8).
    for (unsigned b = rule.prefix; b < 128; ++b) {
        if ((rule.address[b / 8] >> (7 - b % 8)) & 1U) {
            *error = "'" + std::string(text) + "' has host bits set beyond its prefix";
            return std::nullopt;
        }
    }
    return rule;
}

Peer peer_of_fd(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        return Peer{};  // a pipe or a terminal: local
    }
    std::array<std::uint8_t, 16> a{};
    if (ss.ss_family == AF_INET) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
        std::memcpy(a.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size());
        std::memcpy(a.data() + 12, &sin->sin_addr, 4);
        return make_ip_peer(a);
    }
    if (ss.ss_family == AF_INET6) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        std::memcpy(a.data(), &sin6->sin6_addr, 16);
        return make_ip_peer(a);
    }
    return Peer{};  // AF_UNIX and anything else on this host
}

std::optional<Peer> peer_from_ssh_connection(std::string_view value) {
    return parse_ip(value.substr(0, value.find(' ')));
}

}  // namespace mpasswdd
