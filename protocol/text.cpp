#include "text.hpp"

#include <algorithm>

#include "limits.hpp"

namespace mctp {
namespace {

bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool all_between(std::string_view s, unsigned char lo, unsigned char hi) noexcept {
    return std::all_of(s.begin(), s.end(), [=](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c >= lo && c <= hi;
    });
}

}  // namespace

bool is_printable_ascii(std::string_view s) noexcept { return all_between(s, 0x20, 0x7E); }

bool is_argument(std::string_view s) noexcept { return !s.empty() && all_between(s, 0x21, 0x7E); }

bool is_user_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > limits::user_name_max) {
        return false;
    }
    // Names of folders, never of users: a user name becomes a file name
    // (pam_faillock's tally, the responder's lock-expiry-USER).
    if (s == "." || s == "..") {
        return false;
    }
    if (s.back() == '$') {
        s.remove_suffix(1);
        if (s.empty()) {
            return false;
        }
    }
    if (s.front() == '-') {
        return false;
    }
    for (const char c : s) {
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
            return false;
        }
    }
    return true;
}

bool is_helo_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > limits::helo_name_max) {
        return false;
    }
    for (const char c : s) {
        if (!is_alnum(c) && c != '.' && c != '_' && c != '-' && c != ':') {
            return false;
        }
    }
    return true;
}

bool is_password_text(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F) {
                return false;
            }
            ++i;
            continue;
        }
        std::size_t len = 0;
        char32_t cp = 0;
        char32_t min = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + len > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
            (cp >= 0x80 && cp <= 0x9F)) {
            return false;
        }
        i += len;
    }
    return true;
}

std::string printable(std::string_view s, std::size_t max) {
    static constexpr char hex[] = "0123456789abcdef";
    const auto shown = [](unsigned char c) { return c >= 0x20 && c <= 0x7E; };
    std::size_t full = 0;
    for (const char ch : s) {
        full += shown(static_cast<unsigned char>(ch)) ? 1 : 4;
    }
    static constexpr std::string_view cut = "...";
    const bool fits = full <= max;
    const std::size_t room = fits ? full : (max > cut.size() ? max - cut.size() : 0);
    std::string out;
    out.reserve(fits ? full : max);
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const std::size_t n = shown(c) ? 1 : 4;
        if (out.size() + n > room) {
            break;
        }
        if (n == 1) {
            out.push_back(ch);
        } else {
            out += "\\x";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xF]);
        }
    }
    if (!fits) {
        out += cut.substr(0, std::min(cut.size(), max));
    }
    return out;
}

}  // namespace mctp
