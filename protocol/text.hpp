// Validation of the things a controller sends, and the one way any text
// from elsewhere is shown.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "limits.hpp"

namespace mctp {

// Octets 0x20-0x7E only (a command line).
bool is_printable_ascii(std::string_view s) noexcept;
// Octets 0x21-0x7E only, at least one (a command argument).
bool is_argument(std::string_view s) noexcept;
// Portable POSIX user name: [A-Za-z0-9._][A-Za-z0-9._-]* with an optional
// trailing '$', at most limits::user_name_max octets.
bool is_user_name(std::string_view s) noexcept;
// The HELO name: a host name or address literal, [A-Za-z0-9._:-],
// at most limits::helo_name_max octets.
bool is_helo_name(std::string_view s) noexcept;
// Well-formed UTF-8 (no overlong forms, surrogates or values past
// U+10FFFF) with no control character (C0, DEL, C1).
bool is_password_text(std::string_view s) noexcept;

// Text that came from a target, a file, ssh, PAM or an argument, made safe
// for a terminal, a PAM message or syslog: every octet outside 0x20-0x7E
// (C0 controls with TAB, CR and LF, DEL, and every octet from 0x80, so C1
// controls, invalid and valid UTF-8 alike) becomes "\xHH" (lower-case hex);
// printable ASCII is kept as it is. The result is at most max octets: a
// longer one is cut between escapes and ends in "..." (max >= 3).
std::string printable(std::string_view s, std::size_t max = limits::shown_text_max);

}  // namespace mctp
