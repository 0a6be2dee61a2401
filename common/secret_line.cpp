#include "secret_line.hpp"

#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace mctp {
namespace {

// The one terminal whose settings are saved, for the signal handler.
volatile sig_atomic_t g_in_fd = -1;
volatile sig_atomic_t g_out_fd = -1;
struct termios g_saved {};
constexpr int quiet_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
struct sigaction g_old[std::size(quiet_signals)] {};

void restore_and_die(int sig) {
    if (g_in_fd >= 0) {
        tcsetattr(g_in_fd, TCSAFLUSH, &g_saved);
        (void)!write(g_out_fd, "\n", 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

class Buffer {
public:
    explicit Buffer(std::size_t capacity)
        : data_(std::make_unique<char[]>(capacity)), capacity_(capacity) {}
    ~Buffer() { wipe(data_.get(), capacity_); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    char* data() { return data_.get(); }
    [[nodiscard]] std::size_t capacity() const { return capacity_; }

private:
    std::unique_ptr<char[]> data_;
    std::size_t capacity_;
};

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace

SecretLine read_secret_line(int fd, std::size_t max) {
    // Room for a CR before the LF.
    Buffer buf(max + 1);
    std::size_t size = 0;
    SecretLine line;
    for (;;) {
        char c = 0;
        const ssize_t n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            const int e = errno;
            throw SecretInputError(std::string("cannot read: ") + std::strerror(e), e);
        }
        if (n == 0 || c == '\n') {
            if (c == '\n' && size > 0 && buf.data()[size - 1] == '\r') {
                --size;
            }
            line.too_long = line.too_long || size > max;
            line.got = c == '\n' || size > 0 || line.too_long;
            break;
        }
        if (size == buf.capacity()) {
            // Too long: the rest of the line is read and dropped.
            line.too_long = true;
            size = 0;
        }
        buf.data()[size++] = c;
    }
    if (!line.too_long) {
        line.text = Secret(std::string_view(buf.data(), size));
    }
    return line;
}

QuietTerminal::QuietTerminal(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {
    if (g_in_fd >= 0) {
        throw std::logic_error("QuietTerminal: one at a time");
    }
    struct termios saved {};
    if (tcgetattr(in_fd, &saved) != 0) {
        const int e = errno;
        throw SecretInputError("not a terminal", e);
    }
    g_saved = saved;
    g_out_fd = out_fd;
    g_in_fd = in_fd;
    struct sigaction act {};
    act.sa_handler = restore_and_die;
    sigemptyset(&act.sa_mask);
    for (std::size_t i = 0; i < std::size(quiet_signals); ++i) {
        sigaction(quiet_signals[i], &act, &g_old[i]);
    }
}

QuietTerminal::~QuietTerminal() {
    tcsetattr(in_fd_, TCSAFLUSH, &g_saved);
    for (std::size_t i = 0; i < std::size(quiet_signals); ++i) {
        sigaction(quiet_signals[i], &g_old[i], nullptr);
    }
    g_in_fd = -1;
    g_out_fd = -1;
}

SecretLine QuietTerminal::ask(std::string_view prompt, std::size_t max) {
    struct termios quiet = g_saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    struct Restore {
        int in_fd;
        int out_fd;
        ~Restore() {
            tcsetattr(in_fd, TCSAFLUSH, &g_saved);
            write_all(out_fd, "\n");
        }
    };
    tcsetattr(in_fd_, TCSAFLUSH, &quiet);
    const Restore restore{in_fd_, out_fd_};
    write_all(out_fd_, prompt);
    return read_secret_line(in_fd_, max);
}

}  // namespace mctp
