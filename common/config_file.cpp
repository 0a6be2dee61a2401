#include "config_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <ini.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace mctp::cfg {

namespace {

// Why a file of this mode is not read ("not a regular file (a FIFO)"),
// or empty for a regular file.
std::string not_regular(mode_t mode) {
    if (S_ISREG(mode)) {
        return {};
    }
    const char* kind = S_ISFIFO(mode)  ? "a FIFO"
                       : S_ISCHR(mode) ? "a character device"
                       : S_ISBLK(mode) ? "a block device"
                       : S_ISDIR(mode) ? "a directory"
                       : S_ISSOCK(mode) ? "a socket"
                                        : "a special file";
    return std::string("not a regular file (") + kind + ")";
}

// Who may change the file: only root or the caller, as OpenSSH's
// secure_filename() has it. A group other than root's may not write it
// either: its members could otherwise set ssh_command (run as root from
// setuid passwd) or a Match exec in ssh_config.
std::string unsafe_owner(const struct stat& st) {
    if ((st.st_mode & S_IWOTH) != 0 || (st.st_uid != 0 && st.st_uid != geteuid())) {
        return "writable by other users; it must be owned by root and not world-writable "
               "(chmod 600)";
    }
    if ((st.st_mode & S_IWGRP) != 0 && st.st_gid != 0) {
        return "writable by its group; only root may change it (chmod g-w)";
    }
    return {};
}

// Opens and reads a regular file of at most size_max octets that only
// root or the caller may write. With owner_only, group and others may not
// read it either (checked before reading). *mode gets its permissions.
//
// Nothing here waits: the path is looked at (stat, following symbolic
// links) before it is opened, so a FIFO, a device or a directory is
// refused without being opened at all (opening a FIFO for reading blocks
// until a writer comes, and opening some devices does things). The open
// itself is non-blocking, in case the path was replaced in between, and
// the descriptor is checked again with fstat. No more than size_max + 1
// octets are ever read: a file that grew past size_max after fstat is
// refused too.
std::string read_regular(const std::string& path, std::size_t size_max, bool owner_only,
                         mode_t* mode) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        throw ConfigError(path + ": cannot open: " + std::strerror(errno));
    }
    if (const std::string why = not_regular(st.st_mode); !why.empty()) {
        throw ConfigError(path + ": " + why);
    }
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        throw ConfigError(path + ": cannot open: " + std::strerror(errno));
    }
    const auto fail = [&](const std::string& why) {
        close(fd);
        throw ConfigError(path + ": " + why);
    };
    if (fstat(fd, &st) != 0) {
        fail(std::string("cannot stat: ") + std::strerror(errno));
    }
    if (const std::string why = not_regular(st.st_mode); !why.empty()) {
        fail(why);
    }
    if (const std::string why = unsafe_owner(st); !why.empty()) {
        fail(why);
    }
    if (owner_only && (st.st_mode & 077) != 0) {
        fail("holds a secret, so it must be readable by its owner only (chmod 600 " + path +
             ")");
    }
    if (st.st_size > static_cast<off_t>(size_max)) {
        fail("larger than " + std::to_string(size_max) + " octets");
    }
    // Read up to size_max + 1 octets, whatever fstat said, so a file that
    // grew since is refused too. The buffer starts at the size fstat gave
    // (regular files ignore O_NONBLOCK); a bigger one replaces it only for
    // such a file, and the old one is wiped, so a caller wiping the text
    // leaves no copy behind.
    std::string text(static_cast<std::size_t>(st.st_size) + 1, '\0');
    std::size_t got = 0;
    for (;;) {
        if (got == text.size()) {
            if (got > size_max) {
                explicit_bzero(text.data(), text.size());
                fail("larger than " + std::to_string(size_max) + " octets");
            }
            std::string bigger(std::min(size_max + 1, 2 * text.size()), '\0');
            std::memcpy(bigger.data(), text.data(), got);
            explicit_bzero(text.data(), text.size());
            text.swap(bigger);
        }
        const ssize_t n = read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int e = errno;
            explicit_bzero(text.data(), text.size());
            fail(std::string("cannot read: ") + std::strerror(e));
        }
        if (n == 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    close(fd);
    *mode = st.st_mode;
    return text;
}

}  // namespace

void check_program(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        throw ConfigError(path + ": cannot run: " + std::strerror(errno));
    }
    if (const std::string why = not_regular(st.st_mode); !why.empty()) {
        throw ConfigError(path + ": " + why);
    }
    if (const std::string why = unsafe_owner(st); !why.empty()) {
        throw ConfigError(path + ": " + why);
    }
    if ((st.st_mode & S_IXUSR) == 0) {
        throw ConfigError(path + ": not executable");
    }
}

void refuse_special(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        return;
    }
    if (const std::string why = not_regular(st.st_mode); !why.empty()) {
        throw ConfigError(path + ": " + why);
    }
}

std::string read_private(const std::string& path, std::size_t size_max) {
    mode_t mode = 0;
    return read_regular(path, size_max, true, &mode);
}

std::string read_checked(const std::string& path, std::string_view secret_marker,
                         bool group_may_read, std::size_t size_max) {
    mode_t mode = 0;
    std::string text = read_regular(path, size_max, false, &mode);
    const mode_t others = group_may_read ? S_IROTH : (S_IRGRP | S_IROTH);
    if ((mode & others) != 0 && !secret_marker.empty() &&
        text.find(secret_marker) != std::string::npos) {
        throw ConfigError(path + ": holds secrets but is readable by " +
                          (group_may_read ? "every user" : "other users") + "; chmod 600 " +
                          path);
    }
    if (text.find('\0') != std::string::npos) {
        throw ConfigError(path + ": contains a NUL byte");
    }
    return text;
}

std::vector<std::string> split_list(std::string_view value) {
    std::vector<std::string> out;
    const auto sep = [](char c) { return c == ',' || c == ' ' || c == '\t'; };
    std::size_t i = 0;
    while (i < value.size()) {
        while (i < value.size() && sep(value[i])) {
            ++i;
        }
        std::size_t j = i;
        while (j < value.size() && !sep(value[j])) {
            ++j;
        }
        if (j > i) {
            out.emplace_back(value.substr(i, j - i));
        }
        i = j;
    }
    return out;
}

bool parse_bool(std::string_view v, bool* out) {
    if (v == "yes" || v == "true" || v == "on" || v == "1") {
        *out = true;
        return true;
    }
    if (v == "no" || v == "false" || v == "off" || v == "0") {
        *out = false;
        return true;
    }
    return false;
}

bool parse_unsigned(std::string_view v, unsigned long long min, unsigned long long max,
                    unsigned long long* out) {
    unsigned long long n = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < min || n > max) {
        return false;
    }
    *out = n;
    return true;
}

bool parse_seconds(std::string_view v, std::chrono::milliseconds min,
                   std::chrono::milliseconds max, std::chrono::milliseconds* out) {
    // Digits with an optional fraction ("60", "0.25", ".5", "5."), read
    // exactly in decimal and rounded to the millisecond, half up. No
    // floating point: std::from_chars for a double and std::llround made
    // mpasswdd load libm at each start (README, "Start-up and memory").
    const auto dot = v.find('.');
    const std::string_view whole = v.substr(0, dot);
    const std::string_view fraction = dot == std::string_view::npos ? "" : v.substr(dot + 1);
    const auto digits = [](std::string_view d) {
        return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (whole.empty() && fraction.empty()) {
        return false;
    }
    if (!digits(whole) || !digits(fraction)) {
        return false;
    }
    constexpr unsigned long long seconds_max = 1'000'000'000;
    unsigned long long seconds = 0;
    for (const char c : whole) {
        seconds = seconds * 10 + static_cast<unsigned>(c - '0');
        if (seconds > seconds_max) {
            return false;
        }
    }
    unsigned long long ms = seconds * 1000;
    unsigned long long place = 100;
    for (std::size_t i = 0; i < 3 && i < fraction.size(); ++i, place /= 10) {
        ms += static_cast<unsigned>(fraction[i] - '0') * place;
    }
    if (fraction.size() > 3 && fraction[3] >= '5') {
        ++ms;
    }
    if (ms > seconds_max * 1000) {
        return false;
    }
    const std::chrono::milliseconds value(static_cast<long long>(ms));
    if (value < min || value > max) {
        return false;
    }
    *out = value;
    return true;
}

std::string seconds_text(std::chrono::milliseconds ms) {
    // Exact, and never in exponent form ("604800", not "604800" rounded
    // to six digits as a stream would print a double).
    const long long n = ms.count();
    const unsigned long long a = n < 0 ? 0ULL - static_cast<unsigned long long>(n)
                                       : static_cast<unsigned long long>(n);
    std::string s = (n < 0 ? "-" : "") + std::to_string(a / 1000);
    if (const unsigned long long frac = a % 1000; frac != 0) {
        std::string f = std::to_string(frac);
        f.insert(0, 3 - f.size(), '0');
        f.erase(f.find_last_not_of('0') + 1);
        s += "." + f;
    }
    return s;
}

void parse_ini(const std::string& text, const std::string& path,
               int (*handler)(void*, const char*, const char*, const char*), void* user,
               const std::string& error, std::string_view syntax) {
    const int rc = ini_parse_string(text.c_str(), handler, user);
    if (rc < 0) {
        throw ConfigError(path + ": cannot parse (out of memory)");
    }
    if (rc > 0) {
        throw ConfigError(path + ":" + std::to_string(rc) + ": " +
                          (error.empty() ? "syntax error (expected " + std::string(syntax) + ")"
                                         : error));
    }
}

namespace {

// The number (from 1) of the first line of text for which match(line)
// holds, 0 when none does. Lines end at '\n', as std::getline splits
// them (a '\r' stays in the line); no stream, so that mpasswdd, which
// calls this at each start, does not build std::locale's facets.
template <class Match>
int first_line(std::string_view text, Match match) {
    int n = 0;
    std::size_t at = 0;
    while (at < text.size()) {
        std::size_t end = text.find('\n', at);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        ++n;
        if (match(text.substr(at, end - at))) {
            return n;
        }
        at = end + 1;
    }
    return 0;
}

}  // namespace

int section_line(const std::string& text, const std::string& section) {
    return first_line(text, [&](std::string_view line) {
        const auto b = line.find('[');
        const auto e = line.find(']');
        return b != std::string_view::npos && e != std::string_view::npos && e > b &&
               line.substr(b + 1, e - b - 1) == section;
    });
}

int key_line(const std::string& text, std::string_view key) {
    return first_line(text, [&](std::string_view line) {
        const auto b = line.find_first_not_of(" \t");
        if (b == std::string_view::npos || line.compare(b, key.size(), key) != 0) {
            return false;
        }
        const auto after = line.find_first_not_of(" \t", b + key.size());
        return after != std::string_view::npos && (line[after] == '=' || line[after] == ':');
    });
}

std::string dropin_folder(const std::string& config_path) {
    return config_path + ".d";
}

bool is_dropin_name(std::string_view name) noexcept {
    constexpr std::string_view suffix = ".conf";
    if (name.size() <= suffix.size() || !name.ends_with(suffix)) {
        return false;
    }
    name.remove_suffix(suffix.size());
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

std::vector<std::string> dropin_files(const std::string& folder) {
    struct stat st {};
    if (stat(folder.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return {};
        }
        throw ConfigError(folder + ": cannot open: " + std::strerror(errno));
    }
    // Opened first, then checked through the descriptor: what is read is
    // what was checked.
    const int fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        throw ConfigError(folder + ": " +
                          (errno == ENOTDIR ? std::string("not a folder")
                                            : "cannot open: " + std::string(std::strerror(errno))));
    }
    DIR* dir = nullptr;
    const auto fail = [&](const std::string& why) {
        if (dir != nullptr) {
            closedir(dir);
        } else {
            close(fd);
        }
        throw ConfigError(folder + ": " + why);
    };
    if (fstat(fd, &st) != 0) {
        fail(std::string("cannot stat: ") + std::strerror(errno));
    }
    if (std::string why = unsafe_owner(st); !why.empty()) {
        if (const auto p = why.find("(chmod 600)"); p != std::string::npos) {
            why.replace(p, 11, "(chmod 755)");
        }
        fail(why);
    }
    dir = fdopendir(fd);
    if (dir == nullptr) {
        fail(std::string("cannot read: ") + std::strerror(errno));
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = readdir(dir)) {
        if (is_dropin_name(e->d_name)) {
            if (names.size() >= dropins_max) {
                fail("more than " + std::to_string(dropins_max) + " drop-in files");
            }
            names.emplace_back(e->d_name);
        }
        errno = 0;
    }
    if (errno != 0) {
        fail(std::string("cannot read: ") + std::strerror(errno));
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (auto& n : names) {
        n = folder + "/" + n;
    }
    return names;
}

}  // namespace mctp::cfg
