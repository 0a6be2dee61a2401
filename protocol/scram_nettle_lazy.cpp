// scram_crypto.hpp's functions, loaded on first use (see there): mpasswdd
// links this file into the executable, so the archive member that links
// libnettle is never pulled in.
#include <dlfcn.h>

#include <nettle/version.h>

#include <stdexcept>
#include <string>

#include "scram_crypto.hpp"

// libnettle.so.8 is Nettle 3.6 and later of the 3 series.
static_assert(NETTLE_VERSION_MAJOR == 3 && NETTLE_VERSION_MINOR >= 6,
              "the soname below is libnettle.so.8's");

namespace mctp::scram::crypto {
namespace {

constexpr const char* soname = "libnettle.so.8";

template <typename F>
void bind(void* handle, const char* name, F* out) {
    void* f = dlsym(handle, name);
    if (f == nullptr) {
        throw std::runtime_error(std::string(soname) + " has no " + name);
    }
    *out = reinterpret_cast<F>(f);
}

Nettle load() {
    // Never unloaded: the process ends with its one connection.
    void* handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = dlerror();
        throw std::runtime_error(std::string("SCRAM needs ") + soname + ": " +
                                 (why != nullptr ? why : "cannot be loaded"));
    }
    Nettle n{};
    bind(handle, "nettle_hmac_sha256_set_key", &n.hmac_set_key);
    bind(handle, "nettle_hmac_sha256_update", &n.hmac_update);
    bind(handle, "nettle_hmac_sha256_digest", &n.hmac_digest);
    bind(handle, "nettle_sha256_init", &n.sha_init);
    bind(handle, "nettle_sha256_update", &n.sha_update);
    bind(handle, "nettle_sha256_digest", &n.sha_digest);
    bind(handle, "nettle_pbkdf2_hmac_sha256", &n.pbkdf2);
    return n;
}

}  // namespace

const Nettle& nettle() {
    static const Nettle loaded = load();
    return loaded;
}

}  // namespace mctp::scram::crypto
