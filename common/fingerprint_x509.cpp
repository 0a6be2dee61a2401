// sha256_fingerprint (fingerprint.hpp): apart from normalize_sha256, so
// that what uses only the latter (mpasswdd's configuration) links no
// OpenSSL.
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>

#include "fingerprint.hpp"

namespace mctp {

std::string sha256_fingerprint(X509* cert) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), md.data(), &len) != 1) {
        return {};
    }
    std::string hex;
    for (unsigned int i = 0; i < len; ++i) {
        hex += "0123456789abcdef"[md[i] >> 4];
        hex += "0123456789abcdef"[md[i] & 0xf];
    }
    return hex;
}

}  // namespace mctp
