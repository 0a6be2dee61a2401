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

// The checks of a secret_hash value at each start: crypt_checksalt(3)
// accepts it (a cost too cheap too) and it has the shape above. False
// with *why ("is not a valid yescrypt hash", or "cannot be checked: "
// when libcrypt.so.1 cannot be loaded).
bool yescrypt_setting_ok(const std::string& hash, std::string* why);

// libxcrypt (libcrypt.so.1) is loaded with dlopen at the first call of
// one of these functions, not at mpasswdd's start.
enum class HashCheck { match, mismatch, unusable };

// Hashes secret with hash's parameters and salt and compares in constant
// time. unusable: libxcrypt cannot hash with this setting at all (or
// cannot be loaded).
HashCheck check_secret(const mctp::Secret& secret, const std::string& hash);
// The same for a NUL-terminated hash (one held in a wiped buffer).
HashCheck check_secret(const mctp::Secret& secret, const char* hash);

}  // namespace mpasswdd
