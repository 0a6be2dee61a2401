// Hashing and checking controller secrets with libxcrypt (yescrypt).
#pragma once

#include <string>

#include "secret.hpp"

namespace mpasswdd {

// A new yescrypt hash of secret; cost 0 is libxcrypt's default, 1-11
// yescrypt's own scale. Throws std::runtime_error on failure.
std::string hash_secret(const mctp::Secret& secret, unsigned long cost = 0);

// Cheap syntax check: "$y$PARAMS$SALT$HASH" in crypt's base-64 alphabet,
// HASH 43 characters. Runs at every connection, so it does not hash;
// only libxcrypt can tell whether PARAMS and SALT decode (check_secret).
bool has_yescrypt_shape(const std::string& hash);

enum class HashCheck { match, mismatch, unusable };

// Hashes secret with hash's parameters and salt and compares in constant
// time. unusable: libxcrypt cannot hash with this setting at all.
HashCheck check_secret(const mctp::Secret& secret, const std::string& hash);
// The same for a NUL-terminated hash (one held in a wiped buffer).
HashCheck check_secret(const mctp::Secret& secret, const char* hash);

}  // namespace mpasswdd
