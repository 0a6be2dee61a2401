// TLS certificates, CA bundles and private keys read the way the
// configuration is (cfg::read_checked, cfg::read_private: a regular file,
// owned by root or the caller, bounded, never a FIFO or a device, which
// would make OpenSSL's own *_file functions wait forever), then handed to
// OpenSSL from memory. Shared by the responder and the controller.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <string>

namespace mctp::tls {

// The largest certificate (chain) or CA bundle file read (PEM).
inline constexpr std::size_t pem_file_max = std::size_t{1} << 20;
// The largest private-key file read (PEM).
inline constexpr std::size_t key_file_max = std::size_t{64} * 1024;

// The first queued OpenSSL error as text (or fallback when none is
// queued), and the queue cleared.
std::string error_reason(const char* fallback);

// Each throws cfg::ConfigError "PATH: why"; the caller adds the key.

// The certificate (first) and its chain (the rest), PEM, as
// SSL_CTX_use_certificate_chain_file does.
void use_certificate_chain(SSL_CTX* ctx, const std::string& path);

// The private key of that certificate, PEM, from a file that only its
// owner may read (chmod 600). An encrypted key is refused: nothing asks
// for a pass phrase. The text is wiped after use.
void use_private_key(SSL_CTX* ctx, const std::string& path);

// Every certificate (and CRL) of a PEM bundle into the trusted store, as
// SSL_CTX_load_verify_locations(ctx, path, nullptr) does.
void load_trusted(SSL_CTX* ctx, const std::string& path);

}  // namespace mctp::tls
