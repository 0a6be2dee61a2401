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

bool has_yescrypt_shape(const std::string& hash) {
    if (!hash.starts_with("$y$")) {
        return false;
    }
    constexpr std::string_view alphabet =
        "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string_view rest = std::string_view(hash).substr(3);
    std::size_t fields = 0;
    while (!rest.empty() || fields < 3) {
        const auto end = rest.find('$');
        const std::string_view field = rest.substr(0, end);
        if (field.empty() || field.find_first_not_of(alphabet) != std::string_view::npos) {
            return false;
        }
        ++fields;
        if (end == std::string_view::npos) {
            // The last field is the 256-bit hash itself.
            return fields == 3 && field.size() == 43;
        }
        rest.remove_prefix(end + 1);
    }
    return false;
}

HashCheck check_secret(const mctp::Secret& secret, const std::string& hash) {
    return check_secret(secret, hash.c_str());
}

HashCheck check_secret(const mctp::Secret& secret, const char* hash) {
    WipedCryptData cd;
    const char* hashed = crypt_rn(secret.c_str(), hash, cd.data.get(), sizeof *cd.data);
    if (hashed == nullptr) {
        return HashCheck::unusable;
    }
    return mctp::constant_time_equal(hashed, hash) ? HashCheck::match : HashCheck::mismatch;
}

}  // namespace mpasswdd
