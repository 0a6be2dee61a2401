#include "journal.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <sstream>

#include <system_error>

#include "controller_limits.hpp"
#include "inventory.hpp"
#include "text.hpp"

namespace mpasswd::journal {
namespace {

constexpr std::string_view magic = "mpasswd-run 1";
constexpr std::string_view suffix = ".run";
constexpr std::string_view lock_name = ".lock";
constexpr std::size_t log_failed_max = 10;

std::string errno_text(int e) {
    return std::strerror(e);
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A value in a record: printable ASCII but space and '%', which become
// %XX; the empty value is "-", a lone "-" is %2D.
std::string encode(std::string_view s) {
    if (s.empty()) {
        return "-";
    }
    if (s == "-") {
        return "%2D";
    }
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || c == '%') {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string decode(std::string_view s) {
    if (s == "-") {
        return {};
    }
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto u = static_cast<unsigned char>(s[i]);
        if (u <= 0x20 || u >= 0x7f) {
            throw JournalError("a value with a raw control character or space");
        }
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) {
            throw JournalError("a cut-off %XX escape");
        }
        const int hi = hex_digit(s[i + 1]);
        const int lo = hex_digit(s[i + 2]);
        if (hi < 0 || lo < 0) {
            throw JournalError("a bad %XX escape");
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

bool is_word(std::string_view s) {
    return !s.empty() && s.size() <= 32 &&
           std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || c == '_' || c == '-'; });
}

std::string yes_no(bool b) {
    return b ? "yes" : "no";
}

bool parse_number(std::string_view s, std::int64_t max, std::int64_t* out) {
    if (s.empty() || s.size() > 19) {
        return false;
    }
    std::int64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    if (v > max) {
        return false;
    }
    *out = v;
    return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const auto at = s.find(sep, start);
        out.push_back(s.substr(start, at == std::string_view::npos ? at : at - start));
        if (at == std::string_view::npos) {
            return out;
        }
        start = at + 1;
    }
}

bool pid_alive(long pid) {
    if (pid <= 0 || pid > 0x7fffffff) {
        return false;
    }
    return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// While a record is written: the caller's soft RLIMIT_FSIZE (a setuid
// program inherits it) lifted as far as allowed, and SIGXFSZ ignored so
// that a write past a hard limit fails instead of killing the run.
class FileSizeRoom {
public:
    FileSizeRoom() {
        struct sigaction ignore {};
        ignore.sa_handler = SIG_IGN;
        sigemptyset(&ignore.sa_mask);
        sigaction(SIGXFSZ, &ignore, &old_action_);
        if (getrlimit(RLIMIT_FSIZE, &old_) == 0) {
            saved_ = true;
            rlimit room{RLIM_INFINITY, RLIM_INFINITY};
            if (setrlimit(RLIMIT_FSIZE, &room) != 0) {
                room = rlimit{old_.rlim_max, old_.rlim_max};
                setrlimit(RLIMIT_FSIZE, &room);
            }
        }
    }
    ~FileSizeRoom() {
        if (saved_) {
            setrlimit(RLIMIT_FSIZE, &old_);
        }
        sigaction(SIGXFSZ, &old_action_, nullptr);
    }
    FileSizeRoom(const FileSizeRoom&) = delete;
    FileSizeRoom& operator=(const FileSizeRoom&) = delete;

private:
    rlimit old_{};
    bool saved_ = false;
    struct sigaction old_action_ {};
};

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }

private:
    int fd_;
};

// The folder's lock: only to mark a run resumed and to prune.
class Lock {
public:
    Lock(int dirfd, bool wait)
        : fd_(openat(dirfd, std::string(lock_name).c_str(),
                     O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600)) {
        struct stat st {};
        if (fd_.get() < 0 || fstat(fd_.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
            return;
        }
        // Bounded: a run that holds it and is stopped cannot stall us.
        for (int i = 0; i < (wait ? 100 : 1); ++i) {
            if (i > 0) {
                usleep(50'000);
            }
            if (flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) {
                held_ = true;
                return;
            }
        }
    }
    [[nodiscard]] bool held() const { return held_; }

private:
    Fd fd_;
    bool held_ = false;
};

std::string new_id() {
    const auto ms = now_ms();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::uint32_t random = 0;
    if (getrandom(&random, sizeof random, 0) != sizeof random) {
        random = static_cast<std::uint32_t>(ms * 2654435761U) ^ static_cast<std::uint32_t>(getpid());
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02d.%03dZ-%08x", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000), random);
    return buf;
}

// The start time of an id, in Unix seconds.
std::time_t id_time(std::string_view id) {
    std::tm tm{};
    const auto num = [&](std::size_t at, std::size_t n) {
        int v = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            v = v * 10 + (id[i] - '0');
        }
        return v;
    };
    tm.tm_year = num(0, 4) - 1900;
    tm.tm_mon = num(4, 2) - 1;
    tm.tm_mday = num(6, 2);
    tm.tm_hour = num(9, 2);
    tm.tm_min = num(11, 2);
    tm.tm_sec = num(13, 2);
    return timegm(&tm);
}

std::string record_name(std::string_view id) {
    return std::string(id) + std::string(suffix);
}

}  // namespace

std::string_view applied_name(Applied a) noexcept {
    switch (a) {
    case Applied::no: return "no";
    case Applied::yes: return "yes";
    case Applied::maybe: return "maybe";
    }
    return "no";
}

Who who_am_i() {
    Who w;
    w.uid = getuid();
    passwd pw{};
    passwd* found = nullptr;
    std::array<char, 4096> buf{};
    if (getpwuid_r(w.uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
        mctp::is_user_name(found->pw_name)) {
        w.name = found->pw_name;
    }
    // As the caller claims it: a setuid program's caller owns its
    // environment. Only a user name is kept.
    if (const char* sudo = std::getenv("SUDO_USER");
        sudo != nullptr && mctp::is_user_name(sudo)) {
        w.sudo_user = sudo;
    }
    if (const int fd = open("/proc/self/loginuid", O_RDONLY | O_CLOEXEC); fd >= 0) {
        char text[16] = {};
        const ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        std::int64_t v = 0;
        if (n > 0 && parse_number(std::string_view(text, static_cast<std::size_t>(n)), 0xffffffff,
                                  &v) &&
            v != 0xffffffff) {
            w.login_uid = static_cast<unsigned>(v);
        }
    }
    return w;
}

std::string target_spec(const Target& t) {
    std::string s = t.label() + " " + std::string(via_name(t.via));
    if (t.insecure_plaintext) {
        s += " insecure_plaintext";
    }
    if (t.auth_plain) {
        s += " auth=plain";
    }
    if (!t.tls_fingerprint.empty()) {
        s += " tls_fingerprint=" + t.tls_fingerprint;
    }
    return s;
}

std::vector<Target> targets_of(const Record& r, const std::vector<std::size_t>& which) {
    std::string lines;
    for (const auto i : which) {
        lines += r.targets.at(i).spec + "\n";
    }
    try {
        return parse_hosts(lines, "run " + r.id, TargetDefaults(limits::default_port));
    } catch (const std::exception& e) {
        throw JournalError(e.what());
    }
}

Record new_record(std::string_view program, std::string_view action, std::string_view user,
                  const std::vector<Target>& targets) {
    Record r;
    r.program = program;
    r.pid = getpid();
    r.started_ms = now_ms();
    r.who = who_am_i();
    r.user = user;
    r.action = action;
    for (const auto& t : targets) {
        TargetEntry e;
        e.spec = target_spec(t);
        e.label = t.label();
        r.targets.push_back(std::move(e));
    }
    return r;
}

void set_result(TargetEntry& e, const Result& r) {
    e.result = outcome_name(r.outcome);
    e.code = r.code;
    e.phase = r.phase;
    e.step = r.step;
    e.text = mctp::printable(r.text, text_max);
    // The engine's word: it knows per user whether the changing line went
    // out and what came back (fanout.cpp, per_item).
    e.applied = r.applied;
}

void mark_sent(Record& r) {
    for (auto& e : r.targets) {
        if (e.result == "pending") {
            e.applied = Applied::maybe;
            e.phase = "change";
        }
    }
}

std::string format(const Record& r) {
    std::ostringstream o;
    o << magic << "\n"
      << "id " << encode(r.id) << "\n"
      << "program " << encode(r.program) << "\n"
      << "pid " << r.pid << "\n"
      << "started " << r.started_ms << "\n"
      << "ended " << r.ended_ms << "\n"
      << "uid " << r.who.uid << "\n"
      << "uid_name " << encode(r.who.name) << "\n"
      << "sudo_user " << encode(r.who.sudo_user) << "\n"
      << "login_uid " << (r.who.login_uid ? std::to_string(*r.who.login_uid) : "-") << "\n"
      << "user " << encode(r.user) << "\n"
      << "action " << encode(r.action) << "\n"
      << "best_effort " << yes_no(r.best_effort) << "\n"
      << "if_different " << yes_no(r.if_different) << "\n"
      << "resumes " << encode(r.resumes) << "\n"
      << "resumed_by " << encode(r.resumed_by) << "\n"
      << "targets " << r.targets.size() << "\n";
    for (const auto& t : r.targets) {
        o << "target " << encode(t.spec) << " " << encode(t.label) << " " << encode(t.result)
          << " " << t.code << " " << encode(t.phase) << " " << encode(t.step) << " "
          << applied_name(t.applied) << " " << encode(t.text) << "\n";
    }
    o << "end\n";
    return o.str();
}

Record parse(std::string_view text) {
    if (text.size() > record_max) {
        throw JournalError("longer than " + std::to_string(record_max) + " octets");
    }
    if (!text.ends_with("\nend\n")) {
        throw JournalError("not a whole record (no end line)");
    }
    auto lines = split(text.substr(0, text.size() - 1), '\n');
    std::size_t at = 0;
    const auto next = [&](std::string_view key) {
        if (at >= lines.size()) {
            throw JournalError("no " + std::string(key) + " line");
        }
        const auto line = lines[at++];
        if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ' ') {
            throw JournalError("line " + std::to_string(at) + ": " + std::string(key) +
                               " expected");
        }
        return line.substr(key.size() + 1);
    };
    const auto number = [&](std::string_view key, std::int64_t max) {
        std::int64_t v = 0;
        if (!parse_number(next(key), max, &v)) {
            throw JournalError("line " + std::to_string(at) + ": bad " + std::string(key));
        }
        return v;
    };
    const auto flag = [&](std::string_view key) {
        const auto v = next(key);
        if (v != "yes" && v != "no") {
            throw JournalError("line " + std::to_string(at) + ": bad " + std::string(key));
        }
        return v == "yes";
    };
    const auto id_or_empty = [&](std::string_view key) {
        std::string v = decode(next(key));
        if (!v.empty() && !is_run_id(v)) {
            throw JournalError("line " + std::to_string(at) + ": bad " + std::string(key));
        }
        return v;
    };
    if (lines.empty() || lines[0] != magic) {
        throw JournalError("not a run record");
    }
    at = 1;
    Record r;
    r.id = decode(next("id"));
    if (!is_run_id(r.id)) {
        throw JournalError("bad id");
    }
    r.program = decode(next("program"));
    if (!is_word(r.program)) {
        throw JournalError("bad program");
    }
    r.pid = static_cast<long>(number("pid", 0x7fffffff));
    r.started_ms = number("started", INT64_MAX / 2);
    r.ended_ms = number("ended", INT64_MAX / 2);
    r.who.uid = static_cast<unsigned>(number("uid", 0xfffffffe));
    r.who.name = decode(next("uid_name"));
    r.who.sudo_user = decode(next("sudo_user"));
    for (const auto* name : {&r.who.name, &r.who.sudo_user}) {
        if (!name->empty() && !mctp::is_user_name(*name)) {
            throw JournalError("bad user name");
        }
    }
    if (const auto v = next("login_uid"); v != "-") {
        std::int64_t n = 0;
        if (!parse_number(v, 0xfffffffe, &n)) {
            throw JournalError("bad login_uid");
        }
        r.who.login_uid = static_cast<unsigned>(n);
    }
    r.user = decode(next("user"));
    if (!mctp::is_user_name(r.user)) {
        throw JournalError("bad user");
    }
    r.action = decode(next("action"));
    if (!is_word(r.action)) {
        throw JournalError("bad action");
    }
    r.best_effort = flag("best_effort");
    r.if_different = flag("if_different");
    r.resumes = id_or_empty("resumes");
    r.resumed_by = id_or_empty("resumed_by");
    const auto n = static_cast<std::size_t>(number("targets", limits::targets_max));
    if (lines.size() != at + n + 1) {
        throw JournalError("the number of target lines is not " + std::to_string(n));
    }
    for (std::size_t i = 0; i < n; ++i) {
        const auto fields = split(next("target"), ' ');
        if (fields.size() != 8) {
            throw JournalError("line " + std::to_string(at) + ": a target needs 8 fields");
        }
        TargetEntry e;
        e.spec = decode(fields[0]);
        e.label = decode(fields[1]);
        e.result = decode(fields[2]);
        std::int64_t code = 0;
        if (fields[3] != "0" && !parse_number(fields[3], 999, &code)) {
            throw JournalError("line " + std::to_string(at) + ": bad code");
        }
        e.code = static_cast<int>(code);
        e.phase = decode(fields[4]);
        e.step = decode(fields[5]);
        if (fields[6] == "yes") {
            e.applied = Applied::yes;
        } else if (fields[6] == "maybe") {
            e.applied = Applied::maybe;
        } else if (fields[6] != "no") {
            throw JournalError("line " + std::to_string(at) + ": bad applied");
        }
        e.text = decode(fields[7]);
        if (e.spec.empty() || e.label.empty() || !is_word(e.result) ||
            !mctp::is_printable_ascii(e.spec) || !mctp::is_printable_ascii(e.text) ||
            !mctp::is_printable_ascii(e.step) || e.text.size() > text_max * 4) {
            throw JournalError("line " + std::to_string(at) + ": bad target");
        }
        r.targets.push_back(std::move(e));
    }
    if (lines[at] != "end") {
        throw JournalError("text after the targets");
    }
    return r;
}

bool is_run_id(std::string_view id) noexcept {
    // YYYYMMDDTHHMMSS.mmmZ-xxxxxxxx
    if (id.size() != 29) {
        return false;
    }
    for (std::size_t i = 0; i < id.size(); ++i) {
        const char c = id[i];
        const bool ok = i == 8    ? c == 'T'
                        : i == 15 ? c == '.'
                        : i == 19 ? c == 'Z'
                        : i == 20 ? c == '-'
                        : i > 20  ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                                  : c >= '0' && c <= '9';
        if (!ok) {
            return false;
        }
    }
    return true;
}

std::string_view state_name(State s) noexcept {
    switch (s) {
    case State::running: return "running";
    case State::interrupted: return "interrupted";
    case State::done: return "done";
    case State::refused: return "refused";
    case State::unfinished: return "unfinished";
    case State::resumed: return "resumed";
    }
    return "unknown";
}

int exit_status_of(std::string_view result, Applied applied) noexcept {
    if (applied == Applied::maybe) {
        return exit_status::unknown;
    }
    if (is_done(result)) {
        return exit_status::ok;
    }
    if (result == "refused" || result == "skipped" || result == "different") {
        return exit_status::refused;
    }
    // unreachable, untrusted, timeout, protocol-error, unsupported, pending
    return exit_status::unreachable;
}

int exit_status_of(const Record& r) noexcept {
    int worst = exit_status::ok;
    for (const auto& t : r.targets) {
        worst = std::max(worst, exit_status_of(t.result, t.applied));
    }
    return worst;
}

State state_of(const Record& r) {
    if (!r.resumed_by.empty()) {
        return State::resumed;
    }
    if (r.ended_ms == 0) {
        return pid_alive(r.pid) ? State::running : State::interrupted;
    }
    const int status = exit_status_of(r);
    return status == exit_status::ok        ? State::done
           : status == exit_status::refused ? State::refused
                                            : State::unfinished;
}

bool is_done(std::string_view result) noexcept {
    return result == "ok" || result == "unchanged";
}

std::vector<std::size_t> unfinished_targets(const Record& r) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < r.targets.size(); ++i) {
        if (!is_done(r.targets[i].result) || r.targets[i].applied == Applied::maybe) {
            out.push_back(i);
        }
    }
    return out;
}

std::string log_line(const Record& r) {
    std::map<std::string, std::size_t> counts;
    std::size_t maybe = 0;
    std::vector<std::string> failed;
    std::size_t failed_n = 0;
    for (const auto& t : r.targets) {
        ++counts[t.result];
        maybe += t.applied == Applied::maybe ? 1 : 0;
        if (!is_done(t.result)) {
            ++failed_n;
            if (failed.size() < log_failed_max) {
                failed.push_back(mctp::printable(t.label, 300) + " " + t.result +
                                 (t.applied == Applied::maybe ? " (maybe applied)" : ""));
            }
        }
    }
    std::string who = "uid " + std::to_string(r.who.uid);
    if (!r.who.name.empty()) {
        who += " (" + r.who.name + ")";
    }
    if (!r.who.sudo_user.empty()) {
        who += " SUDO_USER " + r.who.sudo_user;
    }
    if (r.who.login_uid) {
        who += " login uid " + std::to_string(*r.who.login_uid);
    }
    std::string out = "run " + r.id + (r.resumes.empty() ? "" : " (resumes " + r.resumes + ")") +
                      ": " + who + ": " + r.action + " of " + r.user + " on " +
                      std::to_string(r.targets.size()) + " targets: ";
    bool first = true;
    for (const auto& [result, n] : counts) {
        out += (first ? "" : ", ") + std::to_string(n) + " " + result;
        first = false;
    }
    if (maybe != 0) {
        out += ", " + std::to_string(maybe) + " maybe applied";
    }
    if (!failed.empty()) {
        out += "; failed: ";
        for (std::size_t i = 0; i < failed.size(); ++i) {
            out += (i ? ", " : "") + failed[i];
        }
        if (failed_n > failed.size()) {
            out += " and " + std::to_string(failed_n - failed.size()) + " more";
        }
    }
    return out;
}

Journal::Journal(const Settings& settings) : dir_(settings.directory), settings_(settings) {
    if (dir_.empty() || dir_.front() != '/') {
        throw JournalError("journal_directory must be an absolute path");
    }
    const auto open_dir = [&] {
        return open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    };
    dirfd_ = open_dir();
    if (dirfd_ < 0 && errno == ENOENT) {
        if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
            throw JournalError(dir_ + ": cannot make the journal folder: " + errno_text(errno));
        }
        dirfd_ = open_dir();
    }
    if (dirfd_ < 0) {
        const int e = errno;
        throw JournalError(dir_ + ": " +
                           (e == ENOTDIR || e == ELOOP ? "not a folder (or a symlink)"
                                                        : "cannot open: " + errno_text(e)));
    }
    struct stat st {};
    if (fstat(dirfd_, &st) != 0 || !S_ISDIR(st.st_mode)) {
        close(dirfd_);
        throw JournalError(dir_ + ": not a folder");
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
        close(dirfd_);
        throw JournalError(dir_ + ": the journal folder must be owned by uid " +
                           std::to_string(geteuid()) + " and writable by nobody else "
                           "(chmod 700)");
    }
}

Journal::~Journal() {
    if (dirfd_ >= 0) {
        close(dirfd_);
    }
}

std::string Journal::write_temp(const Record& r) {
    if (!is_run_id(r.id)) {
        throw JournalError("bad run id");
    }
    const std::string text = format(r);
    const std::string name = record_name(r.id);
    const std::string tmp = "." + r.id + "." + std::to_string(getpid()) + ".tmp";
    const FileSizeRoom room;
    int fd = openat(dirfd_, tmp.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        // Left by a killed process that had this pid.
        unlinkat(dirfd_, tmp.c_str(), 0);
        fd = openat(dirfd_, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
    }
    if (fd < 0) {
        throw JournalError(dir_ + "/" + tmp + ": cannot create: " + errno_text(errno));
    }
    const auto fail = [&](const std::string& what, int e) {
        close(fd);
        unlinkat(dirfd_, tmp.c_str(), 0);
        throw JournalError(dir_ + "/" + name + ": cannot " + what + ": " + errno_text(e));
    };
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("write", errno);
        }
        done += static_cast<std::size_t>(n);
    }
    if (close(fd) != 0) {
        fd = -1;
        unlinkat(dirfd_, tmp.c_str(), 0);
        throw JournalError(dir_ + "/" + name + ": cannot write: " + errno_text(errno));
    }
    return tmp;
}

namespace {

// Renames tmp over (or, first, to) the record; EEXIST for a first record
// comes back as std::system_error (the caller draws another id).
void rename_into_place(int dirfd, const std::string& dir, const std::string& tmp,
                       const std::string& name, bool first) {
    const int rc = first ? renameat2(dirfd, tmp.c_str(), dirfd, name.c_str(), RENAME_NOREPLACE)
                         : renameat(dirfd, tmp.c_str(), dirfd, name.c_str());
    if (rc != 0) {
        const int e = errno;
        unlinkat(dirfd, tmp.c_str(), 0);
        if (first && e == EEXIST) {
            throw std::system_error(e, std::generic_category());
        }
        throw JournalError(dir + "/" + name + ": cannot rename: " + errno_text(e));
    }
}

}  // namespace

void Journal::write_file(const Record& r, bool first) {
    const std::string tmp = write_temp(r);
    const std::string name = record_name(r.id);
    // The data is on disk before the rename makes it the record.
    const int fd = openat(dirfd_, tmp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        const int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        unlinkat(dirfd_, tmp.c_str(), 0);
        throw JournalError(dir_ + "/" + name + ": cannot fsync: " + errno_text(e));
    }
    close(fd);
    rename_into_place(dirfd_, dir_, tmp, name, first);
    fsync(dirfd_);
}

std::vector<std::size_t> Journal::write_batch(const std::vector<Record>& records, bool first) {
    std::vector<std::string> temps;
    temps.reserve(records.size());
    try {
        for (const auto& r : records) {
            temps.push_back(write_temp(r));
        }
    } catch (...) {
        for (const auto& t : temps) {
            unlinkat(dirfd_, t.c_str(), 0);
        }
        throw;
    }
    // One sync for every temporary file of the round.
    if (syncfs(dirfd_) != 0) {
        const int e = errno;
        for (const auto& t : temps) {
            unlinkat(dirfd_, t.c_str(), 0);
        }
        throw JournalError(dir_ + ": cannot sync: " + errno_text(e));
    }
    std::vector<std::size_t> taken;
    for (std::size_t i = 0; i < records.size(); ++i) {
        try {
            rename_into_place(dirfd_, dir_, temps[i], record_name(records[i].id), first);
        } catch (const std::system_error&) {
            taken.push_back(i);  // a first record whose id another run drew
        } catch (...) {
            for (std::size_t j = i + 1; j < records.size(); ++j) {
                unlinkat(dirfd_, temps[j].c_str(), 0);
            }
            throw;
        }
    }
    fsync(dirfd_);
    return taken;
}

void Journal::create(Record& r) {
    create_one(r);
    prune(r.id);
}

void Journal::create_all(std::vector<Record>& records) {
    if (records.empty()) {
        return;
    }
    for (auto& r : records) {
        r.id = new_id();
    }
    for (const auto i : write_batch(records, true)) {
        create_one(records[i]);  // another id, the slow way
    }
    // The batch's records are running (this pid, no end): prune keeps them.
    prune(records.front().id);
}

void Journal::write_all(const std::vector<Record>& records) {
    if (records.empty()) {
        return;
    }
    write_batch(records, false);
}

void Journal::create_one(Record& r) {
    for (int attempt = 0;; ++attempt) {
        r.id = new_id();
        try {
            write_file(r, true);
            break;
        } catch (const std::system_error&) {
            if (attempt >= 10) {
                throw JournalError(dir_ + ": cannot draw a new run id");
            }
        }
    }
}

void Journal::write(const Record& r) {
    write_file(r, false);
}

Record Journal::read(std::string_view id) const {
    if (!is_run_id(id)) {
        throw JournalError("'" + mctp::printable(id, 64) +
                           "' is not a run id (like 20261206T154247.123Z-0a1b2c3d)");
    }
    const std::string name = record_name(id);
    const int fd = openat(dirfd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        throw JournalError("run " + std::string(id) +
                           (e == ENOENT ? ": no such run in " + dir_ : ": " + errno_text(e)));
    }
    const Fd guard(fd);
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        throw JournalError("run " + std::string(id) + ": not a regular file");
    }
    if (static_cast<std::uint64_t>(st.st_size) > record_max) {
        throw JournalError("run " + std::string(id) + ": record too large");
    }
    std::string text(static_cast<std::size_t>(st.st_size) + 1, '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    try {
        Record r = parse(text);
        if (r.id != id) {
            throw JournalError("its id is another");
        }
        return r;
    } catch (const JournalError& e) {
        throw JournalError("run " + std::string(id) + ": bad record: " + e.what());
    }
}

std::vector<std::string> Journal::ids() const {
    const int fd = openat(dirfd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        throw JournalError(dir_ + ": cannot list: " + errno_text(errno));
    }
    DIR* d = fdopendir(fd);
    if (d == nullptr) {
        close(fd);
        throw JournalError(dir_ + ": cannot list: " + errno_text(errno));
    }
    std::vector<std::string> out;
    while (const dirent* e = readdir(d)) {
        const std::string_view name = e->d_name;
        if (name.ends_with(suffix)) {
            const auto id = name.substr(0, name.size() - suffix.size());
            if (is_run_id(id)) {
                out.emplace_back(id);
            }
        }
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

void Journal::claim(std::string_view old_id, std::string_view new_id) {
    const Lock lock(dirfd_, true);
    if (!lock.held()) {
        throw JournalError(dir_ + ": the journal is locked; try again");
    }
    Record old = read(old_id);
    if (!old.resumed_by.empty()) {
        throw JournalError("run " + old.id + " was resumed already by run " + old.resumed_by);
    }
    if (state_of(old) == State::running) {
        throw JournalError("run " + old.id + " is still running (pid " +
                           std::to_string(old.pid) + ")");
    }
    if (unfinished_targets(old).empty()) {
        throw JournalError("run " + old.id + " has nothing left to finish");
    }
    old.resumed_by = new_id;
    write_file(old, false);
}

void Journal::prune(std::string_view keep) {
    const Lock lock(dirfd_, false);
    if (!lock.held()) {
        return;  // another run prunes
    }
    const auto all = ids();
    struct Entry {
        std::string id;
        std::uint64_t size;
    };
    std::vector<Entry> runs;
    std::uint64_t total = 0;
    for (const auto& id : all) {
        struct stat st {};
        if (fstatat(dirfd_, record_name(id).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            runs.push_back({id, static_cast<std::uint64_t>(st.st_size)});
            total += static_cast<std::uint64_t>(st.st_size);
        }
    }
    const std::time_t oldest =
        std::time(nullptr) - static_cast<std::time_t>(settings_.keep_days) * 86400;
    std::size_t count = runs.size();
    for (const auto& run : runs) {  // oldest first
        const bool too_many = count > settings_.keep_runs;
        const bool too_old = id_time(run.id) < oldest;
        const bool too_big = total > total_max;
        if (!too_many && !too_old && !too_big) {
            break;
        }
        if (run.id == keep) {
            continue;
        }
        try {
            if (state_of(read(run.id)) == State::running) {
                continue;
            }
        } catch (const JournalError&) {
            // A bad record goes like any other.
        }
        if (unlinkat(dirfd_, record_name(run.id).c_str(), 0) == 0) {
            --count;
            total -= run.size;
        }
    }
}

void Journal::remove(std::string_view id) {
    if (is_run_id(id)) {
        unlinkat(dirfd_, record_name(id).c_str(), 0);
        fsync(dirfd_);
    }
}

Run::Run(const Settings& settings, std::string_view program, std::string_view action,
         const Job& job, const std::vector<Target>& targets)
    : settings_(settings), record_(new_record(program, action, job.user, targets)) {
    record_.best_effort = job.best_effort;
    record_.if_different = job.if_different;
}

void Run::start(std::string_view resumes) {
    record_.resumes = resumes;
    if (settings_.directory.empty()) {
        return;
    }
    journal_.emplace(settings_);
    journal_->create(record_);
    if (!resumes.empty()) {
        try {
            journal_->claim(resumes, record_.id);
        } catch (...) {
            journal_->remove(record_.id);
            throw;
        }
    }
}

void Run::sending() {
    mark_sent(record_);
    if (journal_) {
        journal_->write(record_);
    }
}

void Run::result(std::size_t i, const Result& r) {
    set_result(record_.targets.at(i), r);
}

void Run::finish() {
    record_.ended_ms = now_ms();
    if (journal_) {
        journal_->write(record_);
    }
}

BatchRun::BatchRun(const Settings& settings, std::string_view program,
                   const std::vector<std::string>& users, bool best_effort,
                   const std::vector<Target>& targets)
    : settings_(settings) {
    records_.reserve(users.size());
    for (const auto& user : users) {
        records_.push_back(new_record(program, action_name(Action::change), user, targets));
        records_.back().best_effort = best_effort;
    }
}

void BatchRun::start() {
    if (settings_.directory.empty()) {
        return;
    }
    journal_.emplace(settings_);
    journal_->create_all(records_);
}

void BatchRun::sending() {
    for (auto& r : records_) {
        mark_sent(r);
    }
    if (journal_) {
        journal_->write_all(records_);
    }
}

void BatchRun::result(std::size_t user, std::size_t target, const Result& r) {
    set_result(records_.at(user).targets.at(target), r);
}

void BatchRun::finish() {
    const auto now = now_ms();
    for (auto& r : records_) {
        r.ended_ms = now;
    }
    if (journal_) {
        journal_->write_all(records_);
    }
}

}  // namespace mpasswd::journal
