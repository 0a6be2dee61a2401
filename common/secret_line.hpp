// Reading a secret (a password, a controller secret) as one line: from a
// pipe or file as it is, or from a terminal with echo off. Every octet
// goes into one fixed buffer that is wiped; nothing after the line's LF
// is read.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string_view>

#include "secret.hpp"

namespace mctp {

struct SecretLine {
    bool got = false;       // false: the input ended before a line began
    bool too_long = false;  // more than max octets: read to its end, text empty
    Secret text;            // without its LF (and a CR before the LF)
};

// read(2) failed (not EINTR), or the fd is not a terminal.
struct SecretInputError : std::runtime_error {
    SecretInputError(const std::string& what, int err)
        : std::runtime_error(what), error(err) {}
    int error;
};

// One line from fd, at most max octets kept.
SecretLine read_secret_line(int fd, std::size_t max);

// Echo off on a terminal while a secret is typed. The terminal's settings
// are restored after each ask() on every path, and on SIGINT, SIGTERM,
// SIGHUP or SIGQUIT during the life of this object (the signal then does
// what SIG_DFL does: the process ends by it). One at a time per process.
class QuietTerminal {
public:
    // in_fd: the terminal (its settings are saved here); out_fd: where
    // prompts and the line break after the answer go (the same terminal,
    // or standard error). Throws SecretInputError when in_fd is not a
    // terminal.
    QuietTerminal(int in_fd, int out_fd);
    ~QuietTerminal();
    QuietTerminal(const QuietTerminal&) = delete;
    QuietTerminal& operator=(const QuietTerminal&) = delete;

    // Turns echo off before the prompt, as getpass() does (an answer typed
    // as soon as the prompt shows is neither echoed nor thrown away by the
    // flush), reads one line, restores the settings and ends the line.
    SecretLine ask(std::string_view prompt, std::size_t max);

private:
    int in_fd_;
    int out_fd_;
};

}  // namespace mctp
