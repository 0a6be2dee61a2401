// mpasswdd: the MCTP responder. One connection per process, MCTP on
// stdin/stdout, split into a privileged parent and an unprivileged network
// child (privsep.hpp); see mpasswdd(8).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "auth_tally.hpp"
#include "config.hpp"
#include "connection.hpp"
#include "host_name.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "peer.hpp"
#include "privsep.hpp"
#include "sandbox.hpp"
#include "scram.hpp"
#include "secret_hash.hpp"
#include "secret_line.hpp"
#include "system_host.hpp"
#include "text.hpp"

namespace {

// sysexits.h values, documented in mpasswdd(8).
constexpr int exit_usage = 2;
constexpr int exit_failure = 1;
constexpr int exit_config = 78;

// Shortest secret --hash-secret accepts; the longest is what fits in one
// AUTH line of the smallest line_max.
constexpr std::size_t secret_min = 12;
constexpr std::size_t secret_max = mctp::limits::line_max_min - 7;

// The banner's name when host_name is not set and the system's is no
// valid HELO name.
constexpr std::string_view host_name_fallback = "localhost";

// What reaches a terminal of a text that came from an argument or a file:
// control characters and non-ASCII escaped (\xHH).
std::string shown(std::string_view text) {
    return mctp::printable(text, mctp::limits::shown_text_max);
}

void usage(std::FILE* out) {
    std::fputs(
        "usage: mpasswdd [-c FILE] [--ssh] [--log-stderr] [--debug]\n"
        "       mpasswdd [-c FILE] --check-config\n"
        "       mpasswdd --new-secret FILE [--iterations N]\n"
        "       mpasswdd --verifier [--iterations N]\n"
        "       mpasswdd --hash-secret [--cost N]\n"
        "       mpasswdd --help | --version\n"
        "Speaks MCTP on standard input and output (one connection per process).\n"
        "  -c, --config FILE  configuration file (default " MPASSWD_SYSCONFDIR
        "/mpasswd/mpasswdd.conf)\n"
        "      --check-config validate the configuration, print the effective settings\n"
        "      --new-secret FILE  write a random controller secret to FILE (new, mode 0600),\n"
        "                     print its secret_verifier line\n"
        "      --verifier     read a chosen controller secret, print its secret_verifier line\n"
        "      --iterations N PBKDF2 iterations of the verifier (default 4096 for --new-secret,\n"
        "                     600000 for --verifier)\n"
        "      --hash-secret  read a controller secret, print its yescrypt hash (legacy)\n"
        "      --cost N       yescrypt cost for --hash-secret, 1 to 11 (default: libxcrypt's)\n"
        "      --ssh          run as an SSH forced command: the peer is SSH_CONNECTION's client\n"
        "      --log-stderr   copy log lines to standard error\n"
        "      --debug        also log state changes\n",
        out);
}

void harden() {
    // No core dumps: the process holds secrets and passwords.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const rlimit zero{0, 0};
    setrlimit(RLIMIT_CORE, &zero);
    umask(077);
    std::signal(SIGPIPE, SIG_IGN);
}

// Whether fd 2 is a place for human-readable errors: not the connection
// itself (inetd hands the socket over as fds 0, 1 and 2).
bool stderr_is_separate() {
    struct stat e {}, o {};
    if (fstat(2, &e) != 0) {
        return false;
    }
    if (fstat(1, &o) != 0) {
        return true;
    }
    return e.st_dev != o.st_dev || e.st_ino != o.st_ino || S_ISCHR(e.st_mode);
}

// One line from standard input: asked with echo off on a terminal (which
// is restored if a signal ends the process meanwhile), else read as it is.
mctp::SecretLine read_secret(mctp::QuietTerminal* tty, std::string_view prompt) {
    return tty != nullptr ? tty->ask(prompt, secret_max) : mctp::read_secret_line(0, secret_max);
}

// A controller secret from standard input (twice on a terminal), checked:
// nullopt after saying why on stderr, with *status the exit status.
std::optional<mctp::Secret> read_controller_secret(int* status) {
    std::optional<mctp::QuietTerminal> tty;
    mctp::SecretLine line;
    *status = exit_usage;
    try {
        if (isatty(0) != 0) {
            tty.emplace(0, 2);
        }
        line = read_secret(tty ? &*tty : nullptr, "Controller secret: ");
        if (!line.got) {
            std::fputs("mpasswdd: no secret given on standard input\n", stderr);
            return std::nullopt;
        }
        if (tty) {
            const mctp::SecretLine again = read_secret(&*tty, "Again: ");
            if (!mctp::constant_time_equal(line.text.view(), again.text.view()) ||
                line.too_long != again.too_long) {
                std::fputs("mpasswdd: the secrets differ\n", stderr);
                return std::nullopt;
            }
        }
    } catch (const mctp::SecretInputError& e) {
        std::fprintf(stderr, "mpasswdd: %s\n", shown(e.what()).c_str());
        *status = exit_failure;
        return std::nullopt;
    }
    if (line.too_long || !mctp::is_argument(line.text.view()) || line.text.size() < secret_min) {
        std::fprintf(stderr,
                     "mpasswdd: a secret is %zu to %zu printable ASCII characters "
                     "without spaces\n",
                     secret_min, secret_max);
        return std::nullopt;
    }
    *status = 0;
    return std::move(line.text);
}

int hash_secret_command(unsigned long cost) {
    int status = 0;
    const auto secret = read_controller_secret(&status);
    if (!secret) {
        return status;
    }
    try {
        std::printf("%s\n", mpasswdd::hash_secret(*secret, cost).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mpasswdd: %s\n", shown(e.what()).c_str());
        return exit_failure;
    }
    return 0;
}

// Iterations for a random 256-bit secret (RFC 7677's floor: nothing to
// stretch) and for one a person chose (OWASP's PBKDF2-SHA256 figure).
constexpr unsigned long random_iterations = mctp::scram::iterations_min;
constexpr unsigned long chosen_iterations = 600'000;
constexpr std::size_t random_secret_octets = 32;

std::string verifier_line(std::string_view secret, unsigned long iterations) {
    return "secret_verifier = " +
           mctp::scram::format_verifier(mctp::scram::make_verifier(
               secret, mctp::scram::random_salt(), static_cast<unsigned>(iterations)));
}

// --new-secret FILE: 32 random octets, base64, as one line in a new file
// that only its owner may read; the verifier line on standard output.
int new_secret_command(const std::string& path, unsigned long iterations) {
    unsigned char raw[random_secret_octets];
    try {
        mctp::scram::random_bytes(raw, sizeof raw);
    } catch (const std::runtime_error&) {
        std::fputs("mpasswdd: the random generator failed\n", stderr);
        return exit_failure;
    }
    const mctp::Secret secret(mctp::scram::base64(
        std::string_view(reinterpret_cast<const char*>(raw), sizeof raw)));
    mctp::wipe(raw, sizeof raw);
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        std::fprintf(stderr, "mpasswdd: %s: %s%s\n", shown(path).c_str(), std::strerror(errno),
                     errno == EEXIST ? " (it is never overwritten)" : "");
        return exit_failure;
    }
    const mctp::Secret line = mctp::Secret::join({secret.view(), "\n"});
    const bool ok = fchmod(fd, 0600) == 0 &&
                    write(fd, line.view().data(), line.size()) ==
                        static_cast<ssize_t>(line.size()) &&
                    fsync(fd) == 0;
    if (close(fd) != 0 || !ok) {
        std::fprintf(stderr, "mpasswdd: %s: cannot write the secret: %s\n", shown(path).c_str(),
                     std::strerror(errno));
        unlink(path.c_str());
        return exit_failure;
    }
    try {
        std::printf("%s\n", verifier_line(secret.view(), iterations).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mpasswdd: %s\n", shown(e.what()).c_str());
        return exit_failure;
    }
    return 0;
}

// --verifier: the verifier line of a secret read as --hash-secret reads it.
int verifier_command(unsigned long iterations) {
    int status = 0;
    const auto secret = read_controller_secret(&status);
    if (!secret) {
        return status;
    }
    try {
        std::printf("%s\n", verifier_line(secret->view(), iterations).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mpasswdd: %s\n", shown(e.what()).c_str());
        return exit_failure;
    }
    return 0;
}

// Refuses the connection when the configuration is unusable, so the
// controller gets a protocol answer rather than a silent close.
int refuse_for_config(const std::string& message) {
    mpasswdd::log::error(message);
    if (stderr_is_separate()) {
        std::fprintf(stderr, "mpasswdd: %s\n", shown(message).c_str());
    }
    const mctp::Reply r{mctp::Code::unavailable, mctp::system_host_name(host_name_fallback) +
                                                     " service not available (configuration error)"};
    const std::string line = mctp::format_reply(r, mctp::limits::line_max_default);
    [[maybe_unused]] const ssize_t n = write(1, line.data(), line.size());
    mpasswdd::linger_close(0, 1);
    return exit_config;
}

struct Options {
    std::string config_path = mpasswdd::default_config_path;
    bool check_config = false;
    bool hash_secret = false;
    bool verifier = false;
    std::string new_secret;  // --new-secret FILE
    unsigned long iterations = 0;  // 0: the default for the command
    bool log_stderr = false;
    bool debug = false;
    bool ssh = false;
    unsigned long cost = 0;
};

// The exit status when the options say to stop (help, version, an
// error), or nothing.
std::optional<int> parse_options(int argc, char** argv, Options* o) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if ((a == "-c" || a == "--config") && i + 1 < argc) {
            o->config_path = argv[++i];
        } else if (a.starts_with("--config=")) {
            o->config_path = std::string(a.substr(9));
        } else if (a == "--check-config") {
            o->check_config = true;
        } else if (a == "--hash-secret") {
            o->hash_secret = true;
        } else if (a == "--new-secret" && i + 1 < argc) {
            o->new_secret = argv[++i];
            if (o->new_secret.empty()) {
                std::fputs("mpasswdd: --new-secret needs a file name\n", stderr);
                return exit_usage;
            }
        } else if (a == "--verifier") {
            o->verifier = true;
        } else if (a == "--iterations" && i + 1 < argc) {
            char* end = nullptr;
            errno = 0;
            o->iterations = std::strtoul(argv[++i], &end, 10);
            if (*end != '\0' || errno != 0 || o->iterations < mctp::scram::iterations_min ||
                o->iterations > mctp::scram::iterations_max) {
                std::fprintf(stderr, "mpasswdd: --iterations takes a number from %u to %u\n",
                             mctp::scram::iterations_min, mctp::scram::iterations_max);
                return exit_usage;
            }
        } else if (a == "--cost" && i + 1 < argc) {
            char* end = nullptr;
            o->cost = std::strtoul(argv[++i], &end, 10);
            if (*end != '\0' || o->cost < 1 || o->cost > 11) {
                std::fputs("mpasswdd: --cost takes a number from 1 to 11\n", stderr);
                return exit_usage;
            }
        } else if (a == "--log-stderr") {
            o->log_stderr = true;
        } else if (a == "--debug") {
            o->debug = true;
        } else if (a == "--ssh") {
            o->ssh = true;
        } else if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else if (a == "-V" || a == "--version") {
            std::puts("mpasswdd " MPASSWD_VERSION);
            return 0;
        } else {
            if (stderr_is_separate()) {
                std::fprintf(stderr, "mpasswdd: unknown or incomplete option '%s'\n",
                             shown(argv[i]).c_str());
                usage(stderr);
            }
            return exit_usage;
        }
    }
    return std::nullopt;
}

int check_config_command(const Options& o) {
    try {
        const mpasswdd::Config config = mpasswdd::load_config(o.config_path);
        mpasswdd::check_hashes(config);
        if (config.tls) {
            mpasswdd::check_tls_files(config);
        }
        std::fputs(mpasswdd::describe(config).c_str(), stdout);
        return 0;
    } catch (const mpasswdd::ConfigError& e) {
        std::fprintf(stderr, "mpasswdd: %s\n", shown(e.what()).c_str());
    } catch (const mpasswdd::TlsError& e) {
        std::fprintf(stderr, "mpasswdd: %s\n", e.what());
    }
    return exit_config;
}

// Who the controller is: under sshd fd 0 is a pipe, and the address is
// the client of SSH_CONNECTION ("client port server port").
std::optional<mpasswdd::Peer> peer_for(bool ssh) {
    if (!ssh) {
        return mpasswdd::peer_of_fd(0);
    }
    const char* value = std::getenv("SSH_CONNECTION");
    return value != nullptr ? mpasswdd::peer_from_ssh_connection(value) : std::nullopt;
}

// The parent's end of the session's deadline: the child's own limits
// (the login grace time for the handshake, session_timeout, a last reply
// draining for idle_timeout, the linger) with a margin. Past it the child
// is killed.
mpasswdd::Clock::time_point hard_deadline(const mpasswdd::Config& c,
                                          mpasswdd::Clock::time_point connected_at) {
    return connected_at + c.login_grace_time + c.session_timeout + c.idle_timeout +
           mctp::limits::linger_max + std::chrono::seconds(5);
}

// reap(): the child ended by a signal.
constexpr int killed = -1;

// Waits for the child; kills it first when `stop`, or when it has not
// exited a few seconds after closing its end. Its exit status, or
// `killed` when a signal ended it (logged unless `stop`).
int reap(pid_t pid, bool stop) {
    if (stop) {
        kill(pid, SIGKILL);
    }
    int status = 0;
    const auto give_up = mpasswdd::Clock::now() + std::chrono::seconds(5);
    for (;;) {
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (r < 0 && errno != EINTR) {
            return exit_failure;
        }
        if (mpasswdd::Clock::now() > give_up) {
            kill(pid, SIGKILL);
        }
        poll(nullptr, 0, 5);
    }
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        if (!stop) {
            mpasswdd::log::error(
                "privsep: the network child was killed by signal " + std::to_string(sig) +
                (sig == SIGSYS ? " (a system call outside its seccomp filter)" : ""));
        }
        return killed;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : exit_failure;
}

// Points fds 0 and 1 (and 2 when it is the connection too) at /dev/null:
// from here the root process holds no descriptor of the network.
void let_go_of_the_connection(bool stderr_separate) {
    const int null = open("/dev/null", O_RDWR);
    if (null < 0) {
        close(0);
        close(1);
        if (!stderr_separate) {
            close(2);
        }
        return;
    }
    dup2(null, 0);
    dup2(null, 1);
    if (!stderr_separate) {
        dup2(null, 2);
    }
    if (null > 2) {
        close(null);
    }
}

// The privileged parent: the configuration, the peer's verdict, the
// per-source tally and the Host calls; never a byte of the network.
int run_parent(const Options& o, pid_t child, int fd, mpasswdd::Clock::time_point connected_at) {
    mpasswdd::log::open(o.log_stderr, o.debug);
    const bool separate = stderr_is_separate();
    // Refusing before the HELLO: the child is still waiting, the parent
    // still has the connection for the 421.
    const auto refuse = [&](const std::string& message) {
        const int rc = refuse_for_config(message);
        close(fd);
        reap(child, false);
        return rc;
    };
    const auto peer = peer_for(o.ssh);
    if (!peer) {
        return refuse(
            "--ssh: SSH_CONNECTION is missing or malformed; run mpasswdd --ssh as the forced "
            "command of an authorized_keys entry");
    }
    mpasswdd::Config config;
    mpasswdd::Jail jail;
    std::string note;
    try {
        config = mpasswdd::load_config(o.config_path);
        jail = mpasswdd::make_jail(config.privsep_user, config.privsep_directory, &note);
    } catch (const mpasswdd::ConfigError& e) {
        return refuse(e.what());
    } catch (const mpasswdd::SandboxError& e) {
        return refuse(config.path + ": " + e.what());
    }
    if (!note.empty()) {
        mpasswdd::log::write(mctp::LogLevel::warning, note);
    }
    // Failed AUTHs from this source across connections: a locked-out
    // source gets 421 before any secret is checked. A tally that is unsafe
    // or cannot be opened is a configuration error, not a reason to stop
    // counting silently.
    std::unique_ptr<mpasswdd::AuthTally> tally;
    bool locked = false;
    if (config.max_auth_failures_per_source > 0 && config.enabled &&
        !config.controllers.empty()) {
        try {
            tally = std::make_unique<mpasswdd::AuthTally>(config.state_directory,
                                                          config.max_auth_failures_per_source,
                                                          config.auth_failure_window);
            locked = tally->locked(mpasswdd::tally_source(*peer), mpasswdd::wall_ms());
        } catch (const mpasswdd::TallyError& e) {
            return refuse(std::string("state_directory: ") + e.what() +
                          " (max_auth_failures_per_source = 0 turns the count off)");
        }
    }
    let_go_of_the_connection(separate);

    mpasswdd::privsep::Hello hello;
    hello.change_ids = jail.change_ids;
    hello.uid = jail.uid;
    hello.gid = jail.gid;
    hello.root = jail.root;
    hello.host_name = config.host_name.empty() ? mctp::system_host_name(host_name_fallback)
                                               : config.host_name;
    hello.peer = peer->text;
    hello.line_max = static_cast<std::uint32_t>(config.line_max);
    hello.idle_timeout = config.idle_timeout;
    hello.session_timeout = config.session_timeout;
    hello.login_grace_time = config.login_grace_time;
    hello.max_auth_failures = config.max_auth_failures;
    // Over ssh the channel is already encrypted and authenticated: tls
    // applies to the socket only.
    hello.tls = config.tls && !o.ssh;
    if (hello.tls) {
        hello.tls_certificate = config.tls_certificate;
        hello.tls_key = config.tls_key;
        hello.tls_client_ca = config.tls_client_ca;
    }
    if (!mpasswdd::privsep::send_hello(fd, hello)) {
        mpasswdd::log::error("privsep: the network child is gone before the session");
        close(fd);
        reap(child, true);
        return exit_failure;
    }

    mpasswdd::SystemHost host(config, *peer, tally.get());
    const auto error = [&](std::string_view message) {
        mpasswdd::log::error(message);
        if (separate && !o.log_stderr) {
            std::fprintf(stderr, "mpasswdd: %s\n", shown(message).c_str());
        }
    };
    const mpasswdd::privsep::MonitorBackend backend{
        host,
        [&](const std::string& subject, const std::string& fingerprint,
            const std::string& tls_exporter) {
            if (!subject.empty()) {
                mpasswdd::log::write(mctp::LogLevel::info,
                                     "TLS client certificate from " + peer->text + ": " +
                                         subject + " sha256 " + fingerprint);
            }
            host.set_client_certificate(subject, fingerprint);
            host.set_channel_binding(tls_exporter);
            const auto v = host.verdict();
            return v == mctp::PeerVerdict::accepted && locked ? mctp::PeerVerdict::locked : v;
        },
        error};
    const mpasswdd::privsep::MonitorSettings settings{
        config.max_auth_failures, config.auth_failure_delay, config.line_max};
    const auto end = mpasswdd::privsep::serve(fd, backend, settings,
                                              hard_deadline(config, connected_at));
    close(fd);
    const bool clean = end == mpasswdd::privsep::MonitorEnd::child_done;
    const int status = reap(child, !clean);
    if (!clean || status == killed) {
        return exit_failure;
    }
    if (status != exit_config) {
        mpasswdd::log::write(mctp::LogLevel::info, "session closed");
    }
    return status;
}

// The network child: waits for the parent's HELLO (reading nothing from
// the network before it), loads the TLS files, confines itself, then
// runs the session with the parent as its Host.
int run_child(const Options& o, int fd, pid_t parent, mpasswdd::Clock::time_point connected_at) {
    namespace privsep = mpasswdd::privsep;
    mpasswdd::log::set_debug(o.debug);
    // Ends with the parent (again after the id change, which clears it).
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) {
        return exit_failure;
    }
    privsep::Message m;
    std::string why;
    if (privsep::receive(fd, &m, mpasswdd::Clock::time_point::max(), &why) !=
        privsep::Received::ok) {
        return 0;  // the parent refused the connection and said why
    }
    privsep::Hello hello;
    if (!privsep::parse_hello(m, &hello, &why)) {
        return exit_failure;
    }
    privsep::MonitorClient parent_link(fd);
    mpasswdd::TlsContext tls;
    if (hello.tls) {
        try {
            tls = mpasswdd::tls_context(
                {hello.tls_certificate, hello.tls_key, hello.tls_client_ca});
        } catch (const mpasswdd::TlsFileError& e) {
            // No 421 here: the client speaks TLS and could not read it.
            parent_link.log_level(privsep::log_error, e.what());
            return exit_config;
        } catch (const mpasswdd::TlsError& e) {
            parent_link.log_level(privsep::log_error, e.what());
            return exit_failure;
        }
    }
    // Every reply is one whole line, written at once: Nagle would only
    // hold one back until the client's delayed ACK (some 40 ms), as for
    // the banner after TLS's last flight or the replies to lines a
    // controller pipelined (PIPELINING). Nothing on a socket that is not
    // TCP. Now, before the seccomp filter.
    const int one = 1;
    setsockopt(0, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // The child writes nothing to stderr (under inetd it is the socket).
    if (const int null = open("/dev/null", O_RDWR); null >= 0) {
        dup2(null, 2);
        if (null > 2) {
            close(null);
        }
    }
    try {
        mpasswdd::confine({hello.change_ids, hello.uid, hello.gid, hello.root}, parent);
    } catch (const mpasswdd::SandboxError& e) {
        parent_link.log_level(privsep::log_error,
                              std::string("privsep: cannot confine the network child: ") +
                                  e.what());
        return exit_failure;
    }
    const auto login_deadline = connected_at + hello.login_grace_time;
    mpasswdd::Peer peer;
    peer.text = hello.peer;
    std::unique_ptr<mpasswdd::Channel> channel;
    if (hello.tls) {
        // The handshake is bounded by the login grace time too; a
        // locked-out source still gets it, so that the 421 can be read.
        try {
            channel = mpasswdd::tls_channel(
                std::move(tls), 0,
                std::min(login_deadline,
                         mpasswdd::Clock::now() +
                             std::min(hello.idle_timeout, hello.session_timeout)),
                &peer);
        } catch (const mpasswdd::TlsError& e) {
            parent_link.log(mctp::LogLevel::warning,
                            "TLS handshake with " + peer.text + " failed: " + e.what());
            return exit_failure;
        }
    } else {
        channel = mpasswdd::fd_channel(0, 1);
    }
    const mctp::PeerVerdict verdict =
        parent_link.start(peer.tls_subject, peer.tls_fingerprint, peer.tls_exporter);
    mctp::SessionSettings settings;
    settings.scram_plus = peer.tls_exporter.size() == privsep::binding_size;
    // Not needed here any more: the parent has it.
    mctp::wipe(peer.tls_exporter.data(), peer.tls_exporter.size());
    peer.tls_exporter.clear();
    settings.host_name = hello.host_name;
    settings.line_max = hello.line_max;
    settings.max_auth_failures = hello.max_auth_failures;
    // The parent waits before it answers a failed AUTH.
    settings.auth_failure_delay = std::chrono::milliseconds(0);
    mctp::Session session(settings, parent_link, peer.text);
    const auto end = mpasswdd::run_connection(
        session, verdict, *channel,
        {hello.idle_timeout, hello.session_timeout, login_deadline});
    return end == mpasswdd::ConnectionEnd::io_error ? exit_failure : 0;
}

// Splits the process: nothing of the configuration is in memory yet, so
// the child never has a secret hash.
int run_split(const Options& o, mpasswdd::Clock::time_point connected_at) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        mpasswdd::log::open(o.log_stderr, o.debug);
        mpasswdd::log::error(std::string("privsep: socketpair: ") + std::strerror(errno));
        return exit_failure;
    }
    const pid_t parent = getpid();
    std::fflush(nullptr);
    const pid_t child = fork();
    if (child < 0) {
        mpasswdd::log::open(o.log_stderr, o.debug);
        mpasswdd::log::error(std::string("privsep: fork: ") + std::strerror(errno));
        return exit_failure;
    }
    if (child == 0) {
        close(sv[0]);
        const int rc = run_child(o, sv[1], parent, connected_at);
        std::fflush(nullptr);
        _exit(rc);
    }
    close(sv[1]);
    return run_parent(o, child, sv[0], connected_at);
}

}  // namespace

int main(int argc, char** argv) {
    harden();
    // The login grace time counts from here: the connection is already
    // accepted when this process starts.
    const auto connected_at = mpasswdd::Clock::now();
    Options o;
    if (const auto stop = parse_options(argc, argv, &o)) {
        return *stop;
    }
    if (o.hash_secret) {
        return hash_secret_command(o.cost);
    }
    if (!o.new_secret.empty()) {
        return new_secret_command(o.new_secret,
                                  o.iterations != 0 ? o.iterations : random_iterations);
    }
    if (o.verifier) {
        return verifier_command(o.iterations != 0 ? o.iterations : chosen_iterations);
    }
    if (o.check_config) {
        return check_config_command(o);
    }
    return run_split(o, connected_at);
}
