// Pieces shared by the responder's and the controller's configuration
// files: reading a root-owned file safely, and parsing values.
#pragma once

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mctp::cfg {

// Thrown with a message that names the file (and line and key, where
// there is one).
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline constexpr std::size_t config_size_max = 1 << 20;

// Reads a regular file of at most size_max octets. Refuses one that is
// world-writable, group-writable (unless the group is root's) or owned by
// someone other than root or the caller.
// Never waits: a FIFO, a device, a directory or a socket is refused at
// once, without being opened ("PATH: not a regular file (a FIFO)"), and
// a file larger than size_max ("PATH: larger than N octets"), even one
// that grows while it is read. Symbolic links are followed (the file
// they lead to is checked).
// When the text contains `secret_marker` (e.g. "secret"), it must not be
// readable by other users either (group or world, as `private_to_group`
// says), and the message names the chmod that fixes it.
std::string read_checked(const std::string& path, std::string_view secret_marker,
                         bool group_may_read, std::size_t size_max = config_size_max);

// The same checks, and the file must not be readable by group or others
// at all (a secret file). The caller wipes the text after use.
std::string read_private(const std::string& path, std::size_t size_max);

// A program to run as root (ssh_command): a regular, executable file that
// only root (or the caller) may change. Throws ConfigError naming it.
void check_program(const std::string& path);

// For a file another program opens (ssh's identity and known-hosts
// files): throws ConfigError "PATH: not a regular file (a FIFO)" when
// path exists and is not a regular file (after symbolic links). A
// missing file is left to that program.
void refuse_special(const std::string& path);

// Items separated by commas and/or blanks.
std::vector<std::string> split_list(std::string_view value);

// yes/no, true/false, on/off, 1/0.
bool parse_bool(std::string_view v, bool* out);

// A decimal number from min to max.
bool parse_unsigned(std::string_view v, unsigned long long min, unsigned long long max,
                    unsigned long long* out);

template <class T>
bool parse_uint(std::string_view v, T min, T max, T* out) {
    unsigned long long n = 0;
    if (!parse_unsigned(v, min, max, &n)) {
        return false;
    }
    *out = static_cast<T>(n);
    return true;
}

// Seconds: digits with an optional fraction ("60", "0.25", ".5"),
// rounded to the millisecond (half up); no sign, no exponent.
bool parse_seconds(std::string_view v, std::chrono::milliseconds min,
                   std::chrono::milliseconds max, std::chrono::milliseconds* out);

// "2", "0.25": the inverse of parse_seconds.
std::string seconds_text(std::chrono::milliseconds ms);

// Runs inih's parser over text with handler(user, section, key, value).
// A handler that returns 0 stops it; *error then says why ("key: ...").
// Throws ConfigError "PATH:LINE: why", or with `syntax` as the reason
// when the line is not an INI line at all.
void parse_ini(const std::string& text, const std::string& path,
               int (*handler)(void*, const char*, const char*, const char*), void* user,
               const std::string& error, std::string_view syntax);

// The line of a "[section]" header in text, 0 when absent.
int section_line(const std::string& text, const std::string& section);

// The line of the first "key = value" (or "key: value") line for key in
// text, 0 when absent.
int key_line(const std::string& text, std::string_view key);

// ---- Drop-in folders: FILE.d/*.conf beside a configuration file.

inline constexpr std::size_t dropins_max = 256;

// "/etc/mpasswd/mpasswdd.conf" -> "/etc/mpasswd/mpasswdd.conf.d".
std::string dropin_folder(const std::string& config_path);

// True for a drop-in's name: [A-Za-z0-9_-]+.conf (editors' and dpkg's
// leftovers, hidden files and other names are not read).
bool is_dropin_name(std::string_view name) noexcept;

// The drop-ins of folder, as full paths, in byte order of their names;
// none when the folder does not exist. The folder must be a folder that
// only root (or the caller) may change, as a configuration file must be
// (a symbolic link is followed). Throws ConfigError "FOLDER: why" for
// one that is not, cannot be read, or holds more than dropins_max
// drop-ins. Each file is then read by the caller with read_checked,
// which checks it as the main file.
std::vector<std::string> dropin_files(const std::string& folder);

}  // namespace mctp::cfg
