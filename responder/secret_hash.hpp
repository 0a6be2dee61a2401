// Hashing and checking controller secrets with libxcrypt (yescrypt).
#pragma once

#include <string>

#include "secret.hpp"

namespace mpasswdd {

// A new yescrypt hash of secret; cost 0 is libxcrypt's default, 1-11
// yescrypt's own scale. Throws std::runtime_error on failure.
std::string hash_secret(const mctp::Secret& secret, unsigned long cost = 0);

// Hashes secret with hash's salt and compares in constant time. With
// parse_only, true when libxcrypt can hash with hash as its setting at
// all (a well-formed hash), whatever the secret.
bool verify_secret(const mctp::Secret& secret, const std::string& hash, bool parse_only = false);

}  // namespace mpasswdd
