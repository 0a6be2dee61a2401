// The tls transport: MCTP inside TLS 1.2 or later (implicit TLS, as
// SMTPS), through asio::ssl and OpenSSL 3. Nothing is written before the
// handshake has verified the server, so neither the secret nor a password
// reaches a target that could not be authenticated.
#include <asio/connect.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config_file.hpp"
#include "fingerprint.hpp"
#include "tcp_connect.hpp"
#include "tls_files.hpp"
#include "transport.hpp"

namespace mpasswd {
namespace {

using asio::ip::tcp;
using TlsSocket = asio::ssl::stream<tcp::socket>;

class TlsStream final : public Stream {
public:
    explicit TlsStream(std::unique_ptr<TlsSocket> s) : s_(std::move(s)) {}
    ~TlsStream() override { close(); }

    // With TLS 1.3 the server checks a client certificate after the
    // client's side of the handshake is done: its refusal (an alert)
    // arrives at the first read, the banner's, before anything is sent.
    asio::awaitable<std::size_t> read_some(std::span<char> buffer) override {
        auto [ec, n] = co_await s_->async_read_some(
            asio::buffer(buffer.data(), buffer.size()),
            asio::experimental::as_tuple(asio::use_awaitable));
        if (ec == asio::ssl::error::stream_truncated) {
            throw std::system_error(asio::error::eof);  // closed without close_notify
        }
        if (ec && ec.category() == asio::error::get_ssl_category()) {
            throw UntrustedError("TLS: the target ended the session: " + ec.message());
        }
        if (ec) {
            throw std::system_error(ec);
        }
        co_return n;
    }

    asio::awaitable<void> write_all(std::span<const char> bytes) override {
        co_await asio::async_write(*s_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::use_awaitable);
    }

    void close() noexcept override {
        asio::error_code ignored;
        s_->lowest_layer().close(ignored);
    }

    [[nodiscard]] std::string tls_exporter() const override {
        SSL* ssl = s_->native_handle();
        if (SSL_version(ssl) != TLS1_3_VERSION) {
            return {};
        }
        static constexpr char label[] = "EXPORTER-Channel-Binding";
        std::string out(32, '\0');
        if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(out.data()),
                                       out.size(), label, sizeof label - 1, nullptr, 0, 0) != 1) {
            return {};
        }
        return out;
    }

private:
    std::unique_ptr<TlsSocket> s_;
};

class TlsTransport final : public Transport {
public:
    explicit TlsTransport(const TlsSettings& s) : ctx_(asio::ssl::context::tls_client) {
        SSL_CTX* ctx = ctx_.native_handle();
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
        // The files are read as the configuration is (a regular file,
        // bounded, never waited for) and given to OpenSSL from memory.
        // Without tls_ca, the system store is OpenSSL's own.
        const char* key = "tls_ca";
        try {
            if (s.ca.empty()) {
                asio::error_code ec;
                ctx_.set_default_verify_paths(ec);
                if (ec) {
                    throw TransportError("tls_ca (system store): " + ec.message());
                }
            } else {
                mctp::tls::load_trusted(ctx, s.ca);
            }
            if (!s.certificate.empty()) {
                key = "tls_certificate";
                mctp::tls::use_certificate_chain(ctx, s.certificate);
                key = "tls_key";
                mctp::tls::use_private_key(ctx, s.key);
            }
        } catch (const mctp::cfg::ConfigError& e) {
            throw TransportError(std::string(key) + " " + e.what());
        }
    }

    asio::awaitable<std::unique_ptr<Stream>> connect(const Target& target) override {
        auto socket = co_await connect_to(co_await endpoints_of(target));
        auto s = std::make_unique<TlsSocket>(std::move(socket), ctx_);
        SSL* ssl = s->native_handle();
        asio::error_code ec;
        (void)asio::ip::make_address(target.host, ec);
        const bool is_ip = !ec;
        if (target.tls_fingerprint.empty()) {
            // The CA chain, validity dates and the name, by OpenSSL.
            s->set_verify_mode(asio::ssl::verify_peer);
            X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
            if (is_ip) {
                X509_VERIFY_PARAM_set1_ip_asc(param, target.host.c_str());
            } else {
                X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                X509_VERIFY_PARAM_set1_host(param, target.host.c_str(), 0);
            }
        } else {
            s->set_verify_mode(asio::ssl::verify_none);  // the pin decides, below
        }
        if (!is_ip) {
            SSL_set_tlsext_host_name(ssl, target.host.c_str());
        }
        auto [hs_ec] = co_await s->async_handshake(
            asio::ssl::stream_base::client, asio::experimental::as_tuple(asio::use_awaitable));
        if (hs_ec) {
            if (hs_ec == asio::error::operation_aborted) {
                throw std::system_error(hs_ec);  // the step's timeout
            }
            const long verify = SSL_get_verify_result(ssl);
            ERR_clear_error();
            if (verify != X509_V_OK) {
                throw UntrustedError("TLS: the certificate of " + target.host +
                                     " does not verify: " +
                                     X509_verify_cert_error_string(verify));
            }
            throw UntrustedError("TLS handshake with " + target.host +
                                 " failed: " + hs_ec.message());
        }
        if (!target.tls_fingerprint.empty()) {
            X509* cert = SSL_get0_peer_certificate(ssl);
            const std::string got = cert != nullptr ? mctp::sha256_fingerprint(cert) : "(none)";
            if (got != target.tls_fingerprint) {
                throw UntrustedError("TLS: the certificate of " + target.host + " has SHA-256 " +
                                     got + ", not the pinned " + target.tls_fingerprint);
            }
        }
        co_return std::make_unique<TlsStream>(std::move(s));
    }

private:
    asio::ssl::context ctx_;
};

}  // namespace

std::unique_ptr<Transport> make_tls_transport(const TlsSettings& settings) {
    return std::make_unique<TlsTransport>(settings);
}

}  // namespace mpasswd
