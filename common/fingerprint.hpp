// SHA-256 certificate fingerprints, as the configuration files write them
// and as OpenSSL computes them; shared by the responder and the controller.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

using X509 = struct x509_st;

namespace mctp {

// "AB:CD:..." or "abcd...": 32 octets as 64 lower-case hex digits, or
// nullopt for anything else.
std::optional<std::string> normalize_sha256(std::string_view text);

// The SHA-256 of the certificate's DER form, as 64 lower-case hex digits.
std::string sha256_fingerprint(X509* cert);

}  // namespace mctp
