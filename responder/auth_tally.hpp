// Failed AUTHs per source, counted across connections. Each connection is
// its own process (an mpasswdd@.service instance, an inetd child), so the
// count lives in a small file, STATE_DIRECTORY/auth-failures, changed by
// one process at a time under flock(2). It holds sources, counts and
// times, never a secret.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "peer.hpp"

namespace mpasswdd {

struct TallyError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// What a peer is counted as: its IPv4 address, the /64 of its IPv6
// address ("2001:db8:1:2::/64": one site or host usually holds a whole
// /64), or "local".
std::string tally_source(const Peer& peer);

// Milliseconds since the epoch: the count outlives processes and boots.
std::int64_t wall_ms();

class AuthTally {
public:
    static constexpr const char* file_name = "auth-failures";

    // Opens DIRECTORY/auth-failures, creating the folder (0700) and the
    // file (0600) when missing. Throws TallyError when either is a
    // symbolic link, of the wrong type, owned by anyone but root (or the
    // caller), writable by group or others, or cannot be opened.
    AuthTally(const std::string& directory, unsigned limit, std::chrono::milliseconds window);
    ~AuthTally();
    AuthTally(const AuthTally&) = delete;
    AuthTally& operator=(const AuthTally&) = delete;

    // Whether source has had `limit` failures within the window.
    bool locked(std::string_view source, std::int64_t now_ms);
    // Before a secret is checked: counts one failure for source and
    // returns the count, or nothing (and counts nothing) when the source
    // is locked already. Counting first means parallel connections cannot
    // get more than `limit` secrets checked between them; a right secret
    // takes its count back with refund().
    std::optional<unsigned> charge(std::string_view source, std::int64_t now_ms);
    void refund(std::string_view source, std::int64_t now_ms);

    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    // Told why when a corrupt file is reset (the default logs a warning).
    std::function<void(std::string_view)> warn;

    struct Entry {
        std::string source;
        unsigned count = 0;
        std::int64_t start_ms = 0;  // the first failure of the window
    };

private:
    class Lock;
    std::vector<Entry> load(std::int64_t now_ms);
    void store(const std::vector<Entry>& entries);
    [[nodiscard]] bool active(const Entry& e, std::int64_t now_ms) const;

    std::string path_;
    int fd_ = -1;
    unsigned limit_;
    std::int64_t window_ms_;
};

}  // namespace mpasswdd
