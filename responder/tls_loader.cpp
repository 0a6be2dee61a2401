// mpasswdd's side of the TLS plug-in (tls_plugin.hpp): loads
// mpasswdd-tls.so on first use, that is only with `tls = yes`, and wraps
// it as the Channel and functions connection.hpp declares.
#include <dlfcn.h>
#include <sys/auxv.h>

#include <cstdlib>
#include <string>

#include "connection.hpp"
#include "tls_plugin.hpp"

namespace mpasswdd {
namespace {

std::int64_t ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// The installed plug-in, or MPASSWDD_TLS_PLUGIN (the build tree's, for
// the tests), which a process started with more privilege than its
// caller's (AT_SECURE) ignores.
std::string plugin_path() {
    const char* path = getauxval(AT_SECURE) == 0 ? std::getenv("MPASSWDD_TLS_PLUGIN") : nullptr;
    return path != nullptr && *path != '\0' ? path : MPASSWDD_TLS_PLUGIN;
}

const mpasswdd_tls_plugin& plugin() {
    static const mpasswdd_tls_plugin* loaded = nullptr;
    if (loaded != nullptr) {
        return *loaded;
    }
    const std::string path = plugin_path();
    // Never unloaded: the process ends with its one connection.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* why = dlerror();
        throw TlsError("tls = yes, but the TLS plug-in cannot be loaded: " +
                       std::string(why != nullptr ? why : path));
    }
    const auto entry = reinterpret_cast<mpasswdd_tls_entry_fn>(dlsym(handle, mpasswdd_tls_entry));
    const mpasswdd_tls_plugin* p = entry != nullptr ? entry() : nullptr;
    if (p == nullptr || p->version != mpasswdd_tls_version) {
        throw TlsError("tls = yes, but " + path + " is not this mpasswdd's TLS plug-in");
    }
    loaded = p;
    return *p;
}

[[noreturn]] void raise(const mpasswdd_tls_error& e) {
    if (e.file_error != 0) {
        throw TlsFileError(e.text);
    }
    throw TlsError(e.text);
}

class TlsChannel final : public Channel {
public:
    TlsChannel(const mpasswdd_tls_plugin& p, mpasswdd_tls_channel* c, int fd)
        : p_(p), c_(c), fd_(fd) {}
    ~TlsChannel() override { p_.channel_free(c_); }
    TlsChannel(const TlsChannel&) = delete;
    TlsChannel& operator=(const TlsChannel&) = delete;

    [[nodiscard]] int poll_fd() const override { return fd_; }
    [[nodiscard]] bool pending() const override { return p_.pending(c_) != 0; }
    ssize_t read(char* buf, std::size_t n) override {
        return static_cast<ssize_t>(p_.read(c_, buf, n));
    }
    bool write_all(std::string_view data, Clock::time_point deadline) override {
        return p_.write_all(c_, data.data(), data.size(), ns(deadline)) != 0;
    }
    void finish() override {
        p_.shutdown(c_);
        linger_close(fd_, fd_);
    }

private:
    const mpasswdd_tls_plugin& p_;
    mpasswdd_tls_channel* c_;
    int fd_;
};

}  // namespace

void TlsContextFree::operator()(mpasswdd_tls_context* ctx) const {
    plugin().context_free(ctx);
}

TlsContext tls_context(const TlsFiles& files) {
    const mpasswdd_tls_plugin& p = plugin();
    mpasswdd_tls_error e{};
    TlsContext ctx(
        p.context(files.certificate.c_str(), files.key.c_str(), files.client_ca.c_str(), &e));
    if (!ctx) {
        raise(e);
    }
    return ctx;
}

void check_tls_files(const Config& config) {
    tls_context({config.tls_certificate, config.tls_key, config.tls_client_ca});
}

std::unique_ptr<Channel> tls_channel(TlsContext context, int fd, Clock::time_point deadline,
                                     Peer* peer) {
    const mpasswdd_tls_plugin& p = plugin();
    mpasswdd_tls_error e{};
    mpasswdd_tls_channel* c = p.accept(context.release(), fd, ns(deadline), &e);
    if (c == nullptr) {
        raise(e);
    }
    auto channel = std::make_unique<TlsChannel>(p, c, fd);
    mpasswdd_tls_peer learnt{};
    p.peer(c, &learnt);
    peer->tls_subject.assign(learnt.subject, learnt.subject_size);
    peer->tls_fingerprint.assign(learnt.fingerprint, learnt.fingerprint_size);
    peer->tls_exporter.assign(reinterpret_cast<const char*>(learnt.exporter),
                              learnt.exporter_size);
    return channel;
}

}  // namespace mpasswdd
