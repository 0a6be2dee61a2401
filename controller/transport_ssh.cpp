// The ssh transport: MCTP over the standard input and output of the
// system ssh client, whose target runs "mpasswdd --ssh" as a forced
// command. ssh does the authentication both ways (host key, user key).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "controller_limits.hpp"
#include "transport.hpp"

extern char** environ;

namespace mpasswd {
namespace {

using asio::local::stream_protocol;

// The last non-empty line of ssh's standard error, without CR.
std::string last_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.pop_back();
    }
    const auto nl = text.find_last_of('\n');
    std::string line = nl == std::string::npos ? text : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    return line;
}

bool host_key_failure(const std::string& text) {
    for (const char* marker : {"Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
                               "No matching host key", "host key for"}) {
        if (text.find(marker) != std::string::npos) {
            return true;
        }
    }
    return false;
}

// The ssh processes of one transport. A closed stream's ssh ends by itself
// once its input is closed; it is collected without waiting where
// possible, and whatever is left when the transport goes is given about a
// second in all, then SIGTERM, then SIGKILL. So no target's close waits on
// its ssh, and no ssh outlives the run.
class Reaper {
public:
    Reaper() = default;
    Reaper(const Reaper&) = delete;
    Reaper& operator=(const Reaper&) = delete;
    ~Reaper() {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        bool termed = false;
        while (!pids_.empty()) {
            collect();
            if (pids_.empty()) {
                break;
            }
            if (std::chrono::steady_clock::now() >= until) {
                for (const pid_t pid : pids_) {
                    kill(pid, termed ? SIGKILL : SIGTERM);
                }
                if (termed) {
                    for (const pid_t pid : pids_) {
                        int status = 0;
                        waitpid(pid, &status, 0);
                    }
                    break;
                }
                termed = true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

    void add(pid_t pid) {
        pids_.push_back(pid);
        collect();
    }

private:
    void collect() {
        std::erase_if(pids_, [](pid_t pid) {
            int status = 0;
            return waitpid(pid, &status, WNOHANG) != 0;  // done, or not ours any more
        });
    }

    std::vector<pid_t> pids_;
};

class SshStream final : public Stream {
public:
    SshStream(stream_protocol::socket io, asio::posix::stream_descriptor err, pid_t pid,
              std::shared_ptr<Reaper> reaper)
        : io_(std::move(io)), err_(std::move(err)), pid_(pid), reaper_(std::move(reaper)) {}
    ~SshStream() override { close(); }

    asio::awaitable<std::size_t> read_some(std::span<char> buffer) override {
        try {
            co_return co_await io_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                                   asio::use_awaitable);
        } catch (const std::system_error& e) {
            if (e.code() != asio::error::eof) {
                throw;
            }
        }
        // ssh closed the channel: its standard error says why, if it failed.
        const std::string why = co_await read_errors();
        if (why.empty()) {
            throw std::system_error(asio::error::eof);
        }
        if (host_key_failure(why)) {
            throw UntrustedError("ssh: " + last_line(why));
        }
        throw TransportError("ssh: " + last_line(why));
    }

    asio::awaitable<void> write_all(std::span<const char> bytes) override {
        co_await asio::async_write(io_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::use_awaitable);
    }

    void close() noexcept override {
        asio::error_code ignored;
        io_.close(ignored);
        err_.close(ignored);
        reap();
    }

private:
    asio::awaitable<std::string> read_errors() {
        std::string text;
        std::array<char, 512> buf{};
        while (text.size() < limits::reply_line_max) {
            auto [ec, n] = co_await err_.async_read_some(
                asio::buffer(buf), asio::experimental::as_tuple(asio::use_awaitable));
            text.append(buf.data(), n);
            if (ec) {
                break;
            }
        }
        co_return text;
    }

    void reap() noexcept {
        if (pid_ > 0) {
            try {
                reaper_->add(pid_);
            } catch (...) {
                kill(pid_, SIGKILL);  // out of memory: do not leave it running
            }
            pid_ = -1;
        }
    }

    stream_protocol::socket io_;
    asio::posix::stream_descriptor err_;
    pid_t pid_;
    std::shared_ptr<Reaper> reaper_;
};

class SshTransport final : public Transport {
public:
    explicit SshTransport(SshSettings s) : s_(std::move(s)) {}

    asio::awaitable<std::unique_ptr<Stream>> connect(const Target& target) override {
        co_return open(co_await asio::this_coro::executor, target);
    }

private:
    // Starts ssh; not a coroutine (nothing here waits).
    std::unique_ptr<Stream> open(const asio::any_io_executor& ex, const Target& target) const {
        // The host was checked by parse_target (no leading '-'); "--" ends
        // the options anyway. No secret is ever in argv or the environment.
        std::vector<std::string> args = {s_.command, "-T", "-e", "none",
                                         "-o", "BatchMode=yes",
                                         "-o", "StrictHostKeyChecking=yes",
                                         "-o", "ClearAllForwardings=yes",
                                         "-o", "ForwardAgent=no",
                                         "-o", "ForwardX11=no",
                                         "-o", "PermitLocalCommand=no",
                                         "-o", "ConnectTimeout=" + std::to_string(s_.connect_timeout_s),
                                         "-p", std::to_string(target.port),
                                         "-l", s_.user};
        if (!s_.identity.empty()) {
            args.insert(args.end(), {"-i", s_.identity, "-o", "IdentitiesOnly=yes"});
        }
        if (!s_.known_hosts.empty()) {
            args.insert(args.end(), {"-o", "UserKnownHostsFile=" + s_.known_hosts,
                                     "-o", "GlobalKnownHostsFile=/dev/null"});
        }
        args.insert(args.end(), {"--", target.host});
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        std::array<char, 32> path_env{"PATH=/usr/bin:/bin"};
        std::array<char, 16> lang_env{"LC_ALL=C"};
        std::array<char*, 3> envp{path_env.data(), lang_env.data(), nullptr};

        int io[2];
        int err[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, io) != 0) {
            throw std::system_error(errno, std::generic_category(), "socketpair");
        }
        if (pipe2(err, O_CLOEXEC) != 0) {
            const int e = errno;
            ::close(io[0]);
            ::close(io[1]);
            throw std::system_error(e, std::generic_category(), "pipe");
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, io[1], 0);
        posix_spawn_file_actions_adddup2(&fa, io[1], 1);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t none;
        sigemptyset(&none);
        sigset_t reset;  // what a caller (mpasswd, passwd) may ignore or catch
        sigemptyset(&reset);
        for (const int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) {
            sigaddset(&reset, sig);
        }
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &reset);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        pid_t pid = -1;
        const int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        ::close(io[1]);
        ::close(err[1]);
        if (rc != 0) {
            ::close(io[0]);
            ::close(err[0]);
            throw TransportError("cannot run " + s_.command + ": " + std::strerror(rc));
        }
        stream_protocol::socket sock(ex);
        asio::posix::stream_descriptor errors(ex);
        sock.assign(stream_protocol(), io[0]);
        errors.assign(err[0]);
        return std::make_unique<SshStream>(std::move(sock), std::move(errors), pid, reaper_);
    }

    SshSettings s_;
    std::shared_ptr<Reaper> reaper_ = std::make_shared<Reaper>();
};

}  // namespace

std::unique_ptr<Transport> make_ssh_transport(SshSettings settings) {
    return std::make_unique<SshTransport>(std::move(settings));
}

}  // namespace mpasswd
