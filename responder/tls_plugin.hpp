// The interface of mpasswdd's TLS plug-in, mpasswdd-tls.so (tls.cpp):
// server-side TLS with OpenSSL, loaded (tls_loader.cpp) only when the
// configuration says `tls = yes`, so that mpasswdd without TLS maps no
// OpenSSL. Plain C types only: the plug-in and mpasswdd share no C++
// objects, allocator or exception, whatever each links its C++ runtime
// with. Nothing throws across it.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

struct mpasswdd_tls_context;  // an OpenSSL SSL_CTX with the files loaded
struct mpasswdd_tls_channel;  // one accepted TLS connection

// Why a call failed: a message for the log, and whether it is about the
// configured files (a configuration error) or the connection.
struct mpasswdd_tls_error {
    char text[1024];
    int file_error;
};

// What the handshake learnt, owned by the channel.
struct mpasswdd_tls_peer {
    const char* subject;  // RFC 2253, empty without a client certificate
    std::size_t subject_size;
    const char* fingerprint;  // sha256, hex
    std::size_t fingerprint_size;
    const unsigned char* exporter;  // RFC 9266 tls-exporter (TLS 1.3 only)
    std::size_t exporter_size;      // 0 when none
};

// Deadlines: std::chrono::steady_clock's nanoseconds since its epoch.
struct mpasswdd_tls_plugin {
    std::uint32_t version;  // mpasswdd_tls_version
    // The server context for the three files (client_ca empty: no client
    // certificate asked for); null with *error.
    mpasswdd_tls_context* (*context)(const char* certificate, const char* key,
                                     const char* client_ca, mpasswdd_tls_error* error);
    void (*context_free)(mpasswdd_tls_context* context);
    // The handshake on fd (made non-blocking) until deadline; takes
    // context in every case; null with *error.
    mpasswdd_tls_channel* (*accept)(mpasswdd_tls_context* context, int fd,
                                    std::int64_t deadline, mpasswdd_tls_error* error);
    void (*peer)(const mpasswdd_tls_channel* channel, mpasswdd_tls_peer* out);
    // As mpasswdd::Channel's: 1/0 input already decoded; > 0 octets read,
    // 0 end of input, -1 error, -2 nothing yet; 1 all written, 0 not.
    int (*pending)(const mpasswdd_tls_channel* channel);
    std::int64_t (*read)(mpasswdd_tls_channel* channel, char* buf, std::size_t n);
    int (*write_all)(mpasswdd_tls_channel* channel, const char* data, std::size_t n,
                     std::int64_t deadline);
    // close_notify (the peer's is not awaited); the caller closes the fd.
    void (*shutdown)(mpasswdd_tls_channel* channel);
    void (*channel_free)(mpasswdd_tls_channel* channel);
};

inline constexpr std::uint32_t mpasswdd_tls_version = 1;
inline constexpr const char* mpasswdd_tls_entry = "mpasswdd_tls_plugin_v1";
using mpasswdd_tls_entry_fn = const mpasswdd_tls_plugin* (*)();

// The plug-in's one exported symbol.
const mpasswdd_tls_plugin* mpasswdd_tls_plugin_v1();
}
