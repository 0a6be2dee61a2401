#include "secret_hash.hpp"

#include <crypt.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace mpasswdd {
namespace {

// crypt_data is about 32 KiB and holds the secret while hashing: keep it
// off the stack and wipe it after use.
struct WipedCryptData {
    std::unique_ptr<crypt_data> data = std::make_unique<crypt_data>();
    ~WipedCryptData() { mctp::wipe(data.get(), sizeof *data); }
};

}  // namespace

std::string hash_secret(const mctp::Secret& secret, unsigned long cost) {
    char* salt = crypt_gensalt_ra("$y$", cost, nullptr, 0);
    if (salt == nullptr) {
        throw std::runtime_error("cannot make a yescrypt salt (cost must be 1 to 11)");
    }
    WipedCryptData cd;
    const char* hashed = crypt_rn(secret.c_str(), salt, cd.data.get(), sizeof *cd.data);
    std::free(salt);
    if (hashed == nullptr) {
        throw std::runtime_error("yescrypt hashing failed");
    }
    return hashed;
}

bool verify_secret(const mctp::Secret& secret, const std::string& hash, bool parse_only) {
    WipedCryptData cd;
    const char* hashed = crypt_rn(secret.c_str(), hash.c_str(), cd.data.get(), sizeof *cd.data);
    if (parse_only) {
        // The result must have the shape of the stored hash: same length.
        return hashed != nullptr && std::string_view(hashed).size() == hash.size();
    }
    return hashed != nullptr && mctp::constant_time_equal(hashed, hash);
}

}  // namespace mpasswdd
