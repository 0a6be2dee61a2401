// The SHA-256 primitives SCRAM uses (scram.cpp), from Nettle. Two ways to
// get them, chosen at link time by which file defines nettle():
// scram_nettle.cpp links libnettle (mpasswd, pam_mctp, the tests), and
// scram_nettle_lazy.cpp loads it on first use (mpasswdd: its parent
// needs it only when AUTH begins, and a process that never gets that far
// does not pay for loading it).
#pragma once

#include <nettle/hmac.h>
#include <nettle/pbkdf2.h>
#include <nettle/sha2.h>

namespace mctp::scram::crypto {

struct Nettle {
    decltype(&::nettle_hmac_sha256_set_key) hmac_set_key;
    decltype(&::nettle_hmac_sha256_update) hmac_update;
    decltype(&::nettle_hmac_sha256_digest) hmac_digest;
    decltype(&::nettle_sha256_init) sha_init;
    decltype(&::nettle_sha256_update) sha_update;
    decltype(&::nettle_sha256_digest) sha_digest;
    decltype(&::nettle_pbkdf2_hmac_sha256) pbkdf2;
};

// The functions; throws std::runtime_error when they cannot be had.
const Nettle& nettle();

}  // namespace mctp::scram::crypto
