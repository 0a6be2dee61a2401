// Dot-stuffing of data lines (RFC 5321 4.5.2, RFC 1204): a line of one
// "." ends the data, so a data line that starts with '.' goes on the wire
// with one more. The client stuffs, the session unstuffs; both take the
// rule from here.
#pragma once

#include <string_view>

namespace mctp::dot {

// The line that ends the data.
inline constexpr std::string_view end = ".";

// What goes on the wire before a data line: "." when it starts with '.'.
constexpr std::string_view stuffing(std::string_view line) noexcept {
    return line.starts_with('.') ? end : std::string_view();
}

// Whether a received line (terminator removed) ends the data.
constexpr bool is_end(std::string_view wire) noexcept { return wire == end; }

// A received data line (not the end) back as it was before stuffing.
constexpr std::string_view unstuff(std::string_view wire) noexcept {
    return wire.starts_with('.') ? wire.substr(1) : wire;
}

}  // namespace mctp::dot
