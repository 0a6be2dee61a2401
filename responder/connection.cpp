#include "connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "limits.hpp"
#include "line_framer.hpp"
#include "secret.hpp"

namespace mpasswdd {
using std::chrono::milliseconds;

int millis_until(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 24LL * 3600 * 1000));
}

bool wait_fd(int fd, short events, Clock::time_point deadline) {
    pollfd p{fd, events, 0};
    for (;;) {
        const int wait = millis_until(deadline);
        if (wait == 0) {
            return false;
        }
        const int rc = poll(&p, 1, wait);
        if (rc > 0) {
            return true;
        }
        if (rc == 0 || errno != EINTR) {
            return false;
        }
    }
}

namespace {

void sleep_for(milliseconds ms) {
    const auto until = Clock::now() + ms;
    while (Clock::now() < until) {
        poll(nullptr, 0, std::max(1, millis_until(until)));
    }
}

// Writes all of data before deadline. False if the peer is gone or slow.
bool write_fd(int fd, std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
        const ssize_t n = write(fd, data.data(), data.size());
        if (n > 0) {
            data.remove_prefix(static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(fd, POLLOUT, deadline)) {
                return false;
            }
            continue;
        }
        return false;
    }
    return true;
}

// Makes fd non-blocking for the life of the object, unless it is a
// terminal (whose flags the invoking shell shares).
class NonBlocking {
public:
    explicit NonBlocking(int fd) : fd_(fd), flags_(fcntl(fd, F_GETFL)) {
        if (flags_ >= 0 && !isatty(fd)) {
            fcntl(fd, F_SETFL, flags_ | O_NONBLOCK);
        }
    }
    ~NonBlocking() {
        if (flags_ >= 0 && !isatty(fd_)) {
            fcntl(fd_, F_SETFL, flags_);
        }
    }
    NonBlocking(const NonBlocking&) = delete;
    NonBlocking& operator=(const NonBlocking&) = delete;

private:
    int fd_;
    int flags_;
};

class FdChannel final : public Channel {
public:
    FdChannel(int in_fd, int out_fd) : in_(in_fd), out_(out_fd), in_nb_(in_fd), out_nb_(out_fd) {}

    [[nodiscard]] int poll_fd() const override { return in_; }

    ssize_t read(char* buf, std::size_t n) override {
        const ssize_t got = ::read(in_, buf, n);
        if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            return -2;
        }
        return got < 0 ? -1 : got;
    }

    bool write_all(std::string_view data, Clock::time_point deadline) override {
        return write_fd(out_, data, deadline);
    }

    void finish() override { linger_close(in_, out_); }

private:
    int in_;
    int out_;
    NonBlocking in_nb_;
    NonBlocking out_nb_;
};

}  // namespace

std::unique_ptr<Channel> fd_channel(int in_fd, int out_fd) {
    return std::make_unique<FdChannel>(in_fd, out_fd);
}

ConnectionEnd run_connection(mctp::Session& session, mctp::PeerVerdict verdict, Channel& channel,
                             Timeouts timeouts) {
    const auto session_deadline = Clock::now() + timeouts.session;
    auto idle_deadline = std::min(Clock::now() + timeouts.idle, session_deadline);
    bool write_failed = false;

    const auto send = [&](const mctp::Reply& reply) {
        if (reply.delay.count() > 0) {
            sleep_for(reply.delay);
        }
        const std::string line = mctp::format_reply(reply, session.settings().line_max);
        // A reply may always take a full idle period to drain, even
        // late in the session.
        const auto deadline = std::max(session_deadline, Clock::now() + timeouts.idle);
        if (!channel.write_all(line, deadline)) {
            write_failed = true;
            session.on_end_of_input();
        }
    };

    send(session.start(verdict));
    // The login grace time ends at the first successful AUTH; a later
    // RSET does not bring it back.
    bool logged_in = false;
    const auto in_grace = [&] {
        logged_in = logged_in || (session.state() != mctp::State::connected &&
                                  session.state() != mctp::State::greeted);
        return !logged_in;
    };
    const auto wait_until = [&] {
        return in_grace() ? std::min(idle_deadline, timeouts.login_deadline) : idle_deadline;
    };
    // Sends the timeout reply and returns true once a deadline has passed,
    // even for a peer that never stops sending. Between the lines of one
    // read the peer is not idle: only the session and login deadlines.
    const auto timed_out = [&](bool idle_too) {
        if (session.closed()) {
            return true;
        }
        const auto now = Clock::now();
        const bool login_over = in_grace() && now >= timeouts.login_deadline;
        if (login_over || now >= session_deadline || (idle_too && now >= idle_deadline)) {
            send(login_over ? session.on_login_timeout() : session.on_timeout());
        }
        return session.closed();
    };
    mctp::LineFramer framer(session.settings().line_max, mctp::sasl_line_max);
    std::vector<char> buf(mctp::limits::read_chunk);
    struct Wipe {
        std::vector<char>& b;
        ~Wipe() { mctp::wipe(b.data(), b.size()); }
    } wipe_buf{buf};

    while (!session.closed()) {
        if (timed_out(true)) {
            break;
        }
        if (!channel.pending()) {
            pollfd p{channel.poll_fd(), POLLIN, 0};
            const int rc = poll(&p, 1, millis_until(wait_until()));
            if (rc < 0 && errno == EINTR) {
                continue;
            }
            if (rc == 0) {
                if (timed_out(true)) {
                    break;
                }
                continue;  // poll's milliseconds ended just short of the deadline
            }
            if (rc < 0) {
                session.on_end_of_input();
                return ConnectionEnd::io_error;
            }
        }
        const ssize_t n = channel.read(buf.data(), buf.size());
        if (n == -2) {
            continue;  // timed_out() at the top of the loop
        }
        if (n <= 0) {
            session.on_end_of_input();
            return n == 0 ? ConnectionEnd::peer_gone : ConnectionEnd::io_error;
        }
        framer.feed(std::span<const char>(buf.data(), static_cast<std::size_t>(n)),
                    [&](mctp::FrameEvent ev, std::string_view line) {
                        if (timed_out(false)) {
                            return false;
                        }
                        send(ev == mctp::FrameEvent::line ? session.on_line(line)
                                                          : session.on_overflow());
                        framer.set_long_lines(session.long_lines());
                        return !session.closed();
                    });
        mctp::wipe(buf.data(), static_cast<std::size_t>(n));
        idle_deadline = std::min(Clock::now() + timeouts.idle, session_deadline);
    }
    if (write_failed) {
        return ConnectionEnd::io_error;
    }
    channel.finish();
    return ConnectionEnd::closed;
}

void linger_close(int in_fd, int out_fd) {
    if (shutdown(out_fd, SHUT_WR) != 0) {
        return;  // not a socket (pipe, terminal): nothing to reset
    }
    const NonBlocking in_nb(in_fd);
    const auto deadline = Clock::now() + mctp::limits::linger_max;
    std::vector<char> buf(mctp::limits::read_chunk);
    std::size_t total = 0;
    while (total < mctp::limits::linger_bytes_max && wait_fd(in_fd, POLLIN, deadline)) {
        const ssize_t n = read(in_fd, buf.data(), buf.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            continue;
        }
        if (n <= 0) {
            break;  // the peer closed too
        }
        mctp::wipe(buf.data(), static_cast<std::size_t>(n));
        total += static_cast<std::size_t>(n);
    }
}

}  // namespace mpasswdd
