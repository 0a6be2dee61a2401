// Server-side TLS for mpasswdd (OpenSSL 3): implicit TLS on the inherited
// socket, before the banner, as SMTPS does.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <string>

#include "config_file.hpp"
#include "connection.hpp"
#include "fingerprint.hpp"
#include "tls_files.hpp"

namespace mpasswdd {
namespace {

// Waits for what OpenSSL asked for (read or write) until deadline.
bool wait_for(int fd, int ssl_error, Clock::time_point deadline) {
    return wait_fd(fd, ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline);
}

struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};

class TlsChannel final : public Channel {
public:
    TlsChannel(std::unique_ptr<SSL_CTX, CtxFree> ctx, std::unique_ptr<SSL, SslFree> ssl, int fd)
        : ctx_(std::move(ctx)), ssl_(std::move(ssl)), fd_(fd) {}

    [[nodiscard]] int poll_fd() const override { return fd_; }
    [[nodiscard]] bool pending() const override { return SSL_pending(ssl_.get()) > 0; }

    ssize_t read(char* buf, std::size_t n) override {
        std::size_t got = 0;
        if (SSL_read_ex(ssl_.get(), buf, n, &got) == 1) {
            return static_cast<ssize_t>(got);
        }
        const int err = SSL_get_error(ssl_.get(), 0);
        ERR_clear_error();
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            return -2;
        }
        if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
            return 0;  // close_notify, or the peer closed without it
        }
        return -1;
    }

    bool write_all(std::string_view data, Clock::time_point deadline) override {
        while (!data.empty()) {
            std::size_t put = 0;
            if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &put) == 1) {
                data.remove_prefix(put);
                continue;
            }
            const int err = SSL_get_error(ssl_.get(), 0);
            ERR_clear_error();
            if ((err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) ||
                !wait_for(fd_, err, deadline)) {
                return false;
            }
        }
        return true;
    }

    void finish() override {
        SSL_shutdown(ssl_.get());  // close_notify; the peer's is not awaited
        ERR_clear_error();
        linger_close(fd_, fd_);
    }

private:
    std::unique_ptr<SSL_CTX, CtxFree> ctx_;
    std::unique_ptr<SSL, SslFree> ssl_;
    int fd_;
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
// for) and given to OpenSSL from memory. Throws TlsFileError naming the
// key and the file.
std::unique_ptr<SSL_CTX, CtxFree> server_context(const TlsFiles& files) {
    std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
        throw TlsError(mctp::tls::error_reason("cannot create a TLS context"));
    }
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE);
    const char* key = "tls_certificate";
    try {
        mctp::tls::use_certificate_chain(ctx.get(), files.certificate);
        key = "tls_key";
        mctp::tls::use_private_key(ctx.get(), files.key);
        if (!files.client_ca.empty()) {
            key = "tls_client_ca";
            mctp::tls::load_trusted(ctx.get(), files.client_ca);
            SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               nullptr);
        }
    } catch (const mctp::cfg::ConfigError& e) {
        throw TlsFileError(std::string(key) + " " + e.what());
    }
    return ctx;
}

}  // namespace

void TlsContextFree::operator()(ssl_ctx_st* ctx) const {
    SSL_CTX_free(ctx);
}

void check_tls_files(const Config& config) {
    server_context({config.tls_certificate, config.tls_key, config.tls_client_ca});
}

TlsContext tls_context(const TlsFiles& files) {
    OPENSSL_init_ssl(0, nullptr);
    return TlsContext(server_context(files).release());
}

std::unique_ptr<Channel> tls_channel(TlsContext context, int fd, Clock::time_point deadline,
                                     Peer* peer) {
    std::unique_ptr<SSL_CTX, CtxFree> ctx(context.release());
    std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) {
        throw TlsError(mctp::tls::error_reason("cannot attach TLS to the connection"));
    }
    const int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    for (;;) {
        const int rc = SSL_accept(ssl.get());
        if (rc == 1) {
            break;
        }
        const int err = SSL_get_error(ssl.get(), rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (!wait_for(fd, err, deadline)) {
                throw TlsError("no handshake within the idle timeout or the login grace time");
            }
            continue;
        }
        const long verify = SSL_get_verify_result(ssl.get());
        std::string why = mctp::tls::error_reason(
            err == SSL_ERROR_SYSCALL ? "the peer closed the connection" : "handshake failed");
        if (verify != X509_V_OK) {
            why += " (client certificate: " +
                   std::string(X509_verify_cert_error_string(verify)) + ")";
        }
        throw TlsError(why);
    }
    if (X509* cert = SSL_get0_peer_certificate(ssl.get()); cert != nullptr) {
        peer->tls_subject = subject_of(cert);
        peer->tls_fingerprint = mctp::sha256_fingerprint(cert);
    }
    // RFC 9266: tls-exporter, defined for TLS 1.3 only.
    if (SSL_version(ssl.get()) == TLS1_3_VERSION) {
        static constexpr char label[] = "EXPORTER-Channel-Binding";
        std::string out(32, '\0');
        if (SSL_export_keying_material(ssl.get(), reinterpret_cast<unsigned char*>(out.data()),
                                       out.size(), label, sizeof label - 1, nullptr, 0, 0) == 1) {
            peer->tls_exporter = std::move(out);
        }
    }
    return std::make_unique<TlsChannel>(std::move(ctx), std::move(ssl), fd);
}

}  // namespace mpasswdd
