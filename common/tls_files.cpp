#include "tls_files.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <cstring>
#include <memory>

#include "config_file.hpp"

namespace mctp::tls {
namespace {

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void fail(const std::string& path, const std::string& why) {
    throw cfg::ConfigError(path + ": " + why);
}

Bio memory_bio(const std::string& text, const std::string& path) {
    Bio bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (!bio) {
        fail(path, error_reason("out of memory"));
    }
    return bio;
}

// Reading past the last PEM block leaves "no start line" queued: that is
// the end, anything else is an error.
bool only_end_of_pem_queued() {
    const unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return true;
    }
    return false;
}

// Never asks for a pass phrase (OpenSSL's default would read the
// terminal): an encrypted key fails to load.
int no_pass_phrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
    return -1;
}

}  // namespace

std::string error_reason(const char* fallback) {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) {
        return fallback;
    }
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    return buf.data();
}

void use_certificate_chain(SSL_CTX* ctx, const std::string& path) {
    const std::string text = cfg::read_checked(path, "", true, pem_file_max);
    const Bio bio = memory_bio(text, path);
    ERR_clear_error();
    X509* cert = PEM_read_bio_X509_AUX(bio.get(), nullptr, no_pass_phrase, nullptr);
    if (cert == nullptr) {
        fail(path, error_reason("no PEM certificate"));
    }
    const int ok = SSL_CTX_use_certificate(ctx, cert);
    X509_free(cert);
    if (ok != 1 || SSL_CTX_clear_chain_certs(ctx) != 1) {
        fail(path, error_reason("the certificate cannot be used"));
    }
    while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, no_pass_phrase, nullptr)) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {  // takes ca on success
            X509_free(ca);
            fail(path, error_reason("a chain certificate cannot be used"));
        }
    }
    if (!only_end_of_pem_queued()) {
        fail(path, error_reason("a chain certificate is not PEM"));
    }
}

void use_private_key(SSL_CTX* ctx, const std::string& path) {
    std::string pem = cfg::read_private(path, key_file_max);
    ERR_clear_error();
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* key = bio != nullptr
                        ? PEM_read_bio_PrivateKey(bio, nullptr, no_pass_phrase, nullptr)
                        : nullptr;
    BIO_free(bio);
    OPENSSL_cleanse(pem.data(), pem.size());
    if (key == nullptr) {
        fail(path, error_reason("not a PEM private key (or an encrypted one)"));
    }
    const int ok = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        fail(path, error_reason("not the key of the certificate"));
    }
}

void load_trusted(SSL_CTX* ctx, const std::string& path) {
    const std::string text = cfg::read_checked(path, "", true, pem_file_max);
    const Bio bio = memory_bio(text, path);
    ERR_clear_error();
    STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(bio.get(), nullptr, no_pass_phrase,
                                                        nullptr);
    if (infos == nullptr) {
        fail(path, error_reason("not PEM"));
    }
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    bool ok = true;
    for (int i = 0; ok && i < sk_X509_INFO_num(infos); ++i) {
        const X509_INFO* info = sk_X509_INFO_value(infos, i);
        if (info->x509 != nullptr) {
            ok = X509_STORE_add_cert(store, info->x509) == 1;
            ++count;
        }
        if (ok && info->crl != nullptr) {
            ok = X509_STORE_add_crl(store, info->crl) == 1;
            ++count;
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (!ok) {
        fail(path, error_reason("a certificate cannot be added"));
    }
    if (count == 0) {
        fail(path, "no PEM certificate in it");
    }
}

}  // namespace mctp::tls
