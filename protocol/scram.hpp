// SCRAM-SHA-256 (RFC 5802, RFC 7677), both halves, on Nettle's
// primitives; no I/O. The messages are the SASL ones (RFC 5802 section
// 7), without the base64 of the MCTP framing (protocol.md, "AUTH with
// SCRAM-SHA-256"), which the callers add.
//
// The server side works from a stored verifier only (salt, iteration
// count, StoredKey, ServerKey): it never needs the secret, and a stolen
// verifier does not let anyone log in (the proof needs ClientKey, which
// StoredKey = H(ClientKey) does not give).
//
// Channel binding: the client says "n" (no binding), "y" (it could bind
// but thinks the server cannot) or "p=tls-exporter" with the binding data
// (RFC 9266: 32 octets of the TLS 1.3 exporter "EXPORTER-Channel-Binding").
// A server that offers PLUS refuses "y", as RFC 5802 says.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mctp::scram {

inline constexpr std::size_t key_size = 32;  // SHA-256
using Key = std::array<unsigned char, key_size>;

inline constexpr unsigned iterations_min = 4096;      // RFC 7677's floor
inline constexpr unsigned iterations_max = 10000000;  // bounds the work a verifier can ask for
inline constexpr std::size_t salt_min = 16;
inline constexpr std::size_t salt_max = 64;
inline constexpr std::size_t nonce_octets = 18;       // 24 base64 characters
inline constexpr std::size_t message_max = 1024;      // protocol.md: AUTH lines up to 1024
inline constexpr std::size_t name_max = 64;

// What a target keeps for a controller.
struct Verifier {
    std::string salt;  // raw octets
    unsigned iterations = 0;
    Key stored_key{};
    Key server_key{};
};

// The text form, as PostgreSQL writes it:
// SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>
std::string format_verifier(const Verifier& v);
// nullopt, with *why, for anything else (bounds on iterations and salt).
std::optional<Verifier> parse_verifier(std::string_view text, std::string* why = nullptr);

// Derives the verifier of a secret (PBKDF2-HMAC-SHA-256).
Verifier make_verifier(std::string_view secret, std::string_view salt, unsigned iterations);

// A fresh random salt of salt_min octets, a random nonce (printable,
// no ','), and n random octets, from the kernel's generator
// (getrandom). Throw std::runtime_error if it fails.
std::string random_salt();
std::string random_nonce();
void random_bytes(unsigned char* out, std::size_t n);

std::string base64(std::string_view raw);
std::optional<std::string> unbase64(std::string_view text);  // strict, padded

enum class Binding { none, client_only, tls_exporter };  // "n", "y", "p=tls-exporter"

// SaltedPassword = PBKDF2(secret, salt, iterations), kept per (salt,
// iterations) for one secret, so that a controller talking to many
// targets that share a verifier derives it once per run. Bounded
// (entries_max; beyond that, derived without keeping), safe to share
// between threads, wiped when it goes. The cache is for one secret: the
// caller never asks it with another.
class KeyCache {
public:
    static constexpr std::size_t entries_max = 64;
    KeyCache();
    ~KeyCache();
    KeyCache(const KeyCache&) = delete;
    KeyCache& operator=(const KeyCache&) = delete;
    void salted(std::string_view secret, std::string_view salt, unsigned iterations, Key* out);
    // How many derivations it has run (for tests and benchmarks).
    [[nodiscard]] std::size_t derivations() const;

private:
    struct Impl;
    Impl* impl_;
};

// The controller's half. The iteration count it accepts from a target is
// bounded by iterations_max.
class Client {
public:
    // name: the controller's name (n=), printable ASCII without ',' or '='.
    // binding_data: the tls-exporter octets when binding is tls_exporter.
    Client(std::string name, Binding binding = Binding::none, std::string binding_data = {},
           std::string nonce = random_nonce());
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // client-first-message.
    [[nodiscard]] std::string first() const;
    // client-final-message for the server-first-message and the secret,
    // or nullopt with *why when it is malformed, does not extend our
    // nonce, or asks for iterations or a salt out of bounds (a hostile
    // target must not make the controller burn CPU). The keys derived
    // from the secret are wiped before it returns.
    // With cache, the PBKDF2 step comes from it.
    std::optional<std::string> final(std::string_view server_first, std::string_view secret,
                                     std::string* why, KeyCache* cache = nullptr);
    // Whether server-final proves the target holds this controller's
    // ServerKey (v=, compared in constant time). False for e=... too.
    bool verify(std::string_view server_final, std::string* why);

private:
    std::string name_;
    Binding binding_;
    std::string binding_data_;
    std::string nonce_;
    std::string client_first_bare_;
    Key server_signature_{};
    bool have_signature_ = false;
};

// The target's half, working from the verifier of the controller that the
// client-first-message names (the caller looks it up).
class Server {
public:
    // plus_offered: the server offers SCRAM-SHA-256-PLUS (TLS 1.3 with
    // binding_data, the tls-exporter octets of this connection).
    explicit Server(bool plus_offered = false, std::string binding_data = {},
                    std::string nonce = random_nonce());

    // Parses client-first-message: the controller's name, or nullopt with
    // *why (malformed, "y" while PLUS is offered, a binding we do not
    // have, authzid, extensions).
    std::optional<std::string> start(std::string_view client_first, std::string* why);
    // server-first-message for the verifier of that name.
    std::string first(const Verifier& verifier);
    // Checks client-final-message. On a good proof, the server-final
    // message (v=...); nullopt with *why otherwise (wrong proof, nonce,
    // channel binding or shape).
    std::optional<std::string> final(std::string_view client_final, std::string* why);

private:
    bool plus_offered_;
    std::string binding_data_;
    std::string nonce_;
    std::string gs2_header_;
    std::string client_first_bare_;
    std::string server_first_;
    std::string combined_nonce_;
    Verifier verifier_;
};

}  // namespace mctp::scram
