// The failed-AUTH count per source (responder/auth_tally), the login
// grace time in the connection loop, and the session's locked-out and
// grace replies. The end-to-end side (parallel connections, a real
// socket-activated responder) is tests/e2e/test_auth_limits.py.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "auth_tally.hpp"
#include "config.hpp"
#include "connection.hpp"
#include "fake_host.hpp"
#include "limits.hpp"
#include "peer.hpp"
#include "temp_file.hpp"

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using mpasswdd::AuthTally;

constexpr std::int64_t t0 = 1'700'000'000'000;  // a fixed "now" in ms
constexpr milliseconds window{60'000};

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/mpasswd-tally-XXXXXX";
        path_ = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] std::string path() const { return path_; }
    [[nodiscard]] std::string state() const { return path_ + "/state"; }
    [[nodiscard]] std::string file() const { return state() + "/auth-failures"; }

private:
    std::string path_;
};

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_all(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
}

std::string tally_error(const std::string& dir) {
    try {
        AuthTally t(dir, 3, window);
    } catch (const mpasswdd::TallyError& e) {
        return e.what();
    }
    return "no error";
}

TEST(AuthTally, CreatesARootOnlyFolderAndFile) {
    TempDir d;
    AuthTally t(d.state(), 3, window);
    struct stat st {};
    ASSERT_EQ(lstat(d.state().c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700U);
    EXPECT_EQ(st.st_uid, geteuid());
    ASSERT_EQ(lstat(d.file().c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600U);
    EXPECT_EQ(st.st_uid, geteuid());
    EXPECT_EQ(t.path(), d.file());
}

TEST(AuthTally, CountsUpToTheLimitThenLocksUntilTheWindowHasPassed) {
    TempDir d;
    AuthTally t(d.state(), 3, window);
    EXPECT_FALSE(t.locked("192.0.2.7", t0));
    EXPECT_EQ(t.charge("192.0.2.7", t0), 1U);
    EXPECT_EQ(t.charge("192.0.2.7", t0 + 10), 2U);
    EXPECT_FALSE(t.locked("192.0.2.7", t0 + 20));
    EXPECT_EQ(t.charge("192.0.2.7", t0 + 30), 3U);
    EXPECT_TRUE(t.locked("192.0.2.7", t0 + 40));
    // Locked: nothing more is counted, nothing is checked.
    EXPECT_EQ(t.charge("192.0.2.7", t0 + 50), std::nullopt);
    EXPECT_NE(read_all(d.file()).find("192.0.2.7 3 " + std::to_string(t0) + "\n"),
              std::string::npos);
    // Another source is not affected.
    EXPECT_FALSE(t.locked("192.0.2.8", t0 + 60));
    EXPECT_EQ(t.charge("192.0.2.8", t0 + 60), 1U);
    // The window counts from the first failure.
    EXPECT_TRUE(t.locked("192.0.2.7", t0 + window.count() - 1));
    EXPECT_FALSE(t.locked("192.0.2.7", t0 + window.count()));
    EXPECT_EQ(t.charge("192.0.2.7", t0 + window.count()), 1U);
}

TEST(AuthTally, ARightSecretTakesItsChargeBack) {
    TempDir d;
    AuthTally t(d.state(), 3, window);
    EXPECT_EQ(t.charge("192.0.2.7", t0), 1U);
    EXPECT_EQ(t.charge("192.0.2.7", t0), 2U);
    t.refund("192.0.2.7", t0);
    EXPECT_EQ(t.charge("192.0.2.7", t0), 2U);
    t.refund("192.0.2.7", t0);
    t.refund("192.0.2.7", t0);
    EXPECT_EQ(read_all(d.file()).find("192.0.2.7"), std::string::npos);
    t.refund("192.0.2.7", t0);  // nothing to take back: no change
    EXPECT_EQ(t.charge("192.0.2.7", t0), 1U);
}

TEST(AuthTally, ProcessesShareTheCount) {
    TempDir d;
    AuthTally a(d.state(), 2, window);
    AuthTally b(d.state(), 2, window);
    EXPECT_EQ(a.charge("local", t0), 1U);
    EXPECT_EQ(b.charge("local", t0), 2U);
    EXPECT_TRUE(a.locked("local", t0));
    // A lock held elsewhere is waited for, boundedly.
    const int other = open(d.file().c_str(), O_RDONLY);
    ASSERT_GE(other, 0);
    ASSERT_EQ(flock(other, LOCK_EX), 0);
    std::thread release([&] {
        std::this_thread::sleep_for(milliseconds(100));
        flock(other, LOCK_UN);
    });
    EXPECT_TRUE(b.locked("local", t0));
    release.join();
    ASSERT_EQ(flock(other, LOCK_EX), 0);
    EXPECT_THROW(a.locked("local", t0), mpasswdd::TallyError);
    close(other);
}

TEST(AuthTally, AFloodOfSourcesStaysBoundedAndDropsTheOldest) {
    TempDir d;
    AuthTally t(d.state(), 3, window);
    const std::size_t max = mctp::limits::tally_entries_max;
    const auto source = [](std::size_t i) {
        return "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
               std::to_string(i % 256);
    };
    for (std::size_t i = 0; i < max + 100; ++i) {
        ASSERT_EQ(t.charge(source(i), t0 + static_cast<std::int64_t>(i)), 1U) << i;
    }
    const std::string text = read_all(d.file());
    std::size_t lines = 0;
    for (const char c : text) {
        lines += c == '\n' ? 1 : 0;
    }
    EXPECT_EQ(lines, max + 1);  // the header and `max` sources
    EXPECT_LE(text.size(), mctp::limits::tally_file_max);
    EXPECT_EQ(fs::file_size(d.file()), text.size());
    // The 100 oldest windows went; the newest are there.
    EXPECT_EQ(text.find(source(0) + " "), std::string::npos);
    EXPECT_EQ(text.find(source(99) + " "), std::string::npos);
    EXPECT_NE(text.find(source(100) + " "), std::string::npos);
    EXPECT_NE(text.find(source(max + 99) + " "), std::string::npos);
    // Expired windows go first, whatever their age: after the window,
    // the file shrinks back as sources are counted again.
    ASSERT_EQ(t.charge("192.0.2.1", t0 + window.count() + 200'000), 1U);
    EXPECT_EQ(read_all(d.file()).find("10."), std::string::npos);
}

// A flood of fresh sources must not free a locked-out one; when every
// entry is locked out, a new source is refused as well (fail closed).
TEST(AuthTally, AFloodNeverDropsALockedOutSource) {
    TempDir d;
    AuthTally t(d.state(), 2, window);
    const std::size_t max = mctp::limits::tally_entries_max;
    const auto source = [](std::size_t i) {
        return "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
               std::to_string(i % 256);
    };
    ASSERT_EQ(t.charge("192.0.2.66", t0), 1U);
    ASSERT_EQ(t.charge("192.0.2.66", t0 + 1), 2U);  // locked out, the oldest window
    for (std::size_t i = 0; i < max + 10; ++i) {
        ASSERT_EQ(t.charge(source(i), t0 + 10 + static_cast<std::int64_t>(i)), 1U) << i;
    }
    EXPECT_TRUE(t.locked("192.0.2.66", t0 + 20'000));
    // Every entry locked out: a new source gets no room and is refused.
    TempDir d2;
    AuthTally full(d2.state(), 1, window);
    for (std::size_t i = 0; i < max; ++i) {
        ASSERT_EQ(full.charge(source(i), t0 + static_cast<std::int64_t>(i)), 1U) << i;
    }
    EXPECT_EQ(full.charge("192.0.2.77", t0 + 5000), std::nullopt);
    EXPECT_TRUE(full.locked(source(0), t0 + 5000));
}

TEST(AuthTally, ACorruptFileIsLoggedAndReset) {
    for (const std::string& bad :
         {std::string("garbage\n"),
          std::string("# mpasswdd auth-failures 1: source count window-start-ms\n192.0.2.7 x 1\n"),
          std::string("# mpasswdd auth-failures 1: source count window-start-ms\nEVIL 3 1\n"),
          std::string("# mpasswdd auth-failures 1: source count window-start-ms\n192.0.2.7 3 1"),
          std::string("# mpasswdd auth-failures 1: source count window-start-ms\n") +
              std::string(mctp::limits::tally_file_max, '1')}) {
        TempDir d;
        std::vector<std::string> warnings;
        {
            AuthTally t(d.state(), 3, window);
            write_all(d.file(), bad);
            t.warn = [&](std::string_view m) { warnings.emplace_back(m); };
            EXPECT_FALSE(t.locked("192.0.2.7", t0)) << bad.substr(0, 80);
            ASSERT_EQ(warnings.size(), 1U) << bad.substr(0, 80);
            EXPECT_NE(warnings[0].find(d.file() + " is corrupt"), std::string::npos) << warnings[0];
            if (bad.size() > mctp::limits::tally_file_max) {
                // Read up to the limit and one octet more, not just the start.
                EXPECT_NE(warnings[0].find("larger than"), std::string::npos) << warnings[0];
            }
            EXPECT_EQ(t.charge("192.0.2.7", t0), 1U);
            EXPECT_EQ(warnings.size(), 1U) << "reset once, then valid";
        }
        EXPECT_EQ(read_all(d.file()), "# mpasswdd auth-failures 1: source count window-start-ms\n"
                                      "192.0.2.7 1 " + std::to_string(t0) + "\n");
    }
}

TEST(AuthTally, RefusesAnUnsafeFolderOrFile) {
    TempDir d;
    const std::string real = d.path() + "/real";
    ASSERT_EQ(mkdir(real.c_str(), 0700), 0);

    const std::string link = d.path() + "/link";
    ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
    EXPECT_EQ(tally_error(link), link + ": is a symbolic link or not a folder");

    ASSERT_EQ(chmod(real.c_str(), 0770), 0);
    EXPECT_NE(tally_error(real).find("not writable by group or others"), std::string::npos);
    ASSERT_EQ(chmod(real.c_str(), 0755), 0);
    EXPECT_EQ(tally_error(real), "no error");  // readable is fine
    ASSERT_EQ(chmod(real.c_str(), 0700), 0);

    const std::string file = real + "/auth-failures";
    ASSERT_EQ(unlink(file.c_str()), 0);
    ASSERT_EQ(symlink("/etc/passwd", file.c_str()), 0);
    EXPECT_EQ(tally_error(real), file + ": is a symbolic link");
    ASSERT_EQ(unlink(file.c_str()), 0);

    write_all(file, "");
    ASSERT_EQ(chmod(file.c_str(), 0622), 0);
    EXPECT_NE(tally_error(real).find("must be a regular file"), std::string::npos);
    ASSERT_EQ(chmod(file.c_str(), 0600), 0);
    const std::string hard = d.path() + "/hard";
    ASSERT_EQ(::link(file.c_str(), hard.c_str()), 0);
    EXPECT_NE(tally_error(real).find("with one link"), std::string::npos);
    ASSERT_EQ(unlink(hard.c_str()), 0);
    EXPECT_EQ(tally_error(real), "no error");

    EXPECT_NE(tally_error(d.path() + "/no/such/parent").find("cannot create"), std::string::npos);
}

TEST(AuthTally, SourceIsTheAddressOrTheIpv6Slash64) {
    EXPECT_EQ(mpasswdd::tally_source(mpasswdd::Peer{}), "local");
    EXPECT_EQ(mpasswdd::tally_source(*mpasswdd::parse_ip("192.0.2.7")), "192.0.2.7");
    EXPECT_EQ(mpasswdd::tally_source(*mpasswdd::parse_ip("::ffff:192.0.2.7")), "192.0.2.7");
    EXPECT_EQ(mpasswdd::tally_source(*mpasswdd::parse_ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
              "2001:db8:1:2::/64");
    EXPECT_EQ(mpasswdd::tally_source(*mpasswdd::parse_ip("2001:db8:1:2::99")),
              "2001:db8:1:2::/64");
    EXPECT_EQ(mpasswdd::tally_source(*mpasswdd::parse_ip("::1")), "::/64");
}

TEST(AuthTally, ConfigKeys) {
    TempFile dflt("");
    const auto d = mpasswdd::load_config(dflt.path());
    EXPECT_EQ(d.login_grace_time, milliseconds(30'000));
    EXPECT_EQ(d.max_auth_failures_per_source, 10U);
    EXPECT_EQ(d.auth_failure_window, milliseconds(900'000));
    EXPECT_EQ(d.state_directory, "/var/lib/mpasswdd");

    TempFile c("login_grace_time = 1.5\nmax_auth_failures_per_source = 0\n"
               "auth_failure_window = 2\nstate_directory = /run/x/\n");
    const auto cfg = mpasswdd::load_config(c.path());
    EXPECT_EQ(cfg.login_grace_time, milliseconds(1'500));
    EXPECT_EQ(cfg.max_auth_failures_per_source, 0U);
    EXPECT_EQ(cfg.auth_failure_window, milliseconds(2'000));
    EXPECT_EQ(cfg.state_directory, "/run/x");
    const std::string shown = mpasswdd::describe(cfg);
    EXPECT_NE(shown.find("login_grace_time = 1.5\n"), std::string::npos) << shown;
    EXPECT_NE(shown.find("max_auth_failures_per_source = 0 (not counted)\n"), std::string::npos);
    EXPECT_NE(shown.find("auth_failure_window = 2\n"), std::string::npos);
    EXPECT_NE(shown.find("state_directory = /run/x\n"), std::string::npos);

    for (const char* bad :
         {"login_grace_time = 0\n", "login_grace_time = 3601\n",
          "max_auth_failures_per_source = 10001\n", "max_auth_failures_per_source = -1\n",
          "auth_failure_window = 0.5\n", "state_directory = var/lib\n",
          "state_directory = /var/../etc\n", "state_directory = /a b\n"}) {
        TempFile f(bad);
        EXPECT_THROW(mpasswdd::load_config(f.path()), mpasswdd::ConfigError) << bad;
    }
}

TEST(AuthTallySession, LockedVerdictAndLockedAuthGet421) {
    test::FakeHost host;
    mctp::SessionSettings s;
    s.host_name = "t1";
    mctp::Session at_connect(s, host, "192.0.2.7");
    auto r = at_connect.start(mctp::PeerVerdict::locked);
    EXPECT_EQ(r.code, mctp::Code::unavailable);
    EXPECT_EQ(r.text, "t1 too many authentication failures from your address; try later");
    EXPECT_TRUE(r.close);
    EXPECT_NE(host.all_log().find("connect from 192.0.2.7 refused: too many authentication "
                                  "failures from this address (locked out)"),
              std::string::npos);

    test::Wire w;
    w.host.locked = true;
    EXPECT_EQ(w.line("HELO ctl"), 250);
    EXPECT_EQ(w.line("AUTH good-secret-1"), 421);
    EXPECT_EQ(w.last().text,
              "target too many authentication failures from your address; try later");
    EXPECT_TRUE(w.session.closed());
    EXPECT_EQ(w.last().delay.count(), 0);
    EXPECT_EQ(w.host.auth_checks, 0U);
    EXPECT_NE(w.host.all_log().find("not checked: too many authentication failures"),
              std::string::npos);
}

// A socket pair: the responder's end runs run_connection in a thread.
struct Loop {
    int fds[2] = {-1, -1};
    test::FakeHost host;
    mctp::SessionSettings settings{"t1", 128, 3, milliseconds(0)};
    mctp::Session session{settings, host, "192.0.2.7"};
    std::thread thread;
    mpasswdd::ConnectionEnd end{};

    explicit Loop(mpasswdd::Timeouts timeouts) {
        std::signal(SIGPIPE, SIG_IGN);  // as mpasswdd does: replies to a closed peer
        EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
        thread = std::thread([this, timeouts] {
            auto channel = mpasswdd::fd_channel(fds[1], fds[1]);
            end = mpasswdd::run_connection(session, mctp::PeerVerdict::accepted, *channel,
                                           timeouts);
            shutdown(fds[1], SHUT_RDWR);
        });
    }
    ~Loop() {
        shutdown(fds[0], SHUT_RDWR);
        thread.join();
        close(fds[0]);
        close(fds[1]);
    }
    void send(const std::string& s) const {
        ASSERT_EQ(write(fds[0], s.data(), s.size()), static_cast<ssize_t>(s.size()));
    }
    // Every reply line until the responder closes (or 5 s have passed).
    [[nodiscard]] std::vector<std::string> replies() const {
        std::string all;
        char buf[4096];
        pollfd p{fds[0], POLLIN, 0};
        const auto until = mpasswdd::Clock::now() + milliseconds(5'000);
        while (mpasswdd::Clock::now() < until && poll(&p, 1, mpasswdd::millis_until(until)) == 1) {
            const ssize_t n = read(fds[0], buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            all.append(buf, static_cast<std::size_t>(n));
        }
        std::vector<std::string> lines;
        std::istringstream in(all);
        for (std::string l; std::getline(in, l);) {
            lines.push_back(l);
        }
        return lines;
    }
};

TEST(LoginGrace, NoopsDoNotExtendIt) {
    const auto start = mpasswdd::Clock::now();
    Loop loop({milliseconds(60'000), milliseconds(60'000), start + milliseconds(400)});
    for (int i = 0; i < 8; ++i) {  // 800 ms of NOOPs, one per 100 ms
        loop.send("NOOP\r\n");
        std::this_thread::sleep_for(milliseconds(100));
    }
    const auto lines = loop.replies();
    ASSERT_GE(lines.size(), 3U);
    EXPECT_EQ(lines.front(), "220 t1 MCTP ready\r");
    EXPECT_EQ(lines.back(), "421 t1 login grace time over; authenticate sooner\r");
    EXPECT_LE(lines.size(), 7U) << "NOOPs were answered after the grace time";
    EXPECT_NE(loop.host.all_log().find("no successful AUTH within the login grace time"),
              std::string::npos);
}

TEST(LoginGrace, APeerThatNeverStopsSendingIsStoppedToo) {
    const auto start = mpasswdd::Clock::now();
    Loop loop({milliseconds(60'000), milliseconds(60'000), start + milliseconds(300)});
    std::atomic<bool> stop{false};
    std::thread flood([&] {
        std::string batch;
        for (int i = 0; i < 600; ++i) {
            batch += "NOOP\r\n";
        }
        while (!stop && ::send(loop.fds[0], batch.data(), batch.size(), MSG_NOSIGNAL) > 0) {
        }
    });
    const auto lines = loop.replies();
    stop = true;
    shutdown(loop.fds[0], SHUT_WR);
    flood.join();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), "421 t1 login grace time over; authenticate sooner\r");
    EXPECT_LT(mpasswdd::Clock::now() - start, milliseconds(2'000));
}

TEST(LoginGrace, TheSessionTimeoutStopsAPeerThatNeverStopsSending) {
    // Before, the loop's poll saw input ready at once, so its timeout
    // never fired for a peer that kept the socket full.
    const auto start = mpasswdd::Clock::now();
    Loop loop({milliseconds(60'000), milliseconds(300), start + milliseconds(60'000)});
    loop.send("HELO ctl\r\nAUTH good-secret-1\r\n");
    std::atomic<bool> stop{false};
    std::thread flood([&] {
        std::string batch;
        for (int i = 0; i < 600; ++i) {
            batch += "NOOP\r\n";
        }
        while (!stop && ::send(loop.fds[0], batch.data(), batch.size(), MSG_NOSIGNAL) > 0) {
        }
    });
    const auto lines = loop.replies();
    stop = true;
    shutdown(loop.fds[0], SHUT_WR);
    flood.join();
    ASSERT_GE(lines.size(), 3U);
    EXPECT_EQ(lines[2], "250 authenticated as ctl\r");
    EXPECT_EQ(lines.back(), "421 t1 timeout\r");
    EXPECT_LT(mpasswdd::Clock::now() - start, milliseconds(2'000));
}

TEST(LoginGrace, EndsAtTheFirstSuccessfulAuth) {
    const auto start = mpasswdd::Clock::now();
    Loop loop({milliseconds(60'000), milliseconds(60'000), start + milliseconds(300)});
    loop.send("HELO ctl\r\nAUTH good-secret-1\r\n");
    std::this_thread::sleep_for(milliseconds(500));
    loop.send("RSET\r\nNOOP\r\nQUIT\r\n");  // RSET does not bring the grace time back
    const auto lines = loop.replies();
    ASSERT_EQ(lines.size(), 6U);
    EXPECT_EQ(lines[2], "250 authenticated as ctl\r");
    EXPECT_EQ(lines[4], "250 ok\r");
    EXPECT_EQ(lines[5], "221 t1 closing\r");
}

}  // namespace
