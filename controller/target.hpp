// Targets: the hosts a controller changes passwords on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mpasswd {

struct Target {
    std::string host;  // a host name or an IP address (IPv6 without brackets)
    std::uint16_t port = 0;
    std::string origin;  // where it was named: "FILE:LINE" or "-H"

    // "host:port", "[v6]:port": how it is shown and put in JSON.
    [[nodiscard]] std::string label() const;
};

// "host", "host:port", "1.2.3.4", "1.2.3.4:port", "[v6]", "[v6]:port"
// or a bare IPv6 address. Host names are letters, digits, '-' and '.',
// labels of at most 63 and 253 in all. On error returns nullopt and says
// why in *why.
std::optional<Target> parse_target(std::string_view text, std::uint16_t default_port,
                                   std::string* why);

// A hosts file: one target per line, '#' starts a comment, blank lines
// are ignored. Throws mctp::cfg::ConfigError naming FILE:LINE for a bad
// line, a target listed twice, or more than limits::targets_max targets.
std::vector<Target> load_hosts_file(const std::string& path, std::uint16_t default_port);

// The same, from text already read (path is used in messages only).
std::vector<Target> parse_hosts(const std::string& text, const std::string& path,
                                std::uint16_t default_port);

}  // namespace mpasswd
