// Reading the new password: from the terminal without echo, or one line
// from standard input (both through common/secret_line: one fixed buffer
// that is wiped).
#pragma once

#include <stdexcept>
#include <string>

#include "secret.hpp"

namespace mpasswd {

struct InputError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Asks on /dev/tty twice ("New password for USER: ", "Retype new
// password: ") with echo off; the terminal is restored on every path,
// and on SIGINT/SIGTERM/SIGHUP/SIGQUIT during the prompt. Without retype
// (a check, which changes nothing) once: "Password of USER to check: ".
mctp::Secret read_password_from_terminal(const std::string& user, bool retype = true);

// One line from fd (its LF and a CR before it removed); the rest of the
// input is not read.
mctp::Secret read_password_line(int fd);

}  // namespace mpasswd
