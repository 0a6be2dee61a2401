// scram_crypto.hpp's functions, linked (see there).
#include "scram_crypto.hpp"

namespace mctp::scram::crypto {

const Nettle& nettle() {
    static constexpr Nettle linked{
        &::nettle_hmac_sha256_set_key, &::nettle_hmac_sha256_update,
        &::nettle_hmac_sha256_digest,  &::nettle_sha256_init,
        &::nettle_sha256_update,       &::nettle_sha256_digest,
        &::nettle_pbkdf2_hmac_sha256};
    return linked;
}

}  // namespace mctp::scram::crypto
