// The shared pieces in common/: the configuration key tables and their
// parser skeleton (driven here with a two-section table shaped like
// mpasswdd.conf, global keys and [peer NAME] sections), range texts, the
// host-name fallback and the secret-line reader.
#include <gtest/gtest.h>

#include <pty.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config_keys.hpp"
#include "host_name.hpp"
#include "secret_line.hpp"
#include "text.hpp"

namespace {

namespace cfg = mctp::cfg;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

TEST(RangeText, FromTheConstants) {
    EXPECT_EQ(cfg::range_text(1, 65535), "from 1 to 65535");
    EXPECT_EQ(cfg::seconds_range_text(100ms, 3'600'000ms), "seconds from 0.1 to 3600");
    EXPECT_EQ(cfg::seconds_range_text(0ms, 60'000ms), "seconds from 0 to 60");
    // Exact, never rounded to six digits or in exponent form.
    EXPECT_EQ(cfg::seconds_text(604'800'000ms), "604800");
    EXPECT_EQ(cfg::seconds_text(1'000'000'000ms), "1000000");
    EXPECT_EQ(cfg::seconds_text(1'234'567'891ms), "1234567.891");
    EXPECT_EQ(cfg::seconds_text(250ms), "0.25");
    EXPECT_EQ(cfg::seconds_text(1ms), "0.001");
    EXPECT_EQ(cfg::seconds_text(1500ms), "1.5");
}

TEST(ParseSeconds, DigitsWithAFractionRoundedToTheMillisecond) {
    const auto parse = [](std::string_view v) -> std::optional<long long> {
        milliseconds out{-1};
        if (!cfg::parse_seconds(v, 0ms, 1'000'000'000'000ms, &out)) {
            return std::nullopt;
        }
        return out.count();
    };
    EXPECT_EQ(parse("60"), 60'000);
    EXPECT_EQ(parse("0.25"), 250);
    EXPECT_EQ(parse(".5"), 500);
    EXPECT_EQ(parse("5."), 5'000);
    EXPECT_EQ(parse("007"), 7'000);
    EXPECT_EQ(parse("0"), 0);
    EXPECT_EQ(parse("1.0005"), 1'001) << "half up";
    EXPECT_EQ(parse("1.00049999999999999999"), 1'000) << "exact, not through a double";
    EXPECT_EQ(parse("2.9999"), 3'000);
    EXPECT_EQ(parse("1000000000"), 1'000'000'000'000);
    EXPECT_EQ(parse("0000000000001.5"), 1'500) << "leading zeroes are not digits too many";
    for (const char* bad : {"", ".", "-1", "-0", "+1", " 1", "1 ", "1.2.3", "1e3", "inf", "nan",
                            "0x10", "1,5", "1000000000.001", "99999999999999999999999"}) {
        EXPECT_EQ(parse(bad), std::nullopt) << bad;
    }
    milliseconds out{7};
    EXPECT_FALSE(cfg::parse_seconds("0.05", 100ms, 1000ms, &out));
    EXPECT_FALSE(cfg::parse_seconds("1.0006", 100ms, 1000ms, &out));
    EXPECT_EQ(out, 7ms) << "unchanged when refused";
    EXPECT_TRUE(cfg::parse_seconds("1.0004", 100ms, 1000ms, &out));
    EXPECT_EQ(out, 1000ms);
}

TEST(ConfigLines, SectionAndKeyLinesCountFromOne) {
    const std::string text =
        "a = 1\n"
        "\n"
        "[peer one]\r\n"
        "  key\t= x\n"
        "keyboard = y\n"
        "[peer two]\n"
        "other: z";
    EXPECT_EQ(cfg::section_line(text, "peer one"), 3);
    EXPECT_EQ(cfg::section_line(text, "peer two"), 6);
    EXPECT_EQ(cfg::section_line(text, "peer"), 0);
    EXPECT_EQ(cfg::key_line(text, "a"), 1);
    EXPECT_EQ(cfg::key_line(text, "key"), 4);
    EXPECT_EQ(cfg::key_line(text, "keyboard"), 5);
    EXPECT_EQ(cfg::key_line(text, "other"), 7) << "the last line has no newline";
    EXPECT_EQ(cfg::key_line(text, "missing"), 0);
    EXPECT_EQ(cfg::key_line("", "a"), 0);
    EXPECT_EQ(cfg::section_line("\n\n[s]", "s"), 3);
}

TEST(RangeText, RelativeTo) {
    EXPECT_EQ(cfg::relative_to("/etc/m/m.conf", "hosts"), "/etc/m/hosts");
    EXPECT_EQ(cfg::relative_to("/etc/m/m.conf", "/abs"), "/abs");
    EXPECT_EQ(cfg::relative_to("m.conf", "hosts"), "hosts");
}

// A file shaped like mpasswdd.conf: global keys (before any header or in
// [main]), and [peer NAME] sections with keys of their own.
struct Peer {
    std::string name;
    std::vector<std::string> from;
    std::string secret_hash;
};

struct Settings {
    struct Inner {
        unsigned max = 3;
    };
    bool enabled = true;
    std::size_t line_max = 128;
    milliseconds idle{60'000};
    std::string state_directory = "/var/lib/x";
    std::string ca;
    Inner inner;
    std::vector<std::string> allow_users;
    std::vector<Peer> peers;
};

std::string user_name_check(const std::string& item) {
    return mctp::is_user_name(item) ? "" : "'" + item + "' is not a valid user name";
}

const cfg::KeyTable<Settings> global_keys{
    cfg::flag<Settings>("enabled", &Settings::enabled, "yes: answer"),
    cfg::number<Settings>("line_max", &Settings::line_max, std::size_t{128}, std::size_t{4096},
                          "octets in a line", "a number of octets"),
    cfg::seconds<Settings>("idle_timeout", &Settings::idle, 100ms, 86'400'000ms, "idle"),
    cfg::file<Settings>("state_directory", &Settings::state_directory, "state",
                        cfg::PathRule::absolute),
    cfg::file<Settings>("ca", &Settings::ca, "CA file"),
    cfg::number<Settings>(
        "max", [](auto& s) -> auto& { return s.inner.max; }, 1U, 100U, "nested member"),
    cfg::list<Settings>("allow_users", &Settings::allow_users, 3, user_name_check, "users"),
};

const cfg::KeyTable<Peer> peer_keys{
    cfg::list<Peer>(
        "from", &Peer::from, 2, [](const std::string&) { return std::string(); }, "addresses"),
    {"secret_hash",
     [](Peer& p, std::string_view v, const std::string&, std::string* why) {
         if (!v.starts_with("$y$")) {
             *why = "must be a yescrypt hash";
             return false;
         }
         p.secret_hash = v;
         return true;
     },
     [](const Peer& p) { return std::string(p.secret_hash.empty() ? "(none)" : "(set)"); },
     "the hash"},
};

Settings parse(const std::string& text, const std::string& path = "/etc/x/x.conf") {
    Settings s;
    cfg::parse_sections(
        text, path, {"'key = value' or '[section]'", "given twice in one section"},
        [&](std::string_view section, std::string* why) -> std::optional<cfg::SectionSink> {
            if (section.empty() || section == "main") {
                return global_keys.sink(s, "main", path);
            }
            if (section.starts_with("peer ")) {
                const std::string name(section.substr(5));
                auto it = std::find_if(s.peers.begin(), s.peers.end(),
                                       [&](const Peer& p) { return p.name == name; });
                if (it == s.peers.end()) {
                    if (s.peers.size() >= 2) {
                        *why = "more than 2 peers";
                        return std::nullopt;
                    }
                    s.peers.push_back(Peer{name, {}, {}});
                    it = s.peers.end() - 1;
                }
                return peer_keys.sink(*it, "peer " + name, path);
            }
            *why = "in unknown section [" + mctp::printable(section, 128) +
                   "]; sections are [main] and [peer NAME]";
            return std::nullopt;
        });
    return s;
}

std::string parse_error(const std::string& text) {
    try {
        parse(text);
    } catch (const cfg::ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(KeyTable, TwoSectionsEveryKind) {
    const Settings s = parse(
        "enabled = no\nline_max = 512\nidle_timeout = 1.5\nstate_directory = /var/x\n"
        "ca = ca.pem\nmax = 7\nallow_users = alice, bob\n"
        "[peer one]\nfrom = 10.0.0.1 10.0.0.2\nsecret_hash = $y$abc\n"
        "[peer two]\nfrom = 10.0.0.3\n[main]\n[peer one]\n");
    EXPECT_FALSE(s.enabled);
    EXPECT_EQ(s.line_max, 512U);
    EXPECT_EQ(s.idle, 1500ms);
    EXPECT_EQ(s.state_directory, "/var/x");
    EXPECT_EQ(s.ca, "/etc/x/ca.pem");  // relative to the file's folder
    EXPECT_EQ(s.inner.max, 7U);
    EXPECT_EQ(s.allow_users, (std::vector<std::string>{"alice", "bob"}));
    ASSERT_EQ(s.peers.size(), 2U);
    EXPECT_EQ(s.peers[0].name, "one");
    EXPECT_EQ(s.peers[0].from, (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
    EXPECT_EQ(s.peers[0].secret_hash, "$y$abc");
    EXPECT_EQ(s.peers[1].from, (std::vector<std::string>{"10.0.0.3"}));
}

TEST(KeyTable, ErrorsNameFileLineAndKey) {
    const std::string f = "/etc/x/x.conf:";
    EXPECT_EQ(parse_error("enabled = maybe\n"), f + "1: enabled: must be yes or no");
    EXPECT_EQ(parse_error("\nline_max = 127\n"),
              f + "2: line_max: must be a number of octets from 128 to 4096");
    EXPECT_EQ(parse_error("idle_timeout = 0.05\n"),
              f + "1: idle_timeout: must be seconds from 0.1 to 86400");
    EXPECT_EQ(parse_error("state_directory = var\n"),
              f + "1: state_directory: must be an absolute path");
    EXPECT_EQ(parse_error("ca =\n"), f + "1: ca: must name a file");
    EXPECT_EQ(parse_error("max = 101\n"), f + "1: max: must be a number from 1 to 100");
    EXPECT_EQ(parse_error("allow_users = a b c d\n"), f + "1: allow_users: more than 3 entries");
    EXPECT_EQ(parse_error("allow_users = a -x\n"),
              f + "1: allow_users: '-x' is not a valid user name");
    EXPECT_EQ(parse_error("nosuch = 1\n"), f + "1: nosuch: unknown key");
    // A key of one section is unknown in the other.
    EXPECT_EQ(parse_error("[peer a]\nenabled = yes\n"), f + "2: enabled: unknown key");
    EXPECT_EQ(parse_error("from = x\n"), f + "1: from: unknown key");
    EXPECT_EQ(parse_error("[peer a]\nsecret_hash = plain\n"),
              f + "2: secret_hash: must be a yescrypt hash");
    EXPECT_EQ(parse_error("[other]\nmax = 1\n"),
              f + "2: max: in unknown section [other]; sections are [main] and [peer NAME]");
    EXPECT_EQ(parse_error("[peer a]\nfrom = 1\n[peer b]\nfrom = 2\n[peer c]\nfrom = x\n"),
              f + "6: from: more than 2 peers");
    EXPECT_EQ(parse_error("no equals sign\n"),
              f + "1: syntax error (expected 'key = value' or '[section]')");
    // Keys and sections are the file's text: escaped.
    EXPECT_EQ(parse_error("k\x1b[2J = 1\n"), f + "1: k\\x1b[2J: unknown key");
    EXPECT_EQ(parse_error("[\x1b]\nmax = 1\n"),
              f + "2: max: in unknown section [\\x1b]; sections are [main] and [peer NAME]");
}

TEST(KeyTable, GivenTwicePerSection) {
    const std::string twice = "given twice in one section";
    EXPECT_EQ(parse_error("max = 1\nmax = 2\n"), "/etc/x/x.conf:2: max: " + twice);
    // Before any header and [main] are one section.
    EXPECT_EQ(parse_error("max = 1\n[main]\nmax = 2\n"), "/etc/x/x.conf:3: max: " + twice);
    // A section reopened later is still the same one.
    EXPECT_EQ(parse_error("[peer a]\nfrom = x\n[peer b]\nfrom = y\n[peer a]\nfrom = z\n"),
              "/etc/x/x.conf:6: from: " + twice);
    // The same key in two sections is fine.
    EXPECT_EQ(parse_error("[peer a]\nfrom = x\n[peer b]\nfrom = y\n"), "(no error)");
}

TEST(KeyTable, BadValueChangesNothing) {
    Settings s;
    std::string why;
    EXPECT_FALSE(global_keys.set(s, "line_max", "99999", "/x", &why));
    EXPECT_EQ(s.line_max, 128U);
    EXPECT_FALSE(global_keys.set(s, "idle_timeout", "-1", "/x", &why));
    EXPECT_EQ(s.idle, 60'000ms);
    EXPECT_FALSE(global_keys.set(s, "allow_users", "ok -bad", "/x", &why));
    EXPECT_TRUE(s.allow_users.empty());
    EXPECT_FALSE(global_keys.set(s, "nosuch", "1", "/x", &why));
    EXPECT_EQ(why, "unknown key");
}

TEST(KeyTable, DescribeEveryKeyWithSecretsMasked) {
    const Settings s = parse("idle_timeout = 0.25\nallow_users = alice\n"
                             "[peer a]\nfrom = 10.0.0.1\nsecret_hash = $y$very-secret\n");
    EXPECT_EQ(global_keys.describe(s),
              "enabled = yes\nline_max = 128\nidle_timeout = 0.25\n"
              "state_directory = /var/lib/x\nca = (none)\nmax = 3\nallow_users = alice\n");
    const std::string peer = peer_keys.describe(s.peers.at(0));
    EXPECT_EQ(peer, "from = 10.0.0.1\nsecret_hash = (set)\n");
    EXPECT_EQ(peer.find("very-secret"), std::string::npos);
    // Every key of the table is described.
    const std::string help = global_keys.help();
    for (const auto& k : global_keys.keys()) {
        EXPECT_NE(help.find(std::string(k.name) + ": "), std::string::npos) << k.name;
    }
}

TEST(HostName, ValidNameOrFallback) {
    const std::string name = mctp::system_host_name("fallback-x");
    EXPECT_TRUE(mctp::is_helo_name(name));
    char buf[256] = {};
    ASSERT_EQ(gethostname(buf, sizeof buf - 1), 0);
    EXPECT_EQ(name, mctp::is_helo_name(buf) ? std::string(buf) : "fallback-x");
}

// A pipe holding text; the write end closed.
int pipe_with(const std::string& text) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    EXPECT_EQ(write(fds[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fds[1]);
    return fds[0];
}

TEST(SecretLine, OneLineAtATime) {
    const int fd = pipe_with("first\r\nsecond\n" + std::string(11, 'x') + "\nlast");
    auto a = mctp::read_secret_line(fd, 10);
    EXPECT_TRUE(a.got);
    EXPECT_FALSE(a.too_long);
    EXPECT_EQ(a.text.view(), "first");  // CR LF removed
    auto b = mctp::read_secret_line(fd, 10);
    EXPECT_EQ(b.text.view(), "second");  // nothing after the first LF was read
    auto c = mctp::read_secret_line(fd, 10);
    EXPECT_TRUE(c.got);
    EXPECT_TRUE(c.too_long);  // 11 octets: read to its end, dropped
    EXPECT_TRUE(c.text.empty());
    auto d = mctp::read_secret_line(fd, 10);
    EXPECT_TRUE(d.got);  // a last line without LF
    EXPECT_EQ(d.text.view(), "last");
    auto e = mctp::read_secret_line(fd, 10);
    EXPECT_FALSE(e.got);  // end of input
    close(fd);
}

TEST(SecretLine, ExactlyMaxWithCrFits) {
    const int fd = pipe_with(std::string(10, 'y') + "\r\n\n");
    auto a = mctp::read_secret_line(fd, 10);
    EXPECT_FALSE(a.too_long);
    EXPECT_EQ(a.text.view(), std::string(10, 'y'));
    auto b = mctp::read_secret_line(fd, 10);
    EXPECT_TRUE(b.got);  // an empty line is a line
    EXPECT_TRUE(b.text.empty());
    close(fd);
}

TEST(SecretLine, NotATerminal) {
    const int fd = pipe_with("x\n");
    EXPECT_THROW(mctp::QuietTerminal(fd, fd), mctp::SecretInputError);
    close(fd);
}

bool echo_on(int fd) {
    termios t{};
    return tcgetattr(fd, &t) == 0 && (t.c_lflag & ECHO) != 0;
}

// On a pseudo-terminal: echo is off while the answer is typed, back on
// after it, and back on when a signal ends the process mid-prompt.
TEST(QuietTerminal, EchoOffWhileAskingRestoredAfter) {
    alarm(10);  // a bug here must not hang the suite
    int master = -1;
    int slave = -1;
    ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    ASSERT_TRUE(echo_on(slave));
    // The answer is typed once the prompt shows (the flush before it
    // drops what was typed earlier); what the terminal shows is kept.
    std::string shown;
    bool echo_while_asked = true;
    std::thread typist([&] {
        char buf[256];
        while (shown.find("Secret: ") == std::string::npos) {
            const ssize_t n = read(master, buf, sizeof buf);
            if (n <= 0) {
                return;
            }
            shown.append(buf, static_cast<std::size_t>(n));
        }
        echo_while_asked = echo_on(slave);
        (void)!write(master, "typed\n", 6);
    });
    {
        mctp::QuietTerminal tty(slave, slave);
        auto line = tty.ask("Secret: ", 64);
        EXPECT_EQ(line.text.view(), "typed");
        EXPECT_TRUE(echo_on(slave));
    }
    typist.join();
    EXPECT_FALSE(echo_while_asked);
    char out[256] = {};
    const ssize_t n = read(master, out, sizeof out - 1);
    ASSERT_GT(n, 0);
    shown.append(out, static_cast<std::size_t>(n));
    // The prompt and the line break, not the answer.
    EXPECT_EQ(shown.find("typed"), std::string::npos);
    EXPECT_EQ(shown, "Secret: \r\n");
    close(master);
    close(slave);
    alarm(0);
}

TEST(QuietTerminal, SignalRestoresEcho) {
    alarm(10);
    for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
        int master = -1;
        int slave = -1;
        ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
        int ready[2];
        ASSERT_EQ(pipe(ready), 0);
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            close(ready[0]);
            const rlimit no_core{0, 0};
            setrlimit(RLIMIT_CORE, &no_core);  // SIGQUIT would dump one
            mctp::QuietTerminal tty(slave, slave);
            (void)!write(ready[1], "r", 1);
            tty.ask("Secret: ", 64);  // never answered
            _exit(0);
        }
        close(ready[1]);
        // Wait until the child is in ask() with echo off.
        char r = 0;
        ASSERT_EQ(read(ready[0], &r, 1), 1);
        for (int i = 0; i < 500 && echo_on(slave); ++i) {
            usleep(2000);
        }
        EXPECT_FALSE(echo_on(slave)) << sig;
        kill(pid, sig);
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << sig;
        EXPECT_TRUE(echo_on(slave)) << sig;
        close(ready[0]);
        close(master);
        close(slave);
    }
    alarm(0);
}

}  // namespace
