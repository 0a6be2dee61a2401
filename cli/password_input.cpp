#include "password_input.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <optional>
#include <string_view>

#include "controller_limits.hpp"
#include "secret_line.hpp"

namespace mpasswd {
namespace {

[[noreturn]] void too_long() {
    throw InputError("the password is longer than " + std::to_string(limits::password_max) +
                     " octets");
}

// Reads one line, with a read error said as mpasswd says it.
mctp::SecretLine read_line(const std::function<mctp::SecretLine()>& read) {
    try {
        return read();
    } catch (const mctp::SecretInputError& e) {
        throw InputError(std::string("cannot read the password: ") + std::strerror(e.error));
    }
}

}  // namespace

mctp::Secret read_password_line(int fd) {
    auto line = read_line([&] { return mctp::read_secret_line(fd, limits::password_max); });
    if (!line.got) {
        throw InputError("no password on standard input");
    }
    if (line.too_long) {
        too_long();
    }
    return std::move(line.text);
}

mctp::Secret read_password_from_terminal(const std::string& user, bool retype) {
    const int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        throw InputError("no terminal to ask for the password on; use --stdin");
    }
    struct Close {
        int fd;
        ~Close() { close(fd); }
    } closer{fd};
    std::optional<mctp::QuietTerminal> tty;
    try {
        tty.emplace(fd, fd);
    } catch (const mctp::SecretInputError&) {
        throw InputError("no terminal to ask for the password on; use --stdin");
    }
    mctp::SecretLine first;
    mctp::SecretLine second;
    try {
        if (!retype) {
            first = tty->ask("Password of " + user + " to check: ", limits::password_max);
        } else {
            first = tty->ask("New password for " + user + ": ", limits::password_max);
            if (first.got) {
                second = tty->ask("Retype new password: ", limits::password_max);
            }
        }
    } catch (const mctp::SecretInputError&) {
        first.got = false;
    }
    tty.reset();
    if (!first.got || (retype && !second.got)) {
        throw InputError("no password given");
    }
    if (first.too_long) {
        too_long();
    }
    if (!retype) {
        return std::move(first.text);
    }
    if (second.too_long || !mctp::constant_time_equal(first.text.view(), second.text.view())) {
        throw InputError("the passwords do not match; nothing was changed");
    }
    return std::move(first.text);
}

}  // namespace mpasswd
