#include "auth_tally.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "limits.hpp"
#include "log.hpp"

namespace mpasswdd {
namespace {

namespace limits = mctp::limits;

constexpr std::string_view header = "# mpasswdd auth-failures 1: source count window-start-ms\n";
// Longest source: "ffff:ffff:ffff:ffff::/64" is 24 characters.
constexpr std::size_t source_max = 48;

std::string errno_text() { return std::strerror(errno); }

bool owner_ok(uid_t uid) { return uid == 0 || uid == geteuid(); }

// A source as tally_source makes it: "local", an IPv4 address, an IPv6
// /64. Only the characters are checked: a forged line can do no more than
// a forged count.
bool valid_source(std::string_view s) {
    if (s.empty() || s.size() > source_max) {
        return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '.' || c == ':' ||
               c == '/' || c == 'l' || c == 'o';
    });
}

template <class T>
bool parse_number(std::string_view text, T* out) {
    if (text.empty() || text.size() > 19) {
        return false;
    }
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
    return ec == std::errc() && end == text.data() + text.size();
}

// Parses the file; the reason in *why when it is not one this code wrote.
bool parse(std::string_view text, std::vector<AuthTally::Entry>* out, std::string* why) {
    if (text.empty()) {
        return true;  // new
    }
    if (!text.starts_with(header)) {
        *why = "no header";
        return false;
    }
    text.remove_prefix(header.size());
    std::size_t line_no = 1;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        if (nl == std::string_view::npos || nl + 1 > limits::tally_line_max) {
            *why = "line " + std::to_string(line_no) + " is unterminated or too long";
            return false;
        }
        const std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
        const auto a = line.find(' ');
        const auto b = a == std::string_view::npos ? a : line.find(' ', a + 1);
        AuthTally::Entry e;
        if (b == std::string_view::npos || !valid_source(line.substr(0, a)) ||
            !parse_number(line.substr(a + 1, b - a - 1), &e.count) || e.count == 0 ||
            !parse_number(line.substr(b + 1), &e.start_ms) || e.start_ms < 0) {
            *why = "line " + std::to_string(line_no) + " is not 'source count time'";
            return false;
        }
        e.source = line.substr(0, a);
        if (std::any_of(out->begin(), out->end(),
                        [&](const AuthTally::Entry& x) { return x.source == e.source; })) {
            *why = "line " + std::to_string(line_no) + " repeats a source";
            return false;
        }
        if (out->size() >= limits::tally_entries_max) {
            *why = "more than " + std::to_string(limits::tally_entries_max) + " sources";
            return false;
        }
        out->push_back(std::move(e));
    }
    return true;
}

}  // namespace

std::string tally_source(const Peer& peer) {
    if (peer.local) {
        return "local";
    }
    static constexpr std::array<std::uint8_t, 12> v4_mapped{0, 0, 0, 0, 0, 0,
                                                            0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(v4_mapped.begin(), v4_mapped.end(), peer.address.begin())) {
        char buf[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, peer.address.data() + 12, buf, sizeof buf);
        return buf;
    }
    std::array<std::uint8_t, 16> net = peer.address;
    std::fill(net.begin() + 8, net.end(), std::uint8_t{0});
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(AF_INET6, net.data(), buf, sizeof buf);
    return std::string(buf) + "/64";
}

std::int64_t wall_ms() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// flock(2) on the tally for one read-modify-write, waited for at most
// limits::tally_lock_wait_max (another responder holds it for a moment).
class AuthTally::Lock {
public:
    explicit Lock(const AuthTally& t) : fd_(t.fd_) {
        const auto until = std::chrono::steady_clock::now() + limits::tally_lock_wait_max;
        while (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK && errno != EINTR) {
                throw TallyError(t.path_ + ": cannot lock: " + errno_text());
            }
            if (std::chrono::steady_clock::now() >= until) {
                throw TallyError(t.path_ + ": locked by another process for too long");
            }
            poll(nullptr, 0, 5);
        }
    }
    ~Lock() { flock(fd_, LOCK_UN); }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

private:
    int fd_;
};

AuthTally::AuthTally(const std::string& directory, unsigned limit,
                     std::chrono::milliseconds window)
    : path_(directory + "/" + file_name), limit_(limit), window_ms_(window.count()) {
    warn = [](std::string_view m) { log::write(mctp::LogLevel::warning, m); };
    const int dir_flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int dfd = open(directory.c_str(), dir_flags);
    if (dfd < 0 && errno == ENOENT) {
        // inetd, xinetd and ssh have no StateDirectory=: make it here. Its
        // parent must exist.
        if (mkdir(directory.c_str(), 0700) != 0 && errno != EEXIST) {
            throw TallyError(directory + ": cannot create: " + errno_text());
        }
        dfd = open(directory.c_str(), dir_flags);
    }
    if (dfd < 0) {
        throw TallyError(directory + ": " +
                         (errno == ELOOP || errno == ENOTDIR
                              ? std::string("is a symbolic link or not a folder")
                              : "cannot open: " + errno_text()));
    }
    struct stat st {};
    if (fstat(dfd, &st) != 0 || !owner_ok(st.st_uid) || (st.st_mode & 022) != 0) {
        close(dfd);
        throw TallyError(directory +
                         ": must be owned by root and not writable by group or others "
                         "(chown root:root, chmod 700)");
    }
    fd_ = openat(dfd, file_name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    const int open_errno = errno;
    close(dfd);
    if (fd_ < 0) {
        throw TallyError(path_ + ": " + (open_errno == ELOOP
                                             ? std::string("is a symbolic link")
                                             : "cannot open: " + std::string(std::strerror(
                                                                     open_errno))));
    }
    if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        !owner_ok(st.st_uid) || (st.st_mode & 022) != 0) {
        close(fd_);
        fd_ = -1;
        throw TallyError(path_ + ": must be a regular file with one link, owned by root and "
                                 "not writable by group or others (remove it)");
    }
}

AuthTally::~AuthTally() {
    if (fd_ >= 0) {
        close(fd_);
    }
}

bool AuthTally::active(const Entry& e, std::int64_t now_ms) const {
    // A start far in the future means the clock was set back: let it go
    // rather than lock a source out for as long.
    return now_ms - e.start_ms < window_ms_ && e.start_ms - now_ms < window_ms_;
}

std::vector<AuthTally::Entry> AuthTally::load(std::int64_t now_ms) {
    // Up to tally_file_max + 1 octets, read in steps of 4 KiB into the
    // string itself: a buffer of that size filled with zeroes first wrote
    // 96 KiB of heap at each connection's start, for a file that mostly
    // holds a line or two.
    std::string text;
    std::size_t got = 0;
    while (got <= limits::tally_file_max) {
        text.resize(std::min(got + 4096, limits::tally_file_max + 1));
        const ssize_t n = pread(fd_, text.data() + got, text.size() - got,
                                static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw TallyError(path_ + ": cannot read: " + errno_text());
        }
        if (n == 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    std::vector<Entry> entries;
    std::string why;
    if (got > limits::tally_file_max) {
        why = "larger than " + std::to_string(limits::tally_file_max) + " octets";
    } else if (!parse(text, &entries, &why)) {
        entries.clear();
    }
    if (!why.empty()) {
        warn(path_ + " is corrupt (" + why + "); it is reset and its counts are lost");
        store(entries);
    }
    std::erase_if(entries, [&](const Entry& e) { return !active(e, now_ms); });
    return entries;
}

void AuthTally::store(const std::vector<Entry>& entries) {
    std::string text(header);
    for (const auto& e : entries) {
        text += e.source + " " + std::to_string(e.count) + " " + std::to_string(e.start_ms) + "\n";
    }
    std::size_t put = 0;
    while (put < text.size()) {
        const ssize_t n = pwrite(fd_, text.data() + put, text.size() - put,
                                 static_cast<off_t>(put));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw TallyError(path_ + ": cannot write: " + errno_text());
        }
        put += static_cast<std::size_t>(n);
    }
    if (ftruncate(fd_, static_cast<off_t>(text.size())) != 0) {
        throw TallyError(path_ + ": cannot truncate: " + errno_text());
    }
}

bool AuthTally::locked(std::string_view source, std::int64_t now_ms) {
    const Lock lock(*this);
    const auto entries = load(now_ms);
    return std::any_of(entries.begin(), entries.end(), [&](const Entry& e) {
        return e.source == source && e.count >= limit_;
    });
}

std::optional<unsigned> AuthTally::charge(std::string_view source, std::int64_t now_ms) {
    const Lock lock(*this);
    auto entries = load(now_ms);
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const Entry& e) { return e.source == source; });
    if (it != entries.end() && it->count >= limit_) {
        return std::nullopt;
    }
    unsigned count = 1;
    if (it != entries.end()) {
        count = ++it->count;
    } else {
        if (entries.size() >= limits::tally_entries_max) {
            // Full of live windows (expired ones went in load): the one
            // that started first is the nearest to its end anyway, but a
            // locked-out source is never dropped for room (a flood of new
            // sources must not free it), and when every entry is locked
            // out, a new source is refused too: fail closed.
            auto oldest = entries.end();
            for (auto e = entries.begin(); e != entries.end(); ++e) {
                if (e->count < limit_ && (oldest == entries.end() || e->start_ms < oldest->start_ms)) {
                    oldest = e;
                }
            }
            if (oldest == entries.end()) {
                return std::nullopt;
            }
            entries.erase(oldest);
        }
        entries.push_back(Entry{std::string(source), 1, now_ms});
    }
    store(entries);
    return count;
}

void AuthTally::refund(std::string_view source, std::int64_t now_ms) {
    const Lock lock(*this);
    auto entries = load(now_ms);
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const Entry& e) { return e.source == source; });
    if (it == entries.end()) {
        return;
    }
    if (--it->count == 0) {
        entries.erase(it);
    }
    store(entries);
}

}  // namespace mpasswdd
