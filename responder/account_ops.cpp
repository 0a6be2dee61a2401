#include "account_ops.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <shadow.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "secret_hash.hpp"
#include "text.hpp"

namespace mpasswdd::account {
namespace {

using Kind = mctp::AccountResult::Kind;

// A yescrypt hash of a password nobody has: CHCK hashes against it when
// the user's own hash cannot match (locked, empty, unusable), so that the
// time taken does not tell.
constexpr const char* stand_in_hash =
    "$y$j9T$e8I8aHV.BfoZwTwtw5ErX.$/E/VxVO/c7T9L8PLcgBsRtSsoVQt3kxVVCAa1khcIMD";

// The longest date LOCK keeps (days; 99999999 is in the year 275759).
constexpr long date_max = 99'999'999;
constexpr const char* expiry_prefix = "lock-expiry-";

mctp::AccountResult failed(std::string why) { return {Kind::failed, std::move(why)}; }

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// A heap buffer that is wiped when it goes: shadow text holds every
// user's hash. Never grows (growing would leave the old copy behind).
class Buffer {
public:
    explicit Buffer(std::size_t capacity)
        : data_(std::make_unique<char[]>(capacity + 1)), capacity_(capacity) {}
    ~Buffer() { mctp::wipe(data_.get(), capacity_ + 1); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    [[nodiscard]] std::string_view view() const noexcept { return {data_.get(), size_}; }
    [[nodiscard]] char* data() noexcept { return data_.get(); }
    void set_size(std::size_t n) noexcept { size_ = n; }
    // False (and nothing added) when it would not fit.
    bool append(std::string_view s) noexcept {
        if (s.size() > capacity_ - size_) {
            return false;
        }
        std::memcpy(data_.get() + size_, s.data(), s.size());
        size_ += s.size();
        return true;
    }

private:
    std::unique_ptr<char[]> data_;
    std::size_t capacity_;
    std::size_t size_ = 0;
};

class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            if (fd_ >= 0) {
                close(fd_);
            }
            fd_ = o.fd_;
            o.fd_ = -1;
        }
        return *this;
    }
    [[nodiscard]] int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_;
};

bool same_file(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
           a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
           a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

long today(const Files& f) {
    return f.today >= 0 ? f.today : static_cast<long>(time(nullptr) / 86400);
}

bool parse_date(std::string_view s, long* out) {
    if (s.empty() || s.size() > 8) {
        return false;
    }
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size() && *out >= 0 && *out <= date_max;
}

// The shadow file, read whole, with what fstat said of it.
struct ShadowText {
    Fd fd;  // still open: the new file takes its labels
    struct stat st {};
    std::unique_ptr<Buffer> text;
};

std::string folder_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == 0 ? "/" : slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::optional<mctp::AccountResult> read_shadow(int dir, const std::string& path, ShadowText* out) {
    out->fd = Fd(openat(dir, base_of(path).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
    const Fd& fd = out->fd;
    if (!fd) {
        return failed(errno_text(path));
    }
    if (fstat(fd.get(), &out->st) != 0) {
        return failed(errno_text(path));
    }
    if (!S_ISREG(out->st.st_mode)) {
        return failed(path + " is not a regular file");
    }
    const auto size = static_cast<std::size_t>(out->st.st_size);
    if (size > shadow_size_max) {
        return failed(path + " is larger than " + std::to_string(shadow_size_max) + " octets");
    }
    out->text = std::make_unique<Buffer>(size);
    std::size_t got = 0;
    while (got < size) {
        const ssize_t n = read(fd.get(), out->text->data() + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return failed(errno_text(path));
        }
        if (n == 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    if (got != size) {
        return failed(path + " changed while it was read");
    }
    out->text->set_size(size);
    return std::nullopt;
}

// Where the user's line is in the text: its offset and length (without
// the newline), and its nine fields.
struct Entry {
    std::size_t offset = 0;
    std::size_t length = 0;
    std::array<std::string_view, 9> fields;
};

// The user's one line. not_local when there is none; failed when more
// than one line names the user (as nss_files reads them: leading white
// space skipped, '#' lines ignored; names compared with white space
// trimmed), when the line is not exactly "user:" at its start, or when it
// does not have nine fields.
std::optional<mctp::AccountResult> find_entry(std::string_view text, std::string_view user,
                                              Entry* out) {
    std::size_t found = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string_view::npos) {
            nl = text.size();
        }
        const std::string_view line = text.substr(pos, nl - pos);
        const std::string_view content = trim(line);
        if (!content.empty() && content.front() != '#') {
            const auto colon = content.find(':');
            if (trim(content.substr(0, colon)) == user) {
                if (++found == 1) {
                    out->offset = pos;
                    out->length = line.size();
                }
            }
        }
        pos = nl + 1;
    }
    if (found == 0) {
        return mctp::AccountResult{Kind::not_local, "no line in the shadow database"};
    }
    if (found > 1) {
        return failed("the shadow database has " + std::to_string(found) + " lines for " +
                      std::string(user) + "; fix it with pwck");
    }
    const std::string_view line = text.substr(out->offset, out->length);
    if (!line.starts_with(std::string(user) + ":")) {
        return failed("the shadow line of " + std::string(user) +
                      " has white space around the name; fix it with pwck");
    }
    std::size_t start = 0;
    for (std::size_t i = 0; i < out->fields.size(); ++i) {
        const auto colon = line.find(':', start);
        const bool last = i + 1 == out->fields.size();
        if ((colon == std::string_view::npos) != last) {
            return failed("the shadow line of " + std::string(user) +
                          " does not have nine fields; fix it with pwck");
        }
        out->fields[i] = line.substr(start, last ? std::string_view::npos : colon - start);
        start = colon + 1;
    }
    return std::nullopt;
}

// The state folder, checked: owned by root (or this process's user), not
// writable by group or others. create: make it (0700) when missing.
// Fd(-1) with *missing when it is not there and not made.
std::optional<mctp::AccountResult> open_state(const Files& f, bool create, Fd* out,
                                              bool* missing) {
    constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    *missing = false;
    int fd = open(f.state_directory.c_str(), flags);
    if (fd < 0 && errno == ENOENT) {
        if (!create) {
            *missing = true;
            return std::nullopt;
        }
        if (mkdir(f.state_directory.c_str(), 0700) != 0 && errno != EEXIST) {
            return failed(errno_text("state_directory " + f.state_directory));
        }
        fd = open(f.state_directory.c_str(), flags);
    }
    if (fd < 0) {
        return failed(errno_text("state_directory " + f.state_directory));
    }
    Fd dir(fd);
    struct stat st {};
    if (fstat(dir.get(), &st) != 0 || (st.st_uid != 0 && st.st_uid != geteuid()) ||
        (st.st_mode & 022) != 0) {
        return failed("state_directory " + f.state_directory +
                      " must be owned by root and not writable by group or others");
    }
    *out = std::move(dir);
    return std::nullopt;
}

// The expiry date LOCK kept for user, if any.
std::optional<mctp::AccountResult> read_kept(const Files& f, const std::string& user,
                                             std::optional<long>* out) {
    out->reset();
    Fd dir;
    bool missing = false;
    if (auto r = open_state(f, false, &dir, &missing); r || missing) {
        return r;
    }
    const std::string name = expiry_prefix + user;
    const Fd fd(openat(dir.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        return errno == ENOENT ? std::nullopt
                               : std::optional(failed(errno_text(f.state_directory + "/" + name)));
    }
    std::array<char, 16> buf{};
    const ssize_t n = read(fd.get(), buf.data(), buf.size());
    std::string_view text(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
    if (text.ends_with('\n')) {
        text.remove_suffix(1);
    }
    long date = 0;
    struct stat st {};
    if (n < 0 || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || !parse_date(text, &date)) {
        return failed(f.state_directory + "/" + name +
                      " does not hold an expiry date; remove it or fix it");
    }
    *out = date;
    return std::nullopt;
}

// Keeps date for UNLK: a temporary file, fsync, rename, fsync the folder.
std::optional<mctp::AccountResult> keep_date(const Files& f, const std::string& user, long date) {
    Fd dir;
    bool missing = false;
    if (auto r = open_state(f, true, &dir, &missing)) {
        return r;
    }
    const std::string name = expiry_prefix + user;
    // A leading dot: never another user's file (a user may be "alice.new").
    const std::string tmp = "." + name + ".tmp";
    unlinkat(dir.get(), tmp.c_str(), 0);
    const std::string text = std::to_string(date) + "\n";
    {
        const Fd fd(openat(dir.get(), tmp.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
        if (!fd || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
            fsync(fd.get()) != 0) {
            const auto r = failed(errno_text(f.state_directory + "/" + tmp));
            unlinkat(dir.get(), tmp.c_str(), 0);
            return r;
        }
    }
    if (renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
        const auto r = failed(errno_text(f.state_directory + "/" + name));
        unlinkat(dir.get(), tmp.c_str(), 0);
        return r;
    }
    fsync(dir.get());
    return std::nullopt;
}

void forget_date(const Files& f, const std::string& user) {
    Fd dir;
    bool missing = false;
    if (open_state(f, false, &dir, &missing) || missing) {
        return;
    }
    const std::string name = expiry_prefix + user;
    if (unlinkat(dir.get(), name.c_str(), 0) == 0) {
        fsync(dir.get());
    }
}

// Empties pam_faillock's tally of user under its lock, as
// `faillock --reset` does. True when it held records.
bool reset_faillock(const Files& f, const std::string& user, bool* busy) {
    const Fd dir(open(f.faillock_directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
        return false;  // pam_faillock not in use here
    }
    const Fd fd(openat(dir.get(), user.c_str(),
                       O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    struct stat st {};
    if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return false;
    }
    // pam_faillock holds the lock for a moment; wait for it at most
    // faillock_wait, never for ever.
    const auto until = std::chrono::steady_clock::now() + f.faillock_wait;
    while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if ((errno != EWOULDBLOCK && errno != EINTR) ||
            std::chrono::steady_clock::now() >= until) {
            *busy = true;
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const bool had = fstat(fd.get(), &st) == 0 && st.st_size > 0;
    const bool done = ftruncate(fd.get(), 0) == 0;
    flock(fd.get(), LOCK_UN);
    return had && done;
}

// lckpwdf() for the scope (when the files ask for it).
class DatabaseLock {
public:
    explicit DatabaseLock(bool take) : taken_(take && lckpwdf() == 0), wanted_(take) {}
    ~DatabaseLock() {
        if (taken_) {
            ulckpwdf();
        }
    }
    DatabaseLock(const DatabaseLock&) = delete;
    DatabaseLock& operator=(const DatabaseLock&) = delete;
    [[nodiscard]] bool ok() const noexcept { return taken_ || !wanted_; }

private:
    bool taken_;
    bool wanted_;
};

// pam_unix reads the shadow line only when the passwd entry points to it
// (its password field "x", or "##user"); otherwise that field is the hash
// and pam_unix ignores the shadow line, expiry date included: an edit or
// a check there would not be what logins see. No entry at all (the
// monitor's user policy refused such a user already) is left to the
// caller.
std::optional<mctp::AccountResult> check_shadowed(const std::string& user) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    const int err = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
    std::optional<mctp::AccountResult> r;
    // Not found may come as 0, ENOENT, ESRCH, EBADF or EPERM; these are
    // the failures to read an entry that is there.
    if (err == ERANGE || err == ENOMEM || err == EIO || err == EINTR || err == EMFILE ||
        err == ENFILE) {
        errno = err;
        r = failed(errno_text("the passwd entry of " + user));
    } else if (found != nullptr && pw.pw_passwd != nullptr) {
        const std::string_view field(pw.pw_passwd);
        if (field != "x" && field != "##" + user) {
            r = failed("PAM ignores the shadow line of " + user +
                       ": the hash is in /etc/passwd (run pwconv)");
        }
    }
    mctp::wipe(buf.data(), buf.size());  // the field may be a hash
    return r;
}

// What one operation changes in the line, and what it needs beside it.
struct Edit {
    bool lock_password = false;
    bool unlock_password = false;
    std::optional<std::string> last_change;
    std::optional<std::string> expire;
    std::optional<long> keep;  // LOCK: the date to keep first
    bool forget = false;       // UNLK: the kept date is used up (or stale)
};

std::optional<mctp::AccountResult> plan(const Files& f, mctp::AccountOp op,
                                        const std::string& user, const Entry& e, Edit* edit) {
    const std::string_view password = e.fields[1];
    const std::string_view expire = e.fields[7];
    switch (op) {
    case mctp::AccountOp::expire:
        if (e.fields[2] != "0") {
            edit->last_change = "0";
        }
        return std::nullopt;
    case mctp::AccountOp::lock: {
        edit->lock_password = !password.starts_with('!');
        long date = 0;
        if (expire.empty()) {
            edit->expire = "1";
        } else if (!parse_date(expire, &date)) {
            return failed("the shadow line of " + user + " has an unreadable expiry date");
        } else if (date > today(f)) {
            // A future date: replaced by 1, kept for UNLK.
            edit->keep = date;
            edit->expire = "1";
        }
        // A date already past (1 included) expires the account as it is.
        // A date kept by an earlier LOCK is stale unless the line still
        // has the 1 that LOCK set (the account was unlocked by hand
        // since): UNLK must not bring it back.
        edit->forget = !edit->keep && expire != "1";
        return std::nullopt;
    }
    case mctp::AccountOp::unlock: {
        if (password.starts_with('!')) {
            if (password.size() == 1) {
                return failed("unlocking " + user +
                              " would leave an empty password; set one with CHPW first");
            }
            edit->unlock_password = true;
        }
        std::optional<long> kept;
        if (auto r = read_kept(f, user, &kept)) {
            return r;
        }
        if (expire == "1") {
            edit->expire = kept ? std::to_string(*kept) : std::string();
        }
        // Another date stays; a date kept for it is stale either way.
        edit->forget = kept.has_value();
        return std::nullopt;
    }
    }
    return failed("unknown operation");
}

bool edits_line(const Edit& e) {
    return e.lock_password || e.unlock_password || e.last_change || e.expire;
}

// The new text: the old one with the user's line rewritten.
std::unique_ptr<Buffer> rewrite(std::string_view text, const Entry& entry, const Edit& edit) {
    auto out = std::make_unique<Buffer>(text.size() + 32);
    bool ok = out->append(text.substr(0, entry.offset));
    for (std::size_t i = 0; i < entry.fields.size(); ++i) {
        std::string_view field = entry.fields[i];
        if (i > 0) {
            ok = ok && out->append(":");
        }
        if (i == 1 && edit.lock_password) {
            ok = ok && out->append("!");
        }
        if (i == 1 && edit.unlock_password) {
            field.remove_prefix(1);
        }
        if (i == 2 && edit.last_change) {
            field = *edit.last_change;
        }
        if (i == 7 && edit.expire) {
            field = *edit.expire;
        }
        ok = ok && out->append(field);
    }
    ok = ok && out->append(text.substr(entry.offset + entry.length));
    return ok ? std::move(out) : nullptr;
}

bool write_all(int fd, std::string_view s) {
    while (!s.empty()) {
        const ssize_t n = write(fd, s.data(), s.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// Gives the new file the old one's SELinux label and POSIX ACL, as
// shadow-utils and pam_unix do (setfscreatecon with the old file's
// context): a file created in /etc gets /etc's default label, which
// confined login programs may not read. Where there is neither (Debian's
// default) nothing is done. False when one was there and not copied
// (an SELinux label only while SELinux is on).
bool copy_labels(int from, int to) {
    for (const char* name : {"security.selinux", "system.posix_acl_access"}) {
        std::array<char, 4096> value{};
        const ssize_t n = fgetxattr(from, name, value.data(), value.size());
        if (n < 0) {
            if (errno == ENODATA || errno == ENOTSUP) {
                continue;
            }
            return false;
        }
        if (fsetxattr(to, name, value.data(), static_cast<std::size_t>(n), 0) != 0) {
            // A label left from an earlier SELinux setup, on a host
            // where it is off now, means nothing (and needs
            // CAP_SYS_ADMIN to copy).
            const bool selinux_off = std::string_view(name) == "security.selinux" &&
                                     access("/sys/fs/selinux/enforce", F_OK) != 0;
            if (!selinux_off) {
                return false;
            }
        }
    }
    return true;
}

// Removes the temporary files of earlier runs that died between creating
// and renaming one (each a copy of every hash). Called with the lock
// held: no other run is writing one now. Their PIDs differ from ours, so
// the unlink of our own name alone would leave them for ever.
void remove_leftovers(int dir, const std::string& path) {
    const std::string prefix = "." + base_of(path) + ".mpasswdd.";
    const int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    const std::unique_ptr<DIR, int (*)(DIR*)> d(fdopendir(fd), closedir);
    if (!d) {
        close(fd);
        return;
    }
    std::vector<std::string> names;
    while (const dirent* e = readdir(d.get())) {
        const std::string_view name(e->d_name);
        if (name.starts_with(prefix) && name.size() > prefix.size() &&
            name.find_first_not_of("0123456789", prefix.size()) == std::string_view::npos) {
            names.emplace_back(name);
        }
    }
    for (const auto& name : names) {
        unlinkat(dir, name.c_str(), 0);
    }
}

// Writes text as the new shadow file: a temporary file beside it with its
// owner, group and mode, fsync, then (if the file is still the one read)
// rename over it and fsync the folder.
std::optional<mctp::AccountResult> replace(int dir, const std::string& path, int read_fd,
                                           const struct stat& read_st, std::string_view text) {
    const std::string tmp = "." + base_of(path) + ".mpasswdd." + std::to_string(getpid());
    remove_leftovers(dir, path);  // of crashed runs (ours included): we hold the lock
    {
        const Fd fd(openat(dir, tmp.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
        if (!fd) {
            return failed(errno_text(folder_of(path) + "/" + tmp));
        }
        const bool ok = (geteuid() != 0 || fchown(fd.get(), read_st.st_uid, read_st.st_gid) == 0) &&
                        fchmod(fd.get(), read_st.st_mode & 07777) == 0 &&
                        copy_labels(read_fd, fd.get()) && write_all(fd.get(), text) && fsync(fd.get()) == 0;
        if (!ok) {
            const auto r = failed(errno_text("writing " + folder_of(path) + "/" + tmp));
            unlinkat(dir, tmp.c_str(), 0);
            return r;
        }
    }
    struct stat now {};
    if (fstatat(dir, base_of(path).c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 ||
        !same_file(now, read_st)) {
        unlinkat(dir, tmp.c_str(), 0);
        return failed(path + " changed while it was edited (by a program that does not take "
                             "lckpwdf); nothing written, try again");
    }
    if (renameat(dir, tmp.c_str(), dir, base_of(path).c_str()) != 0) {
        const auto r = failed(errno_text("renaming over " + path));
        unlinkat(dir, tmp.c_str(), 0);
        return r;
    }
    // Renamed: the change is made. A failed fsync of the folder only
    // leaves it less durable, as shadow-utils (which does none) would.
    fsync(dir);
    return std::nullopt;
}

// The shadow file's folder, the file read whole, and the user's line;
// refused when the user's hash is in the passwd file (check_shadowed).
std::optional<mctp::AccountResult> load(const Files& f, const std::string& user, Fd* dir,
                                        ShadowText* shadow, Entry* entry) {
    const std::string folder = folder_of(f.shadow);
    *dir = Fd(open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!*dir) {
        return failed(errno_text(folder));
    }
    if (auto r = read_shadow(dir->get(), f.shadow, shadow)) {
        return r;
    }
    if (auto r = find_entry(shadow->text->view(), user, entry)) {
        return r;
    }
    return check_shadowed(user);
}

mctp::AccountResult apply_locked(const Files& f, mctp::AccountOp op, const std::string& user) {
    Fd dir;
    ShadowText shadow;
    Entry entry;
    if (auto r = load(f, user, &dir, &shadow, &entry)) {
        return *r;
    }
    Edit edit;
    if (auto r = plan(f, op, user, entry, &edit)) {
        return *r;
    }
    std::string note;
    if (edits_line(edit)) {
        if (edit.keep) {
            if (auto r = keep_date(f, user, *edit.keep)) {
                return *r;
            }
            note = "expiry date " + std::to_string(*edit.keep) + " kept for UNLK";
        }
        const auto text = rewrite(shadow.text->view(), entry, edit);
        if (!text) {
            return failed("the new shadow line does not fit");
        }
        if (f.before_replace) {
            f.before_replace();
        }
        if (auto r = replace(dir.get(), f.shadow, shadow.fd.get(), shadow.st, text->view())) {
            return *r;
        }
    }
    if (edit.forget) {
        forget_date(f, user);
    }
    return {edits_line(edit) ? Kind::done : Kind::already, note};
}

// UNLK's second half, after the shadow lock is released: the tally's
// owner (the user) can hold its flock, and the wait for it must not hold
// lckpwdf, which pam_unix gives up on after a tenth of a second.
void reset_faillock_after(const Files& f, const std::string& user, mctp::AccountResult* r) {
    bool busy = false;
    const auto add = [r](const char* what) {
        r->message += std::string(r->message.empty() ? "" : "; ") + what;
    };
    if (reset_faillock(f, user, &busy)) {
        add("pam_faillock tally reset");
    }
    if (busy) {
        add("pam_faillock tally busy: not reset (faillock --reset)");
    }
}

}  // namespace

mctp::AccountResult apply(const Files& f, mctp::AccountOp op, std::string_view user_view) {
    const std::string user(user_view);
    if (!mctp::is_user_name(user)) {
        return failed("not a valid user name");
    }
    try {
        mctp::AccountResult r;
        {
            const DatabaseLock lock(f.lock_database);
            if (!lock.ok()) {
                return failed("the shadow database is locked by another program (lckpwdf); "
                              "try again");
            }
            r = apply_locked(f, op, user);
        }
        if (op == mctp::AccountOp::unlock &&
            (r.kind == Kind::done || r.kind == Kind::already)) {
            reset_faillock_after(f, user, &r);
        }
        return r;
    } catch (const std::exception& e) {
        return failed(e.what());
    }
}

mctp::AccountResult check_password(const Files& f, std::string_view user_view,
                                   const mctp::Secret& password) {
    const std::string user(user_view);
    if (!mctp::is_user_name(user)) {
        return failed("not a valid user name");
    }
    try {
        Fd dir;
        ShadowText shadow;
        Entry entry;
        if (auto r = load(f, user, &dir, &shadow, &entry)) {
            return *r;
        }
        std::string_view hash = entry.fields[1];
        // As pam_unix: an empty hash, or one starting with '!' (locked) or
        // '*' (disabled), never matches; any other one is libxcrypt's to
        // judge (a '$' one, and the old DES and BSDi ones pam_unix still
        // accepts). A locked hash is still hashed, with its own method and
        // cost, and an unusable one against the stand-in, so that the time
        // taken does not tell whether the account is locked.
        const bool locked = hash.starts_with('!');
        if (locked) {
            hash.remove_prefix(1);
        }
        if (!hash.empty() && !hash.starts_with('!') && !hash.starts_with('*')) {
            const mctp::Secret copy(hash);  // NUL-terminated, wiped
            switch (check_secret(password, copy.c_str())) {
            case HashCheck::match: return {locked ? Kind::mismatch : Kind::done, {}};
            case HashCheck::mismatch: return {Kind::mismatch, {}};
            case HashCheck::unusable: break;
            }
        }
        check_secret(password, stand_in_hash);
        return {Kind::mismatch, {}};
    } catch (const std::exception& e) {
        return failed(e.what());
    }
}

}  // namespace mpasswdd::account
