// mpasswdd-tls.so: server-side TLS for mpasswdd (OpenSSL 3), implicit
// TLS on the inherited socket, before the banner, as SMTPS does. A
// plug-in (tls_plugin.hpp) that mpasswdd loads only with `tls = yes`.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "config_file.hpp"
#include "fingerprint.hpp"
#include "secret.hpp"
#include "tls_files.hpp"
#include "tls_plugin.hpp"

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point when(std::int64_t deadline) {
    return Clock::time_point(std::chrono::nanoseconds(deadline));
}

// Waits for what OpenSSL asked for (read or write) until deadline.
bool wait_for(int fd, int ssl_error, Clock::time_point deadline) {
    pollfd p{fd, static_cast<short>(ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
    for (;;) {
        const auto left = deadline - Clock::now();
        if (left <= Clock::duration::zero()) {
            return false;
        }
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        const int rc = poll(&p, 1, static_cast<int>(std::min<long long>(ms, 60'000)));
        if (rc > 0) {
            return true;
        }
        if (rc < 0 && errno != EINTR) {
            return false;
        }
    }
}

void set_error(mpasswdd_tls_error* error, const std::string& text, bool file_error) {
    std::snprintf(error->text, sizeof error->text, "%s", text.c_str());
    error->file_error = file_error ? 1 : 0;
}

struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};

std::string subject_of(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(std::max(0L, len)));
    BIO_free(bio);
    return out;
}

// The server context: tls_certificate, tls_key and tls_client_ca, each
// read as the configuration is (a regular file, bounded, never waited
// for) and given to OpenSSL from memory. Null with *error naming the key
// and the file.
SSL_CTX* server_context(const char* certificate, const char* key_file, const char* client_ca,
                        mpasswdd_tls_error* error) {
    OPENSSL_init_ssl(0, nullptr);
    std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
        set_error(error, mctp::tls::error_reason("cannot create a TLS context"), false);
        return nullptr;
    }
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE);
    const char* key = "tls_certificate";
    try {
        mctp::tls::use_certificate_chain(ctx.get(), certificate);
        key = "tls_key";
        mctp::tls::use_private_key(ctx.get(), key_file);
        if (*client_ca != '\0') {
            key = "tls_client_ca";
            mctp::tls::load_trusted(ctx.get(), client_ca);
            SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               nullptr);
        }
    } catch (const mctp::cfg::ConfigError& e) {
        set_error(error, std::string(key) + " " + e.what(), true);
        return nullptr;
    }
    return ctx.release();
}

}  // namespace

struct mpasswdd_tls_channel {
    std::unique_ptr<SSL_CTX, CtxFree> ctx;
    std::unique_ptr<SSL, SslFree> ssl;
    int fd = -1;
    std::string subject;
    std::string fingerprint;
    std::string exporter;
    ~mpasswdd_tls_channel() { mctp::wipe(exporter.data(), exporter.size()); }
};

namespace {

mpasswdd_tls_context* context(const char* certificate, const char* key, const char* client_ca,
                              mpasswdd_tls_error* error) noexcept {
    try {
        return reinterpret_cast<mpasswdd_tls_context*>(
            server_context(certificate, key, client_ca, error));
    } catch (const std::exception& e) {
        set_error(error, e.what(), false);
        return nullptr;
    }
}

void context_free(mpasswdd_tls_context* context) noexcept {
    SSL_CTX_free(reinterpret_cast<SSL_CTX*>(context));
}

// TLS 1.2 at least, no compression or renegotiation, the library's
// default ciphers; with tls_client_ca a verified client certificate is
// required.
mpasswdd_tls_channel* accept(mpasswdd_tls_context* context, int fd, std::int64_t deadline,
                             mpasswdd_tls_error* error) noexcept try {
    auto c = std::make_unique<mpasswdd_tls_channel>();
    c->ctx.reset(reinterpret_cast<SSL_CTX*>(context));
    c->fd = fd;
    c->ssl.reset(SSL_new(c->ctx.get()));
    if (!c->ssl || SSL_set_fd(c->ssl.get(), fd) != 1) {
        set_error(error, mctp::tls::error_reason("cannot attach TLS to the connection"), false);
        return nullptr;
    }
    const int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    SSL* ssl = c->ssl.get();
    for (;;) {
        const int rc = SSL_accept(ssl);
        if (rc == 1) {
            break;
        }
        const int err = SSL_get_error(ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (!wait_for(fd, err, when(deadline))) {
                set_error(error, "no handshake within the idle timeout or the login grace time",
                          false);
                return nullptr;
            }
            continue;
        }
        const long verify = SSL_get_verify_result(ssl);
        std::string why = mctp::tls::error_reason(
            err == SSL_ERROR_SYSCALL ? "the peer closed the connection" : "handshake failed");
        if (verify != X509_V_OK) {
            why += " (client certificate: " +
                   std::string(X509_verify_cert_error_string(verify)) + ")";
        }
        set_error(error, why, false);
        return nullptr;
    }
    if (X509* cert = SSL_get0_peer_certificate(ssl); cert != nullptr) {
        c->subject = subject_of(cert);
        c->fingerprint = mctp::sha256_fingerprint(cert);
    }
    // RFC 9266: tls-exporter, defined for TLS 1.3 only.
    if (SSL_version(ssl) == TLS1_3_VERSION) {
        static constexpr char label[] = "EXPORTER-Channel-Binding";
        std::string out(32, '\0');
        if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(out.data()),
                                       out.size(), label, sizeof label - 1, nullptr, 0, 0) == 1) {
            c->exporter = std::move(out);
        }
    }
    return c.release();
} catch (const std::exception& e) {
    set_error(error, e.what(), false);
    return nullptr;
}

void peer(const mpasswdd_tls_channel* c, mpasswdd_tls_peer* out) noexcept {
    out->subject = c->subject.data();
    out->subject_size = c->subject.size();
    out->fingerprint = c->fingerprint.data();
    out->fingerprint_size = c->fingerprint.size();
    out->exporter = reinterpret_cast<const unsigned char*>(c->exporter.data());
    out->exporter_size = c->exporter.size();
}

int pending(const mpasswdd_tls_channel* c) noexcept {
    return SSL_pending(c->ssl.get()) > 0 ? 1 : 0;
}

std::int64_t read(mpasswdd_tls_channel* c, char* buf, std::size_t n) noexcept {
    std::size_t got = 0;
    if (SSL_read_ex(c->ssl.get(), buf, n, &got) == 1) {
        return static_cast<std::int64_t>(got);
    }
    const int err = SSL_get_error(c->ssl.get(), 0);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        return -2;
    }
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
        return 0;  // close_notify, or the peer closed without it
    }
    return -1;
}

int write_all(mpasswdd_tls_channel* c, const char* data, std::size_t n,
              std::int64_t deadline) noexcept {
    while (n > 0) {
        std::size_t put = 0;
        if (SSL_write_ex(c->ssl.get(), data, n, &put) == 1) {
            data += put;
            n -= put;
            continue;
        }
        const int err = SSL_get_error(c->ssl.get(), 0);
        ERR_clear_error();
        if ((err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) ||
            !wait_for(c->fd, err, when(deadline))) {
            return 0;
        }
    }
    return 1;
}

void shutdown(mpasswdd_tls_channel* c) noexcept {
    SSL_shutdown(c->ssl.get());  // close_notify; the peer's is not awaited
    ERR_clear_error();
}

void channel_free(mpasswdd_tls_channel* c) noexcept {
    delete c;
}

constexpr mpasswdd_tls_plugin plugin{
    mpasswdd_tls_version, context, context_free, accept, peer, pending, read, write_all,
    shutdown, channel_free};

}  // namespace

extern "C" __attribute__((visibility("default"))) const mpasswdd_tls_plugin*
mpasswdd_tls_plugin_v1() {
    return &plugin;
}
