#include "scram.hpp"

#include <map>
#include <mutex>
#include <utility>

#include <sys/random.h>


#include <algorithm>
#include <cerrno>
#include <charconv>
#include <stdexcept>
#include <vector>

#include "scram_crypto.hpp"
#include "secret.hpp"

namespace mctp::scram {
namespace {

constexpr std::string_view prefix = "SCRAM-SHA-256$";
constexpr std::string_view exporter_name = "tls-exporter";

// Wipes a key when it goes.
struct WipedKey {
    Key k{};
    ~WipedKey() { wipe(k.data(), k.size()); }
};

std::string_view bytes(const Key& k) {
    return {reinterpret_cast<const char*>(k.data()), k.size()};
}

const std::uint8_t* octets(std::string_view s) {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

// HMAC-SHA-256, SHA-256 and PBKDF2 from Nettle (scram_crypto.hpp): a
// small library with no global state, so that the responder maps no
// OpenSSL unless TLS is on.
void hmac(std::string_view key, std::string_view data, Key* out) {
    const crypto::Nettle& n = crypto::nettle();
    hmac_sha256_ctx ctx;
    n.hmac_set_key(&ctx, key.size(), octets(key));
    n.hmac_update(&ctx, data.size(), octets(data));
    n.hmac_digest(&ctx, key_size, out->data());
    wipe(&ctx, sizeof ctx);  // holds the key's pads
}

void sha256(std::string_view data, Key* out) {
    const crypto::Nettle& n = crypto::nettle();
    sha256_ctx ctx;
    n.sha_init(&ctx);
    n.sha_update(&ctx, data.size(), octets(data));
    n.sha_digest(&ctx, key_size, out->data());
    wipe(&ctx, sizeof ctx);
}

void salted_password(std::string_view secret, std::string_view salt, unsigned iterations,
                     Key* out) {
    crypto::nettle().pbkdf2(secret.size(), octets(secret), iterations, salt.size(),
                            octets(salt), key_size, out->data());
}

// In time that does not depend on where they differ.
bool equal(const Key& a, const Key& b) {
    volatile unsigned char diff = 0;
    for (std::size_t i = 0; i < key_size; ++i) {
        diff = static_cast<unsigned char>(diff | (a[i] ^ b[i]));
    }
    return diff == 0;
}

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The value of a base64 character that unbase64 has checked.
unsigned sextet(char c) {
    return static_cast<unsigned>(base64_alphabet.find(c));
}

// Octets from the kernel's generator (getrandom(2), which waits only
// until it is seeded at boot).
void random_octets(void* out, std::size_t n) {
    auto* p = static_cast<unsigned char*>(out);
    while (n > 0) {
        const ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::runtime_error("no random octets from getrandom");
        }
        p += got;
        n -= static_cast<std::size_t>(got);
    }
}

// "k=value" fields separated by ','; exactly the keys in `keys`, in order.
std::optional<std::vector<std::string_view>> fields(std::string_view text,
                                                   std::initializer_list<char> keys) {
    std::vector<std::string_view> out;
    for (const char key : keys) {
        if (text.size() < 2 || text[0] != key || text[1] != '=') {
            return std::nullopt;
        }
        const auto comma = text.find(',');
        out.push_back(text.substr(2, comma == std::string_view::npos ? text.npos : comma - 2));
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
        if (comma == std::string_view::npos && out.size() != keys.size()) {
            return std::nullopt;
        }
    }
    if (!text.empty()) {
        return std::nullopt;  // extensions (m=...) and anything else
    }
    return out;
}

bool fail(std::string* why, const char* text) {
    if (why != nullptr) {
        *why = text;
    }
    return false;
}

// The controller names this project allows in n= (no SASL escapes needed).
bool is_name(std::string_view s) {
    if (s.empty() || s.size() > name_max) {
        return false;
    }
    for (const char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '.' || c == '_' || c == '-' || c == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

// A nonce: printable ASCII but ','.
bool is_nonce(std::string_view s) {
    if (s.empty() || s.size() > message_max) {
        return false;
    }
    for (const char c : s) {
        if (c < 0x21 || c > 0x7e || c == ',') {
            return false;
        }
    }
    return true;
}

std::optional<unsigned> parse_iterations(std::string_view s) {
    unsigned n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty() || s[0] == '0' ||
        n < iterations_min || n > iterations_max) {
        return std::nullopt;
    }
    return n;
}

std::string gs2_header(Binding b) {
    switch (b) {
    case Binding::none: return "n,,";
    case Binding::client_only: return "y,,";
    case Binding::tls_exporter: return "p=tls-exporter,,";
    }
    return "n,,";
}

}  // namespace

std::string base64(std::string_view raw) {
    std::string out;
    out.reserve(4 * ((raw.size() + 2) / 3));
    for (std::size_t i = 0; i < raw.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, raw.size() - i);
        std::uint32_t v = 0;
        for (std::size_t j = 0; j < 3; ++j) {
            v = (v << 8) | (j < n ? static_cast<unsigned char>(raw[i + j]) : 0u);
        }
        for (std::size_t j = 0; j < 4; ++j) {
            out += j <= n ? base64_alphabet[(v >> (18 - 6 * j)) & 0x3f] : '=';
        }
    }
    return out;
}

std::optional<std::string> unbase64(std::string_view text) {
    if (text.size() % 4 != 0 || text.size() > 4 * message_max) {
        return std::nullopt;
    }
    std::size_t pad = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                           (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (c == '=' && i + 2 >= text.size()) {
            ++pad;
        } else if (!alpha || pad > 0) {
            return std::nullopt;
        }
    }
    // Checked above: only the alphabet, and at most two '=' at the end.
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        std::uint32_t v = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            v = (v << 6) | (text[i + j] == '=' ? 0u : sextet(text[i + j]));
        }
        out += static_cast<char>((v >> 16) & 0xff);
        out += static_cast<char>((v >> 8) & 0xff);
        out += static_cast<char>(v & 0xff);
    }
    out.resize(out.size() - pad);
    return out;
}

std::string format_verifier(const Verifier& v) {
    return std::string(prefix) + std::to_string(v.iterations) + ":" + base64(v.salt) + "$" +
           base64(bytes(v.stored_key)) + ":" + base64(bytes(v.server_key));
}

std::optional<Verifier> parse_verifier(std::string_view text, std::string* why) {
    const auto bad = [why](const char* what) -> std::optional<Verifier> {
        fail(why, what);
        return std::nullopt;
    };
    if (!text.starts_with(prefix)) {
        return bad("not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY)");
    }
    text.remove_prefix(prefix.size());
    const auto dollar = text.find('$');
    const auto colon1 = text.find(':');
    if (dollar == text.npos || colon1 == text.npos || colon1 > dollar) {
        return bad("not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY)");
    }
    const auto keys = text.substr(dollar + 1);
    const auto colon2 = keys.find(':');
    if (colon2 == keys.npos) {
        return bad("not a SCRAM-SHA-256 verifier (SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY)");
    }
    Verifier v;
    const auto iterations = parse_iterations(text.substr(0, colon1));
    if (!iterations) {
        return bad("the iteration count must be a number from 4096 to 10000000");
    }
    v.iterations = *iterations;
    const auto salt = unbase64(text.substr(colon1 + 1, dollar - colon1 - 1));
    if (!salt || salt->size() < salt_min || salt->size() > salt_max) {
        return bad("the salt must be base64 of 16 to 64 octets");
    }
    v.salt = *salt;
    const auto stored = unbase64(keys.substr(0, colon2));
    const auto server = unbase64(keys.substr(colon2 + 1));
    if (!stored || !server || stored->size() != key_size || server->size() != key_size) {
        return bad("StoredKey and ServerKey must be base64 of 32 octets each");
    }
    std::copy(stored->begin(), stored->end(), v.stored_key.begin());
    std::copy(server->begin(), server->end(), v.server_key.begin());
    return v;
}

Verifier make_verifier(std::string_view secret, std::string_view salt, unsigned iterations) {
    Verifier v;
    v.salt = salt;
    v.iterations = iterations;
    WipedKey salted;
    WipedKey client_key;
    salted_password(secret, salt, iterations, &salted.k);
    hmac(bytes(salted.k), "Client Key", &client_key.k);
    sha256(bytes(client_key.k), &v.stored_key);
    hmac(bytes(salted.k), "Server Key", &v.server_key);
    return v;
}

std::string random_salt() {
    std::string salt(salt_min, '\0');
    random_octets(salt.data(), salt.size());
    return salt;
}

std::string random_nonce() {
    std::string raw(nonce_octets, '\0');
    random_octets(raw.data(), raw.size());
    return base64(raw);  // no ',' in base64
}

void random_bytes(unsigned char* out, std::size_t n) {
    random_octets(out, n);
}

// ---- Client ----

Client::Client(std::string name, Binding binding, std::string binding_data, std::string nonce)
    : name_(std::move(name)), binding_(binding), binding_data_(std::move(binding_data)),
      nonce_(std::move(nonce)) {
    if (!is_name(name_)) {
        throw std::invalid_argument("a SCRAM user name is 1 to 64 of [A-Za-z0-9._:-]");
    }
    client_first_bare_ = "n=" + name_ + ",r=" + nonce_;
}

Client::~Client() { wipe(server_signature_.data(), server_signature_.size()); }

std::string Client::first() const { return gs2_header(binding_) + client_first_bare_; }

struct KeyCache::Impl {
    std::mutex mutex;
    std::map<std::pair<std::string, unsigned>, Key> keys;
    std::size_t derivations = 0;
};

KeyCache::KeyCache() : impl_(new Impl) {}

KeyCache::~KeyCache() {
    for (auto& [k, v] : impl_->keys) {
        wipe(v.data(), v.size());
    }
    delete impl_;
}

void KeyCache::salted(std::string_view secret, std::string_view salt, unsigned iterations,
                      Key* out) {
    const std::lock_guard lock(impl_->mutex);
    const auto key = std::make_pair(std::string(salt), iterations);
    if (const auto it = impl_->keys.find(key); it != impl_->keys.end()) {
        *out = it->second;
        return;
    }
    salted_password(secret, salt, iterations, out);
    ++impl_->derivations;
    if (impl_->keys.size() < entries_max) {
        impl_->keys.emplace(key, *out);
    }
}

std::size_t KeyCache::derivations() const {
    const std::lock_guard lock(impl_->mutex);
    return impl_->derivations;
}

std::optional<std::string> Client::final(std::string_view server_first, std::string_view secret,
                                         std::string* why, KeyCache* cache) {
    const auto f = fields(server_first, {'r', 's', 'i'});
    if (!f) {
        fail(why, "server-first-message is not r=...,s=...,i=...");
        return std::nullopt;
    }
    const std::string_view nonce = (*f)[0];
    if (!nonce.starts_with(nonce_) || nonce.size() == nonce_.size() || !is_nonce(nonce)) {
        fail(why, "the server's nonce does not extend the client's");
        return std::nullopt;
    }
    const auto salt = unbase64((*f)[1]);
    if (!salt || salt->size() < salt_min || salt->size() > salt_max) {
        fail(why, "the server's salt is not base64 of 16 to 64 octets");
        return std::nullopt;
    }
    const auto iterations = parse_iterations((*f)[2]);
    if (!iterations) {
        fail(why, "the server's iteration count is not from 4096 to 10000000");
        return std::nullopt;
    }
    const std::string cbind =
        base64(gs2_header(binding_) + (binding_ == Binding::tls_exporter ? binding_data_ : ""));
    const std::string without_proof = "c=" + cbind + ",r=" + std::string(nonce);
    const std::string auth_message =
        client_first_bare_ + "," + std::string(server_first) + "," + without_proof;

    WipedKey salted, client_key, stored_key, signature, server_key;
    if (cache != nullptr) {
        cache->salted(secret, *salt, *iterations, &salted.k);
    } else {
        salted_password(secret, *salt, *iterations, &salted.k);
    }
    hmac(bytes(salted.k), "Client Key", &client_key.k);
    sha256(bytes(client_key.k), &stored_key.k);
    hmac(bytes(stored_key.k), auth_message, &signature.k);
    Key proof{};
    for (std::size_t i = 0; i < key_size; ++i) {
        proof[i] = static_cast<unsigned char>(client_key.k[i] ^ signature.k[i]);
    }
    hmac(bytes(salted.k), "Server Key", &server_key.k);
    hmac(bytes(server_key.k), auth_message, &server_signature_);
    have_signature_ = true;
    return without_proof + ",p=" + base64(bytes(proof));
}

bool Client::verify(std::string_view server_final, std::string* why) {
    if (!have_signature_) {
        return fail(why, "no client-final-message was sent");
    }
    if (server_final.starts_with("e=")) {
        return fail(why, "the server refused the exchange");
    }
    const auto f = fields(server_final, {'v'});
    const auto v = f ? unbase64((*f)[0]) : std::nullopt;
    if (!v || v->size() != key_size) {
        return fail(why, "server-final-message is not v=<base64 of 32 octets>");
    }
    Key got{};
    std::copy(v->begin(), v->end(), got.begin());
    if (!equal(got, server_signature_)) {
        return fail(why, "the server's signature is wrong: it does not hold this controller's "
                         "verifier");
    }
    return true;
}

// ---- Server ----

Server::Server(bool plus_offered, std::string binding_data, std::string nonce)
    : plus_offered_(plus_offered), binding_data_(std::move(binding_data)),
      nonce_(std::move(nonce)) {}

std::optional<std::string> Server::start(std::string_view client_first, std::string* why) {
    if (client_first.size() > message_max) {
        fail(why, "client-first-message too long");
        return std::nullopt;
    }
    // gs2-header: flag "," authzid(empty) ","
    const auto c1 = client_first.find(',');
    const auto c2 = c1 == client_first.npos ? client_first.npos : client_first.find(',', c1 + 1);
    if (c2 == client_first.npos || c2 != c1 + 1) {
        fail(why, "client-first-message: a GS2 header without authzid is expected");
        return std::nullopt;
    }
    const std::string_view flag = client_first.substr(0, c1);
    if (flag == "y" && plus_offered_) {
        fail(why, "the client could bind the channel but did not, although PLUS is offered");
        return std::nullopt;
    }
    if (flag.starts_with("p=")) {
        if (flag.substr(2) != exporter_name || binding_data_.empty()) {
            fail(why, "channel binding not available here (only tls-exporter over TLS 1.3)");
            return std::nullopt;
        }
    } else if (flag != "n" && flag != "y") {
        fail(why, "client-first-message: a bad GS2 flag");
        return std::nullopt;
    }
    gs2_header_ = std::string(client_first.substr(0, c2 + 1));
    client_first_bare_ = std::string(client_first.substr(c2 + 1));
    const auto f = fields(client_first_bare_, {'n', 'r'});
    if (!f || !is_name((*f)[0]) || !is_nonce((*f)[1])) {
        fail(why, "client-first-message is not n=NAME,r=NONCE");
        return std::nullopt;
    }
    combined_nonce_ = std::string((*f)[1]) + nonce_;
    return std::string((*f)[0]);
}

std::string Server::first(const Verifier& verifier) {
    verifier_ = verifier;
    server_first_ = "r=" + combined_nonce_ + ",s=" + base64(verifier.salt) +
                    ",i=" + std::to_string(verifier.iterations);
    return server_first_;
}

std::optional<std::string> Server::final(std::string_view client_final, std::string* why) {
    if (server_first_.empty() || client_final.size() > message_max) {
        fail(why, "client-final-message out of order or too long");
        return std::nullopt;
    }
    const auto f = fields(client_final, {'c', 'r', 'p'});
    if (!f) {
        fail(why, "client-final-message is not c=...,r=...,p=...");
        return std::nullopt;
    }
    const std::string expected_cbind =
        base64(gs2_header_ + (gs2_header_.starts_with("p=") ? binding_data_ : ""));
    if ((*f)[0] != expected_cbind) {
        fail(why, "the channel binding does not match");
        return std::nullopt;
    }
    if ((*f)[1] != combined_nonce_) {
        fail(why, "the nonce does not match");
        return std::nullopt;
    }
    const auto proof = unbase64((*f)[2]);
    if (!proof || proof->size() != key_size) {
        fail(why, "the proof is not base64 of 32 octets");
        return std::nullopt;
    }
    const std::string without_proof(client_final.substr(0, client_final.rfind(",p=")));
    const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + without_proof;
    WipedKey signature, client_key, stored;
    hmac(bytes(verifier_.stored_key), auth_message, &signature.k);
    for (std::size_t i = 0; i < key_size; ++i) {
        client_key.k[i] = static_cast<unsigned char>(static_cast<unsigned char>((*proof)[i]) ^
                                                     signature.k[i]);
    }
    sha256(bytes(client_key.k), &stored.k);
    if (!equal(stored.k, verifier_.stored_key)) {
        fail(why, "wrong proof");
        return std::nullopt;
    }
    Key server_signature{};
    hmac(bytes(verifier_.server_key), auth_message, &server_signature);
    return "v=" + base64(bytes(server_signature));
}

}  // namespace mctp::scram
