#include "fingerprint.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>

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

std::string sha256_fingerprint(X509* cert) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), md.data(), &len) != 1) {
        return {};
    }
    std::string hex;
    for (unsigned int i = 0; i < len; ++i) {
        hex += hex_digits[md[i] >> 4];
        hex += hex_digits[md[i] & 0xf];
    }
    return hex;
}

}  // namespace mctp
