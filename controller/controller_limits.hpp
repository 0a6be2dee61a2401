// Every limit and default of the controller side, in one place.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "limits.hpp"

namespace mpasswd::limits {

using std::chrono::milliseconds;

// The project's TCP port (not in /etc/services; poppassd has 106).
inline constexpr std::uint16_t default_port = 4242;

inline constexpr std::size_t targets_max = 10'000;
inline constexpr std::size_t hosts_line_max = 1024;
// Inventories (inventory.hpp): an Ansible INI inventory's lines, the
// names one host range may stand for, the groups of one inventory, and
// its entries (each host in each group, each child group, each variable),
// counted after ranges are expanded.
inline constexpr std::size_t inventory_line_max = 4096;
inline constexpr std::size_t range_names_max = targets_max;
inline constexpr std::size_t groups_max = 4096;
inline constexpr std::size_t inventory_entries_max = 100'000;
inline constexpr std::size_t group_name_max = 255;
// --limit and limit=: the pattern's length and its terms.
inline constexpr std::size_t limit_max = 4096;
inline constexpr std::size_t limit_terms_max = 256;

// `parallel = auto` (0 in the settings), the default: as many targets at
// once as RLIMIT_NOFILE has room for, asking for room for
// parallel_auto_want (see DescriptorRoom). An explicit 1 to parallel_max
// wins.
inline constexpr unsigned parallel_auto = 0;
inline constexpr unsigned parallel_auto_want = 1024;
inline constexpr unsigned parallel_default = parallel_auto;
inline constexpr unsigned parallel_max = 4096;

inline constexpr milliseconds connect_timeout_default{5'000};
// Longer than a responder's failed-AUTH delay (2 s by default) and a
// PAM change with yescrypt and a dictionary check.
inline constexpr milliseconds reply_timeout_default{15'000};
// A target that answers each step just in time still ends here.
inline constexpr milliseconds target_timeout_default{60'000};
inline constexpr milliseconds timeout_min{100};
inline constexpr milliseconds timeout_max{3'600'000};
// QUIT after a refusal is a courtesy: never wait long for it.
inline constexpr milliseconds quit_timeout{2'000};

// A responder's line_max is mctp::limits::line_max_min to line_max_max
// octets; a reply longer than the largest is not MCTP.
inline constexpr std::size_t reply_line_max = mctp::limits::line_max_max;
// "AUTH " (5) + secret + CRLF (2) fits the default line_max, so every
// responder left at its default takes it (mpasswdd --hash-secret writes
// line_max_min - 7 for the same rule).
inline constexpr std::size_t secret_max = mctp::limits::line_max_default - 7;
// A dot-stuffed password line ("." + password + CRLF: 3) fits the
// largest line_max. A target with a smaller line_max answers 501 for a
// longer one.
inline constexpr std::size_t password_max = mctp::limits::line_max_max - 3;
static_assert(secret_max == 121 && password_max == 4093 && reply_line_max == 4096);
inline constexpr std::size_t secret_file_max = 4096;
// A result's text (a reply's text, or what went wrong: ssh's last line of
// errors, an exception), escaped by mctp::printable: a reply's text fits
// whole.
inline constexpr std::size_t result_text_max = reply_line_max;

}  // namespace mpasswd::limits
