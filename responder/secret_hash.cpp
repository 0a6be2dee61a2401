#include "secret_hash.hpp"

#include <crypt.h>
#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>

// libcrypt.so.1 is libxcrypt 4's.
static_assert(XCRYPT_VERSION_MAJOR == 4, "the soname below is libxcrypt 4's");

namespace mpasswdd {
namespace {

// libxcrypt, loaded at its first use rather than mapped and relocated at
// every connection's start: only CHCK and account checks of a password,
// the legacy secret_hash and the --hash-secret and --check-config
// commands use it (README, "Start-up and memory").
constexpr const char* crypt_soname = "libcrypt.so.1";

struct Xcrypt {
    decltype(&::crypt_rn) rn = nullptr;
    decltype(&::crypt_gensalt_ra) gensalt_ra = nullptr;
    decltype(&::crypt_checksalt) checksalt = nullptr;
    std::string error;  // why it could not be loaded; empty when loaded
};

template <typename F>
bool bind(void* handle, const char* name, F* out) {
    *out = reinterpret_cast<F>(dlsym(handle, name));
    return *out != nullptr;
}

Xcrypt load_xcrypt() {
    Xcrypt x;
    // Never unloaded: the process ends with its one connection.
    void* handle = dlopen(crypt_soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = dlerror();
        x.error = std::string(crypt_soname) + ": " + (why != nullptr ? why : "cannot be loaded");
        return x;
    }
    const auto need = [&](const char* name, auto* out) {
        if (x.error.empty() && !bind(handle, name, out)) {
            x.error = std::string(crypt_soname) + " has no " + name;
        }
    };
    need("crypt_rn", &x.rn);
    need("crypt_gensalt_ra", &x.gensalt_ra);
    need("crypt_checksalt", &x.checksalt);
    return x;
}

// The loaded library, or nullptr (then *why says why).
const Xcrypt* xcrypt(std::string* why = nullptr) {
    static const Xcrypt loaded = load_xcrypt();
    if (!loaded.error.empty()) {
        if (why != nullptr) {
            *why = loaded.error;
        }
        return nullptr;
    }
    return &loaded;
}

// crypt_data is about 32 KiB and holds the secret while hashing: keep it
// off the stack and wipe it after use.
struct WipedCryptData {
    std::unique_ptr<crypt_data> data = std::make_unique<crypt_data>();
    ~WipedCryptData() { mctp::wipe(data.get(), sizeof *data); }
};

}  // namespace

std::string hash_secret(const mctp::Secret& secret, unsigned long cost) {
    std::string why;
    const Xcrypt* x = xcrypt(&why);
    if (x == nullptr) {
        throw std::runtime_error("yescrypt needs " + why);
    }
    char* salt = x->gensalt_ra("$y$", cost, nullptr, 0);
    if (salt == nullptr) {
        throw std::runtime_error("cannot make a yescrypt salt (cost must be 1 to 11)");
    }
    WipedCryptData cd;
    const char* hashed = x->rn(secret.c_str(), salt, cd.data.get(), sizeof *cd.data);
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

bool yescrypt_setting_ok(const std::string& hash, std::string* why) {
    const Xcrypt* x = xcrypt(why);
    if (x == nullptr) {
        *why = "cannot be checked: " + *why;
        return false;
    }
    const int check = x->checksalt(hash.c_str());
    if ((check != CRYPT_SALT_OK && check != CRYPT_SALT_TOO_CHEAP) || !has_yescrypt_shape(hash)) {
        *why = "is not a valid yescrypt hash";
        return false;
    }
    return true;
}

HashCheck check_secret(const mctp::Secret& secret, const char* hash) {
    const Xcrypt* x = xcrypt();
    if (x == nullptr) {
        return HashCheck::unusable;
    }
    WipedCryptData cd;
    const char* hashed = x->rn(secret.c_str(), hash, cd.data.get(), sizeof *cd.data);
    if (hashed == nullptr) {
        return HashCheck::unusable;
    }
    return mctp::constant_time_equal(hashed, hash) ? HashCheck::match : HashCheck::mismatch;
}

}  // namespace mpasswdd
