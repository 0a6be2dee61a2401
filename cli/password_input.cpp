#include "password_input.hpp"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "controller_limits.hpp"

namespace mpasswd {
namespace {

// The one terminal whose echo is off, for the signal handler.
volatile sig_atomic_t g_tty_fd = -1;
struct termios g_saved {};

void restore_and_die(int sig) {
    if (g_tty_fd >= 0) {
        tcsetattr(g_tty_fd, TCSAFLUSH, &g_saved);
        (void)!write(g_tty_fd, "\n", 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

class FixedBuffer {
public:
    FixedBuffer() = default;
    ~FixedBuffer() { mctp::wipe(data, sizeof data); }
    FixedBuffer(const FixedBuffer&) = delete;
    FixedBuffer& operator=(const FixedBuffer&) = delete;
    // One more than the longest password, and its CR and LF.
    char data[limits::password_max + 3];
    std::size_t size = 0;
};

// Reads up to the first LF. Returns false at end of input before any LF
// with nothing read. A line too long for the buffer is read to its end
// and marked by size = sizeof data (more than password_max).
bool read_line(int fd, FixedBuffer& buf) {
    buf.size = 0;
    bool too_long = false;
    for (;;) {
        char c = 0;
        const ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw InputError(std::string("cannot read the password: ") + std::strerror(errno));
        }
        if (n == 0 || c == '\n') {
            if (too_long) {
                buf.size = sizeof buf.data;
            } else if (c == '\n' && buf.size > 0 && buf.data[buf.size - 1] == '\r') {
                --buf.size;
            }
            return c == '\n' || buf.size > 0;
        }
        if (buf.size == sizeof buf.data) {
            too_long = true;
            buf.size = 0;
        }
        buf.data[buf.size++] = c;
    }
}

void check_length(const FixedBuffer& buf) {
    if (buf.size > limits::password_max) {
        throw InputError("the password is longer than " + std::to_string(limits::password_max) +
                         " octets");
    }
}

}  // namespace

mctp::Secret read_password_line(int fd) {
    FixedBuffer buf;
    if (!read_line(fd, buf)) {
        throw InputError("no password on standard input");
    }
    check_length(buf);
    return mctp::Secret(std::string_view(buf.data, buf.size));
}

mctp::Secret read_password_from_terminal(const std::string& user) {
    const int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        throw InputError("no terminal to ask for the password on; use --stdin");
    }
    struct termios saved {};
    if (tcgetattr(fd, &saved) != 0) {
        close(fd);
        throw InputError("no terminal to ask for the password on; use --stdin");
    }
    struct sigaction act {};
    act.sa_handler = restore_and_die;
    sigemptyset(&act.sa_mask);
    struct sigaction old[4] {};
    const int sigs[4] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    g_saved = saved;
    g_tty_fd = fd;
    for (int i = 0; i < 4; ++i) {
        sigaction(sigs[i], &act, &old[i]);
    }
    struct termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    // Echo off before the prompt, as getpass() does: an answer typed as
    // soon as the prompt shows must be neither echoed nor thrown away by
    // the flush.
    const auto ask = [&](std::string_view prompt, FixedBuffer& buf) {
        tcsetattr(fd, TCSAFLUSH, &quiet);
        (void)!write(fd, prompt.data(), prompt.size());
        const bool got = read_line(fd, buf);
        tcsetattr(fd, TCSAFLUSH, &saved);
        (void)!write(fd, "\n", 1);
        return got;
    };
    FixedBuffer first;
    FixedBuffer second;
    bool got = false;
    try {
        got = ask("New password for " + user + ": ", first) &&
              ask("Retype new password: ", second);
    } catch (...) {
        tcsetattr(fd, TCSAFLUSH, &saved);
        got = false;
    }
    for (int i = 0; i < 4; ++i) {
        sigaction(sigs[i], &old[i], nullptr);
    }
    g_tty_fd = -1;
    close(fd);
    if (!got) {
        throw InputError("no password given");
    }
    check_length(first);
    if (first.size != second.size ||
        !mctp::constant_time_equal(std::string_view(first.data, first.size),
                                   std::string_view(second.data, second.size))) {
        throw InputError("the passwords do not match; nothing was changed");
    }
    return mctp::Secret(std::string_view(first.data, first.size));
}

}  // namespace mpasswd
