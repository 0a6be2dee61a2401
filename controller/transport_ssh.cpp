// The ssh transport: MCTP over the standard input and output of the
// system ssh client, whose target runs "mpasswdd --ssh" as a forced
// command. ssh does the authentication both ways (host key, user key).
#include <fcntl.h>
#include <signal.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "config_file.hpp"
#include "controller_limits.hpp"
#include "transport.hpp"

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

// What ssh is told on its command line. Options given with -o come
// before any configuration file, and for ssh the first value obtained
// wins, so none of these can be undone by ssh_config either. With -F
// ssh reads no ~/.ssh/config and no /etc/ssh/ssh_config: inside a setuid
// program (pam_mctp in passwd) the former would be the calling user's.
std::vector<std::string> ssh_argv(const SshSettings& s, const Target& target) {
    std::vector<std::string> args = {
        s.command, "-F", s.config.empty() ? "/dev/null" : s.config, "-T", "-e", "none",
        // Nothing of anyone's own: no multiplexing onto a master
        // connection (which would skip the host key check), no proxy or
        // jump host, no command that decides host keys, no local command.
        "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ControlPersist=no",
        "-o", "ProxyCommand=none", "-o", "ProxyJump=none", "-o", "KnownHostsCommand=none",
        "-o", "PermitLocalCommand=no",
        // Authentication: only the configured identity (or root's own
        // default files), no agent, no PKCS#11, no DNS for host keys.
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none", "-o", "AddKeysToAgent=no", "-o", "PKCS11Provider=none",
        "-o", "VerifyHostKeyDNS=no", "-o", "UpdateHostKeys=no", "-o", "CanonicalizeHostname=no",
        // No channel but the session.
        "-o", "ClearAllForwardings=yes", "-o", "ForwardAgent=no", "-o", "ForwardX11=no",
        "-o", "Tunnel=no", "-o", "RequestTTY=no", "-o", "ForkAfterAuthentication=no",
        "-o", "ConnectTimeout=" + std::to_string(s.connect_timeout_s),
        "-p", std::to_string(target.port),
        "-l", s.user};
    if (!s.identity.empty()) {
        args.insert(args.end(), {"-i", s.identity});
    }
    if (!s.known_hosts.empty()) {
        args.insert(args.end(), {"-o", "UserKnownHostsFile=" + s.known_hosts,
                                 "-o", "GlobalKnownHostsFile=/dev/null"});
    }
    // The host was checked by parse_target (no leading '-'); "--" ends
    // the options anyway. No secret is ever in argv or the environment.
    args.insert(args.end(), {"--", target.host});
    return args;
}

// Runs in the child between fork and exec: async-signal-safe calls only.
// ssh must owe nothing to whoever started the program that loaded us:
// inside setuid passwd the real uid, the limits, the signal dispositions,
// the terminal, the working folder and the open descriptors are the
// calling user's.
// A failed execve is told to the parent through `status` (close-on-exec,
// so nothing arrives there once ssh runs).
[[noreturn]] void exec_ssh(const char* path, char* const* argv, char* const* envp, int io,
                           int err, int status) {
    // Its own session: no controlling terminal (ssh cannot open /dev/tty
    // to ask anything) and no signals from the user's keyboard.
    setsid();
    int report = status;
    const auto fail = [&report](int e) {
        [[maybe_unused]] const ssize_t n = write(report, &e, sizeof e);
        _exit(127);
    };
    // Copies at 3 or above first, so that filling 0, 1 and 2 cannot
    // overwrite one of them (the caller may have started us with 0, 1 or
    // 2 closed, and then a pipe end sits there).
    status = fcntl(status, F_DUPFD_CLOEXEC, 3);
    if (status < 0) {
        fail(errno);
    }
    report = status;
    io = fcntl(io, F_DUPFD, 3);
    err = fcntl(err, F_DUPFD, 3);
    if (io < 0 || err < 0 || dup2(io, 0) < 0 || dup2(io, 1) < 0 || dup2(err, 2) < 0) {
        fail(errno);
    }
    // No descriptor but these (passwd's own, PAM's and the other
    // targets' connections are closed).
    for (const auto& [from, to] : {std::pair<unsigned, unsigned>{3, static_cast<unsigned>(status) - 1},
                                   {static_cast<unsigned>(status) + 1, ~0U}}) {
        if (from <= to && close_range(from, to, 0) != 0) {
            for (unsigned fd = from; fd <= to && fd < 65536; ++fd) {
                close(static_cast<int>(fd));
            }
        }
    }
    // ssh finds its configuration, known hosts and keys in the home of the
    // REAL uid (getpwuid(getuid())), not $HOME: make it root's too.
    const uid_t euid = geteuid();
    if (euid == 0) {
        if (setgroups(0, nullptr) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) {
            fail(errno);
        }
    } else if (setresgid(getegid(), getegid(), getegid()) != 0 ||
               setresuid(euid, euid, euid) != 0) {
        fail(errno);
    }
    // Limits: none of the caller's (a tiny RLIMIT_FSIZE, NOFILE or CPU),
    // and no core file (ssh holds the password in its buffers).
    const rlimit none{0, 0};
    setrlimit(RLIMIT_CORE, &none);
    // Unlimited where the process may raise the hard limit (root with
    // CAP_SYS_RESOURCE), else at least the soft limit up to the hard one.
    const auto at_least = [](int resource, rlim_t want) {
        rlimit r{};
        if (getrlimit(resource, &r) != 0 || r.rlim_cur >= want) {  // RLIM_INFINITY is the largest
            return;
        }
        const rlimit both{want, r.rlim_max == RLIM_INFINITY ? RLIM_INFINITY
                                                            : std::max(want, r.rlim_max)};
        if (setrlimit(resource, &both) != 0) {
            r.rlim_cur = r.rlim_max;
            setrlimit(resource, &r);
        }
    };
    for (const int resource : {RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_AS}) {
        at_least(resource, RLIM_INFINITY);
    }
    at_least(RLIMIT_NOFILE, 1024);
    // Default dispositions and no blocked signal: an ignored SIGPIPE or
    // a caught SIGTERM of the caller's must not change how ssh ends.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &dfl, nullptr);
        }
    }
    sigset_t none_blocked;
    sigemptyset(&none_blocked);
    sigprocmask(SIG_SETMASK, &none_blocked, nullptr);
    umask(077);
    if (chdir("/") != 0) {
        fail(errno);
    }
    execve(path, argv, envp);
    fail(errno);
    _exit(127);  // fail() does not return
}

class SshTransport final : public Transport {
public:
    explicit SshTransport(SshSettings s) : s_(std::move(s)) {}

    asio::awaitable<std::unique_ptr<Stream>> connect(const Target& target) override {
        co_return open(co_await asio::this_coro::executor, target);
    }

private:
    // Starts ssh; not a coroutine (nothing here waits).
    std::unique_ptr<Stream> open(const asio::any_io_executor& ex, const Target& target) const {
        std::vector<std::string> args = ssh_argv(s_, target);
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        // A clean environment: no SSH_AUTH_SOCK, no HOME, nothing of the
        // caller's.
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
        // Whether ssh could be run at all is told through a close-on-exec
        // pipe: nothing arrives when execve succeeded.
        int status[2];
        if (pipe2(status, O_CLOEXEC) != 0) {
            const int e = errno;
            for (const int fd : {io[0], io[1], err[0], err[1]}) {
                ::close(fd);
            }
            throw std::system_error(e, std::generic_category(), "pipe");
        }
        const pid_t pid = fork();
        if (pid == 0) {
            exec_ssh(argv[0], argv.data(), envp.data(), io[1], err[1], status[1]);
        }
        int exec_errno = pid < 0 ? errno : 0;
        ::close(status[1]);
        ::close(io[1]);
        ::close(err[1]);
        if (pid > 0) {
            // Until execve succeeds (the pipe closes) or fails (an errno).
            ssize_t n = 0;
            do {
                n = ::read(status[0], &exec_errno, sizeof exec_errno);
            } while (n < 0 && errno == EINTR);
            if (n != static_cast<ssize_t>(sizeof exec_errno)) {
                exec_errno = 0;
            } else {
                int ignored = 0;
                waitpid(pid, &ignored, 0);
            }
        }
        ::close(status[0]);
        if (exec_errno != 0) {
            ::close(io[0]);
            ::close(err[0]);
            throw TransportError("cannot run " + s_.command + ": " + std::strerror(exec_errno));
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
    // Run as root from setuid passwd: nobody but root may have changed it.
    try {
        mctp::cfg::check_program(settings.command);
    } catch (const mctp::cfg::ConfigError& e) {
        throw TransportError(std::string("ssh_command: ") + e.what());
    }
    if (!settings.config.empty()) {
        // ssh reads it itself; checked here so that a file anyone else may
        // write (or a FIFO) is refused before anything starts.
        try {
            (void)mctp::cfg::read_checked(settings.config, "", true);
        } catch (const mctp::cfg::ConfigError& e) {
            throw TransportError(std::string("ssh_config: ") + e.what());
        }
    }
    return std::make_unique<SshTransport>(std::move(settings));
}

}  // namespace mpasswd
