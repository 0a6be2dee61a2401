#include "fingerprint.hpp"

namespace mctp {
namespace {

constexpr std::string_view hex_digits = "0123456789abcdef";

}  // namespace

std::optional<std::string> normalize_sha256(std::string_view text) {
    std::string hex;
    for (const char ch : text) {
        if (ch == ':') {
            continue;
        }
        const char lower = (ch >= 'A' && ch <= 'F') ? static_cast<char>(ch - 'A' + 'a') : ch;
        if (hex_digits.find(lower) == std::string_view::npos || hex.size() == 64) {
            return std::nullopt;
        }
        hex += lower;
    }
    if (hex.size() != 64) {
        return std::nullopt;
    }
    return hex;
}

}  // namespace mctp
