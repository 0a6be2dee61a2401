// mpasswdd: the MCTP responder. One process per connection, MCTP on
// stdin/stdout; see mpasswdd(8).
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

#include "auth_tally.hpp"
#include "config.hpp"
#include "connection.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "peer.hpp"
#include "secret_hash.hpp"
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

// What reaches a terminal of a text that came from an argument or a file:
// control characters and non-ASCII escaped (\xHH).
std::string shown(std::string_view text) {
    return mctp::printable(text, mctp::limits::shown_text_max);
}

void usage(std::FILE* out) {
    std::fputs(
        "usage: mpasswdd [-c FILE] [--ssh] [--log-stderr] [--debug]\n"
        "       mpasswdd [-c FILE] --check-config\n"
        "       mpasswdd --hash-secret [--cost N]\n"
        "       mpasswdd --help | --version\n"
        "Speaks MCTP on standard input and output (one connection per process).\n"
        "  -c, --config FILE  configuration file (default " MPASSWD_SYSCONFDIR
        "/mpasswd/mpasswdd.conf)\n"
        "      --check-config validate the configuration, print the effective settings\n"
        "      --hash-secret  read a controller secret, print its yescrypt hash\n"
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

std::string system_host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || !mctp::is_helo_name(buf)) {
        return "localhost";
    }
    return buf;
}

// Reads one line into a Secret from fd 0, without echo on a terminal.
bool read_secret_line(const char* prompt, mctp::Secret* out) {
    const bool tty = isatty(0) != 0;
    termios saved{};
    if (tty) {
        std::fputs(prompt, stderr);
        std::fflush(stderr);
        tcgetattr(0, &saved);
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        tcsetattr(0, TCSAFLUSH, &quiet);
    }
    char buf[secret_max + 2];
    std::size_t len = 0;
    bool too_long = false;
    bool got_any = false;
    for (;;) {
        char c = 0;
        const ssize_t n = read(0, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || c == '\n') {
            got_any = got_any || n > 0;
            break;
        }
        got_any = true;
        if (len < sizeof buf) {
            buf[len++] = c;
        } else {
            too_long = true;
        }
    }
    if (tty) {
        tcsetattr(0, TCSAFLUSH, &saved);
        std::fputc('\n', stderr);
    }
    if (len > 0 && buf[len - 1] == '\r') {
        --len;
    }
    *out = mctp::Secret(std::string_view(buf, too_long ? sizeof buf : len));
    mctp::wipe(buf, sizeof buf);
    return got_any;
}

int hash_secret_command(unsigned long cost) {
    mctp::Secret secret;
    if (!read_secret_line("Controller secret: ", &secret)) {
        std::fputs("mpasswdd: no secret given on standard input\n", stderr);
        return exit_usage;
    }
    if (isatty(0) != 0) {
        mctp::Secret again;
        read_secret_line("Again: ", &again);
        if (!mctp::constant_time_equal(secret.view(), again.view())) {
            std::fputs("mpasswdd: the secrets differ\n", stderr);
            return exit_usage;
        }
    }
    if (!mctp::is_argument(secret.view()) || secret.size() < secret_min ||
        secret.size() > secret_max) {
        std::fprintf(stderr,
                     "mpasswdd: a secret is %zu to %zu printable ASCII characters "
                     "without spaces\n",
                     secret_min, secret_max);
        return exit_usage;
    }
    try {
        std::printf("%s\n", mpasswdd::hash_secret(secret, cost).c_str());
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
    const mctp::Reply r{mctp::Code::unavailable,
                        system_host_name() + " service not available (configuration error)"};
    const std::string line = mctp::format_reply(r, mctp::limits::line_max_default);
    [[maybe_unused]] const ssize_t n = write(1, line.data(), line.size());
    mpasswdd::linger_close(0, 1);
    return exit_config;
}

}  // namespace

int main(int argc, char** argv) {
    harden();
    // The login grace time counts from here: the connection is already
    // accepted when this process starts.
    const auto connected_at = mpasswdd::Clock::now();
    std::string config_path = mpasswdd::default_config_path;
    bool check_config = false;
    bool hash_secret = false;
    bool log_stderr = false;
    bool debug = false;
    bool ssh = false;
    unsigned long cost = 0;

    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if ((a == "-c" || a == "--config") && i + 1 < argc) {
            config_path = argv[++i];
        } else if (a.starts_with("--config=")) {
            config_path = std::string(a.substr(9));
        } else if (a == "--check-config") {
            check_config = true;
        } else if (a == "--hash-secret") {
            hash_secret = true;
        } else if (a == "--cost" && i + 1 < argc) {
            char* end = nullptr;
            cost = std::strtoul(argv[++i], &end, 10);
            if (*end != '\0' || cost < 1 || cost > 11) {
                std::fputs("mpasswdd: --cost takes a number from 1 to 11\n", stderr);
                return exit_usage;
            }
        } else if (a == "--log-stderr") {
            log_stderr = true;
        } else if (a == "--debug") {
            debug = true;
        } else if (a == "--ssh") {
            ssh = true;
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

    if (hash_secret) {
        return hash_secret_command(cost);
    }

    mpasswdd::log::open(log_stderr, debug);
    mpasswdd::Config config;
    try {
        config = mpasswdd::load_config(config_path);
        if (check_config) {
            mpasswdd::check_hashes(config);
            if (config.tls) {
                mpasswdd::check_tls_files(config);
            }
        }
    } catch (const mpasswdd::ConfigError& e) {
        if (check_config) {
            std::fprintf(stderr, "mpasswdd: %s\n", shown(e.what()).c_str());
            return exit_config;
        }
        return refuse_for_config(e.what());
    } catch (const mpasswdd::TlsError& e) {
        std::fprintf(stderr, "mpasswdd: %s\n", e.what());
        return exit_config;
    }
    if (check_config) {
        std::fputs(mpasswdd::describe(config).c_str(), stdout);
        return 0;
    }

    mpasswdd::Peer peer;
    if (ssh) {
        // Under sshd, fd 0 is a pipe: the controller's address is the
        // client of SSH_CONNECTION ("client port server port").
        const char* value = std::getenv("SSH_CONNECTION");
        const auto from_ssh =
            value != nullptr ? mpasswdd::peer_from_ssh_connection(value) : std::nullopt;
        if (!from_ssh) {
            return refuse_for_config(
                "--ssh: SSH_CONNECTION is missing or malformed; run mpasswdd --ssh as the "
                "forced command of an authorized_keys entry");
        }
        peer = *from_ssh;
    } else {
        peer = mpasswdd::peer_of_fd(0);
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
            locked = tally->locked(mpasswdd::tally_source(peer), mpasswdd::wall_ms());
        } catch (const mpasswdd::TallyError& e) {
            return refuse_for_config(std::string("state_directory: ") + e.what() +
                                     " (max_auth_failures_per_source = 0 turns the count off)");
        }
    }
    const auto login_deadline = connected_at + config.login_grace_time;
    // Over ssh the channel is already encrypted and authenticated: tls
    // applies to the socket only. The handshake is bounded by the login
    // grace time too; a locked-out source still gets it, so that the 421
    // can be read.
    std::unique_ptr<mpasswdd::Channel> channel;
    if (config.tls && !ssh) {
        try {
            channel = mpasswdd::tls_channel(
                config, 0,
                std::min(login_deadline,
                         mpasswdd::Clock::now() +
                             std::min(config.idle_timeout, config.session_timeout)),
                &peer);
        } catch (const mpasswdd::TlsFileError& e) {
            // No 421 here: the client speaks TLS and could not read it.
            mpasswdd::log::error(e.what());
            if (stderr_is_separate()) {
                std::fprintf(stderr, "mpasswdd: %s\n", e.what());
            }
            return exit_config;
        } catch (const mpasswdd::TlsError& e) {
            mpasswdd::log::write(mctp::LogLevel::warning,
                                 "TLS handshake with " + peer.text + " failed: " + e.what());
            return exit_failure;
        }
        if (!peer.tls_subject.empty()) {
            mpasswdd::log::write(mctp::LogLevel::info, "TLS client certificate from " + peer.text +
                                                           ": " + peer.tls_subject + " sha256 " +
                                                           peer.tls_fingerprint);
        }
    } else {
        channel = mpasswdd::fd_channel(0, 1);
    }
    mpasswdd::SystemHost host(config, peer, tally.get());
    mctp::SessionSettings settings;
    settings.host_name = config.host_name.empty() ? system_host_name() : config.host_name;
    settings.line_max = config.line_max;
    settings.max_auth_failures = config.max_auth_failures;
    settings.auth_failure_delay = config.auth_failure_delay;
    mctp::Session session(settings, host, peer.text);

    auto verdict = host.verdict();
    if (verdict == mctp::PeerVerdict::accepted && locked) {
        verdict = mctp::PeerVerdict::locked;
    }
    const auto end = mpasswdd::run_connection(
        session, verdict, *channel,
        {config.idle_timeout, config.session_timeout, login_deadline});
    mpasswdd::log::write(mctp::LogLevel::info, "session closed");
    return end == mpasswdd::ConnectionEnd::io_error ? exit_failure : 0;
}
