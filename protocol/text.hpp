// Validation of the things a controller sends.
#pragma once

#include <string_view>

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

}  // namespace mctp
