// The responder's parts that need no PAM: configuration, addresses, user
// policy, secret hashing.
#include <gtest/gtest.h>

#include "temp_file.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include "config.hpp"
#include "system_host.hpp"
#include "log.hpp"
#include "peer.hpp"
#include "scram.hpp"
#include "secret_hash.hpp"
#include "user_policy.hpp"

namespace {

// A yescrypt hash of "good-secret-1" at the lowest cost, made once.
const std::string& test_hash() {
    static const std::string h = mpasswdd::hash_secret(mctp::Secret("good-secret-1"), 1);
    return h;
}

const std::string& test_verifier() {
    static const std::string v = mctp::scram::format_verifier(
        mctp::scram::make_verifier("good-secret-1", "0123456789abcdef", 4096));
    return v;
}

std::string config_error(const std::string& text, mode_t mode = 0600) {
    TempFile c(text, mode);
    try {
        mpasswdd::load_config(c.path());
    } catch (const mpasswdd::ConfigError& e) {
        std::string msg = e.what();
        // Strip the temp path so tests read the part that matters.
        if (msg.starts_with(c.path())) {
            msg = "FILE" + msg.substr(c.path().size());
        }
        return msg;
    }
    return "no error";
}

// Every log line goes out escaped: what a message quotes (PAM's messages,
// a certificate's subject) cannot write to a terminal reading the log, nor
// forge a second line. (With --log-stderr the lines are copied to stderr,
// which is what this reads.)
TEST(Log, LinesCarryNoControlOctet) {
    mpasswdd::log::open(true, false);
    ::testing::internal::CaptureStderr();
    mpasswdd::log::write(mctp::LogLevel::notice,
                         "change for alice refused by PAM: \x1b]0;pwned\x07\x1b[2J\n"
                         "mpasswdd[1]: password changed for root\xc2\x9b");
    mpasswdd::log::error(std::string(20'000, '\x1b'));
    const std::string out = ::testing::internal::GetCapturedStderr();
    closelog();
    const auto lines = std::count(out.begin(), out.end(), '\n');
    EXPECT_EQ(lines, 2) << out;
    EXPECT_NE(out.find("refused by PAM: \\x1b]0;pwned\\x07\\x1b[2J\\x0ampasswdd[1]: password "
                       "changed for root\\xc2\\x9b\n"),
              std::string::npos)
        << out;
    for (const char c : out) {
        const auto u = static_cast<unsigned char>(c);
        EXPECT_TRUE(c == '\n' || (u >= 0x20 && u <= 0x7E)) << static_cast<int>(u);
    }
    EXPECT_LT(out.size(), 8192U + 200U);  // the long line is cut
}

TEST(Config, DefaultsAndAFullFile) {
    TempFile c("# comment\n"
                 "[mpasswdd]\n"
                 "host_name = t1.example\n"
                 "pam_service = mpasswdd-test\n"
                 "check_service = mpasswdd-test-check\n"
                 "line_max = 512\n"
                 "idle_timeout = 0.5\n"
                 "session_timeout = 30\n"
                 "auth_failure_delay = 0\n"
                 "max_auth_failures = 5\n"
                 "min_uid = 500\n"
                 "max_uid = 5000\n"
                 "allow_users = root, alice bob\n"
                 "deny_groups = wheel\n"
                 "\n[controller ctl1]\n"
                 "from = 127.0.0.1, 10.0.0.0/8 ::1 local\n"
                 "secret_hash = " + test_hash() + "\n"
                 "secret_verifier = " + test_verifier() + "\n"
                 "users = alice\n");
    const auto cfg = mpasswdd::load_config(c.path());
    EXPECT_EQ(cfg.host_name, "t1.example");
    EXPECT_EQ(cfg.pam_service, "mpasswdd-test");
    EXPECT_EQ(cfg.check_service, "mpasswdd-test-check");
    EXPECT_EQ(cfg.line_max, 512U);
    EXPECT_EQ(cfg.idle_timeout.count(), 500);
    EXPECT_EQ(cfg.session_timeout.count(), 30000);
    EXPECT_EQ(cfg.auth_failure_delay.count(), 0);
    EXPECT_EQ(cfg.max_auth_failures, 5U);
    EXPECT_EQ(cfg.policy.min_uid, 500U);
    EXPECT_EQ(cfg.policy.max_uid, 5000U);
    EXPECT_EQ(cfg.policy.allow_users, (std::vector<std::string>{"root", "alice", "bob"}));
    ASSERT_EQ(cfg.controllers.size(), 1U);
    EXPECT_EQ(cfg.controllers[0].from.size(), 4U);
    EXPECT_EQ(cfg.controllers[0].users, std::vector<std::string>{"alice"});

    const std::string shown = mpasswdd::describe(cfg);
    EXPECT_EQ(shown.find(test_hash()), std::string::npos);
    EXPECT_NE(shown.find("secret_hash = (set, yescrypt"), std::string::npos);
    EXPECT_EQ(shown.find(test_verifier()), std::string::npos);
    EXPECT_EQ(shown.find(test_verifier().substr(test_verifier().rfind(':'))), std::string::npos);
    EXPECT_NE(shown.find("secret_verifier = (set, SCRAM-SHA-256, 4096 iterations)"),
              std::string::npos)
        << shown;
    ASSERT_TRUE(cfg.controllers[0].verifier);
    EXPECT_EQ(cfg.controllers[0].verifier->iterations, 4096U);
}

TEST(Config, AVerifierAloneIsEnoughAndABadOneIsRefused) {
    TempFile ok("[controller c]\nfrom = local\nsecret_verifier = " + test_verifier() + "\n");
    const auto cfg = mpasswdd::load_config(ok.path());
    ASSERT_EQ(cfg.controllers.size(), 1U);
    EXPECT_TRUE(cfg.controllers[0].verifier);
    EXPECT_TRUE(cfg.controllers[0].secret_hash.empty());
    const std::string e =
        config_error("[controller c]\nfrom = local\nsecret_verifier = SCRAM-SHA-256$1:x$y:z\n");
    EXPECT_EQ(e.rfind("FILE:3: secret_verifier: is not a SCRAM-SHA-256 verifier (", 0), 0U) << e;
}

TEST(Config, KeysBeforeAnySectionAreGlobal) {
    TempFile c("line_max = 256\n");
    EXPECT_EQ(mpasswdd::load_config(c.path()).line_max, 256U);
    TempFile d("");
    const auto cfg = mpasswdd::load_config(d.path());
    EXPECT_EQ(cfg.line_max, 128U);
    EXPECT_EQ(cfg.pam_service, "mpasswdd");
    EXPECT_EQ(cfg.check_service, "mpasswdd-check");
    EXPECT_EQ(cfg.policy.min_uid, 1000U);
    EXPECT_EQ(cfg.max_auth_failures, 3U);
    EXPECT_EQ(cfg.idle_timeout.count(), 60000);
    EXPECT_EQ(cfg.session_timeout.count(), 300000);
    EXPECT_TRUE(cfg.controllers.empty());
}

TEST(Config, ErrorsNameFileLineAndKey) {
    EXPECT_EQ(config_error("\n\nline_max = 127\n"),
              "FILE:3: line_max: must be a number of octets from 128 to 4096");
    EXPECT_EQ(config_error("line_max = 4097\n"),
              "FILE:1: line_max: must be a number of octets from 128 to 4096");
    EXPECT_EQ(config_error("idle_timeout = soon\n"),
              "FILE:1: idle_timeout: must be seconds from 0.1 to 86400");
    EXPECT_EQ(config_error("[mpasswdd]\nfrobnicate = 1\n"), "FILE:2: frobnicate: unknown key");
    EXPECT_EQ(config_error("max_auth_failures = 0\n"),
              "FILE:1: max_auth_failures: must be a number from 1 to 100");
    EXPECT_EQ(config_error("enabled = maybe\n"), "FILE:1: enabled: must be yes or no");
    EXPECT_EQ(config_error("line_max = 200\nline_max = 300\n"),
              "FILE:2: line_max: given twice in one section");
    EXPECT_EQ(config_error("[other]\nx = 1\n"),
              "FILE:2: x: in unknown section [other]; sections are [mpasswdd] and "
              "[controller NAME]");
    EXPECT_EQ(config_error("this is not ini\n"),
              "FILE:1: syntax error (expected 'key = value' or '[section]')");
    EXPECT_EQ(config_error("allow_users = alice b/ad\n"),
              "FILE:1: allow_users: 'b/ad' is not a valid user name");
}

TEST(Config, SectionsKeysAndTheGlobalSection) {
    // Before any header and in [mpasswdd] is one section: a key in both
    // is given twice (it was silently the later one).
    EXPECT_EQ(config_error("line_max = 200\n[mpasswdd]\nline_max = 300\n"),
              "FILE:3: line_max: given twice in one section");
    EXPECT_EQ(config_error("[controller c]\nusers = a\n[controller d]\nusers = b\n"
                           "[controller c]\nusers = e\n"),
              "FILE:6: users: given twice in one section");
    // Key and section names come from the file: shown escaped.
    EXPECT_EQ(config_error("[oth\x1b[2Jer]\nk\x07y = 1\n"),
              "FILE:2: k\\x07y: in unknown section [oth\\x1b[2Jer]; sections are [mpasswdd] "
              "and [controller NAME]");
    EXPECT_EQ(config_error("[controller a/b\x1b]\nfrom = local\n"),
              "FILE:2: from: section [controller a/b\\x1b]: a controller name is letters, "
              "digits, '.', '_', '-'");
    EXPECT_EQ(config_error("max_auth_failures_per_source = 10001\n"),
              "FILE:1: max_auth_failures_per_source: must be a number from 0 (not counted) "
              "to 10000");
    EXPECT_EQ(config_error("auth_failure_delay = 61\n"),
              "FILE:1: auth_failure_delay: must be seconds from 0 to 60");
    EXPECT_EQ(config_error("login_grace_time = 0.05\n"),
              "FILE:1: login_grace_time: must be seconds from 0.1 to 3600");
    EXPECT_EQ(config_error("auth_failure_window = 0.5\n"),
              "FILE:1: auth_failure_window: must be seconds from 1 to 604800");
    EXPECT_EQ(config_error("min_uid = -1\n"),
              "FILE:1: min_uid: must be a user id from 0 to 4294967294");
    // One bad entry in from is named.
    EXPECT_EQ(config_error("[controller c]\nfrom = 10.0.0.0/8 nowhere\n"),
              "FILE:2: from: 'nowhere' is not an address, a CIDR block or 'local'");
}

// issue 14: the verbs a controller entry may use.
TEST(Config, OperationsDefaultAndList) {
    TempFile c("[controller a]\nfrom = local\nsecret_verifier = " + test_verifier() +
               "\n[controller b]\nfrom = local\nsecret_verifier = " + test_verifier() +
               "\noperations = VRFY, LOCK UNLK\n");
    const auto cfg = mpasswdd::load_config(c.path());
    ASSERT_EQ(cfg.controllers.size(), 2U);
    EXPECT_EQ(cfg.controllers[0].operations, mctp::default_operations);
    EXPECT_EQ(cfg.controllers[1].operations, mctp::op_vrfy | mctp::op_lock | mctp::op_unlk);
    const std::string text = mpasswdd::describe(cfg);
    EXPECT_NE(text.find("\noperations = VRFY TEST CHPW\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\noperations = VRFY LOCK UNLK\n"), std::string::npos) << text;
    // The host offers its verbs to every controller; each may use its own.
    mpasswdd::Peer peer;
    peer.local = true;
    mpasswdd::SystemHost host(cfg, peer);
    EXPECT_EQ(host.offered_operations(), mctp::all_operations);
    EXPECT_EQ(host.operations("a"), mctp::default_operations);
    EXPECT_EQ(host.operations("b"), mctp::op_vrfy | mctp::op_lock | mctp::op_unlk);
    EXPECT_EQ(host.operations("nobody"), 0U);
}

TEST(Config, UnknownOperationsAreFileLineErrors) {
    const std::string head = "[controller c]\nfrom = local\nsecret_verifier = " + test_verifier();
    EXPECT_EQ(config_error(head + "\noperations = VRFY DELE\n"),
              "FILE:4: operations: 'DELE' is not an operation; they are VRFY TEST CHPW EXPR "
              "LOCK UNLK CHCK");
    // Verbs are written in capitals, as the protocol page names them.
    EXPECT_EQ(config_error(head + "\noperations = chck\n"),
              "FILE:4: operations: 'chck' is not an operation; they are VRFY TEST CHPW EXPR "
              "LOCK UNLK CHCK");
    EXPECT_EQ(config_error(head + "\noperations = ,\n"),
              "FILE:4: operations: must list at least one of VRFY TEST CHPW EXPR LOCK UNLK CHCK");
}

TEST(Config, DescribeShowsEveryKeyOfBothSections) {
    TempFile c("[controller c1]\nfrom = local\nsecret_hash = " + test_hash() +
               "\n[controller c2]\nfrom = ::1\nsecret_hash = " + test_hash() +
               "\ngroups = staff\n");
    const std::string text = mpasswdd::describe(mpasswdd::load_config(c.path()));
    EXPECT_EQ(text.find(test_hash()), std::string::npos) << text;
    for (const char* key :
         {"enabled", "host_name", "pam_service", "check_service", "line_max", "idle_timeout",
          "session_timeout", "auth_failure_delay", "max_auth_failures", "login_grace_time",
          "max_auth_failures_per_source", "auth_failure_window", "state_directory",
          "privsep_user", "privsep_directory", "min_uid", "max_uid", "allow_users",
          "deny_users", "allow_groups", "deny_groups", "tls", "tls_certificate", "tls_key",
          "tls_client_ca"}) {
        EXPECT_NE(text.find("\n" + std::string(key) + " = "), std::string::npos) << key;
    }
    for (const std::string section : {"[controller c1]\n", "[controller c2]\n"}) {
        const auto at = text.find("\n" + section);
        ASSERT_NE(at, std::string::npos) << text;
        const std::string part = text.substr(at);
        for (const char* key : {"from", "secret_verifier", "secret_hash", "users", "groups",
                                "tls_client_subject", "tls_client_fingerprint", "operations"}) {
            EXPECT_NE(part.find("\n" + std::string(key) + " = "), std::string::npos) << key;
        }
    }
    EXPECT_NE(text.find("\nmax_auth_failures_per_source = 10\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\ntls_key = (none)\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nsecret_hash = (set, yescrypt; the old AUTH <secret> accepted)\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("\nfrom = ::1\nsecret_verifier = (none: AUTH SCRAM-SHA-256 refused)\n"
                        "secret_hash = (set, yescrypt; the old AUTH <secret> accepted)\n"
                        "users = (any allowed by policy)\ngroups = staff\n"),
              std::string::npos)
        << text;
    TempFile off("max_auth_failures_per_source = 0\n");
    const std::string none = mpasswdd::describe(mpasswdd::load_config(off.path()));
    EXPECT_NE(none.find("\nmax_auth_failures_per_source = 0 (not counted)\n"),
              std::string::npos) << none;
    EXPECT_NE(none.find("# no [controller NAME] section"), std::string::npos) << none;
}

TEST(Config, ControllerErrors) {
    const std::string h = test_hash();
    EXPECT_EQ(config_error("[controller c]\nfrom = 10.0.0.1/8\nsecret_hash = " + h + "\n"),
              "FILE:2: from: '10.0.0.1/8' has host bits set beyond its prefix");
    EXPECT_EQ(config_error("[controller c]\nfrom = 10.0.0.0/33\n"),
              "FILE:2: from: prefix length of '10.0.0.0/33' is more than 32");
    EXPECT_EQ(config_error("[controller c]\nfrom = somewhere\n"),
              "FILE:2: from: 'somewhere' is not an address, a CIDR block or 'local'");
    EXPECT_EQ(config_error("[controller c]\nfrom = local\nsecret_hash = plaintext\n"),
              "FILE:3: secret_hash: must be a yescrypt hash ($y$...) made by mpasswdd "
              "--hash-secret");
    EXPECT_EQ(config_error("[controller c]\nfrom = local\nsecret_hash = $y$broken\n"),
              "FILE:3: secret_hash: is not a valid yescrypt hash");
    EXPECT_EQ(config_error("\n[controller c]\nfrom = local\n"),
              "FILE:2: [controller c] has neither 'secret_verifier' nor 'secret_hash'");
    EXPECT_EQ(config_error("[controller c]\nsecret_hash = " + h + "\n"),
              "FILE:1: [controller c] has no 'from' key");
    EXPECT_EQ(config_error("[controller c]\nfrom = local\nsecret_hash = " + h + "\nx = 1\n"),
              "FILE:4: x: unknown key");
}

TEST(Config, TlsKeys) {
    const std::string h = test_hash();
    TempFile ok("tls = yes\ntls_certificate = /c.pem\ntls_key = /k.pem\ntls_client_ca = /ca.pem\n"
                "[controller c]\nfrom = local\nsecret_hash = " + h +
                "\ntls_client_subject = CN=control1,O=Example\ntls_client_fingerprint = " +
                std::string("AB:") + std::string(61, 'c') + "d\n");
    const auto cfg = mpasswdd::load_config(ok.path());
    EXPECT_TRUE(cfg.tls);
    EXPECT_EQ(cfg.tls_client_ca, "/ca.pem");
    EXPECT_EQ(cfg.controllers[0].tls_client_subject, "CN=control1,O=Example");
    EXPECT_EQ(cfg.controllers[0].tls_client_fingerprint, "ab" + std::string(61, 'c') + "d");
    EXPECT_NE(mpasswdd::describe(cfg).find("tls_client_ca = /ca.pem"), std::string::npos);

    EXPECT_EQ(config_error("tls = yes\n"), "FILE: tls = yes needs tls_certificate and tls_key");
    EXPECT_EQ(config_error("tls = maybe\n"), "FILE:1: tls: must be yes or no");
    EXPECT_EQ(config_error("tls_key = key.pem\n"),
              "FILE:1: tls_key: must be an absolute path of at most 1024 characters");
    EXPECT_EQ(config_error("tls_client_ca = /ca.pem\n"), "FILE: tls_client_ca is set but tls is not");
    EXPECT_EQ(config_error("[controller c]\nfrom = local\nsecret_hash = " + h +
                           "\ntls_client_fingerprint = abc\n"),
              "FILE:4: tls_client_fingerprint: must be a SHA-256 fingerprint: 64 hex digits, "
              "colons allowed");
    EXPECT_EQ(config_error("[controller c]\nfrom = local\nsecret_hash = " + h +
                           "\ntls_client_subject = CN=x\n"),
              "FILE:1: [controller c] names a client certificate, but tls_client_ca is not set, "
              "so none is asked for");
}

TEST(Config, PrivsepKeys) {
    TempFile d("");
    const auto defaults = mpasswdd::load_config(d.path());
    EXPECT_EQ(defaults.privsep_user, "_mpasswdd");
    EXPECT_EQ(defaults.privsep_directory, "/usr/share/mpasswdd/empty");
    TempFile c("privsep_user = mpd\nprivsep_directory = /var/empty/\n");
    const auto cfg = mpasswdd::load_config(c.path());
    EXPECT_EQ(cfg.privsep_user, "mpd");
    EXPECT_EQ(cfg.privsep_directory, "/var/empty");
    const std::string text = mpasswdd::describe(cfg);
    EXPECT_NE(text.find("privsep_user = mpd\n"), std::string::npos) << text;
    EXPECT_NE(text.find("privsep_directory = /var/empty\n"), std::string::npos) << text;
    EXPECT_EQ(config_error("privsep_user = a b\n"), "FILE:1: privsep_user: must be a user name");
    EXPECT_EQ(config_error("privsep_directory = empty\n"),
              "FILE:1: privsep_directory: must be an absolute path without spaces or '..'");
    EXPECT_EQ(config_error("privsep_directory = /usr/../tmp\n"),
              "FILE:1: privsep_directory: must be an absolute path without spaces or '..'");
}

TEST(Config, CheckHashesFindsAHashLibxcryptCannotUse) {
    const std::string bogus = "$y$zzzz$abcdefgh$" + std::string(43, 'A');
    TempFile c("[controller c]\nfrom = local\nsecret_hash = " + bogus + "\n");
    const auto cfg = mpasswdd::load_config(c.path());  // the shape is fine
    try {
        mpasswdd::check_hashes(cfg);
        FAIL() << "no error";
    } catch (const mpasswdd::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("[controller c] secret_hash: libxcrypt cannot use"),
                  std::string::npos) << e.what();
    }
    TempFile good("[controller c]\nfrom = local\nsecret_hash = " + test_hash() + "\n");
    EXPECT_NO_THROW(mpasswdd::check_hashes(mpasswdd::load_config(good.path())));
}

TEST(Config, PermissionsAreChecked) {
    const std::string with_hash =
        "[controller c]\nfrom = local\nsecret_hash = " + test_hash() + "\n";
    EXPECT_NE(config_error(with_hash, 0644).find("readable by every user"), std::string::npos);
    EXPECT_NE(config_error("line_max = 200\n", 0666).find("writable by other users"),
              std::string::npos);
    // World-readable without secrets is fine.
    EXPECT_EQ(config_error("line_max = 200\n", 0644), "no error");
    EXPECT_EQ(config_error(with_hash, 0640), "no error");
}

TEST(Config, MissingFileIsAClearError) {
    try {
        mpasswdd::load_config("/nonexistent/mpasswdd.conf");
        FAIL() << "no error";
    } catch (const mpasswdd::ConfigError& e) {
        EXPECT_STREQ(e.what(),
                     "/nonexistent/mpasswdd.conf: cannot open: No such file or directory");
    }
}

mpasswdd::AddressRule rule(const char* text) {
    std::string why;
    auto r = mpasswdd::parse_address_rule(text, &why);
    EXPECT_TRUE(r.has_value()) << text << ": " << why;
    return r.value_or(mpasswdd::AddressRule{});
}

mpasswdd::Peer ip(const char* text) {
    auto p = mpasswdd::parse_ip(text);
    EXPECT_TRUE(p.has_value()) << text;
    return p.value_or(mpasswdd::Peer{});
}

TEST(Peer, CidrMatching) {
    EXPECT_TRUE(rule("10.0.0.0/8").matches(ip("10.200.3.4")));
    EXPECT_FALSE(rule("10.0.0.0/8").matches(ip("11.0.0.1")));
    EXPECT_TRUE(rule("192.0.2.7").matches(ip("192.0.2.7")));
    EXPECT_FALSE(rule("192.0.2.7").matches(ip("192.0.2.8")));
    EXPECT_TRUE(rule("0.0.0.0/0").matches(ip("203.0.113.9")));
    EXPECT_FALSE(rule("0.0.0.0/0").matches(ip("2001:db8::1")));
    EXPECT_TRUE(rule("2001:db8::/32").matches(ip("2001:db8:1::5")));
    EXPECT_FALSE(rule("2001:db8::/32").matches(ip("2001:db9::5")));
    EXPECT_TRUE(rule("192.0.2.0/25").matches(ip("192.0.2.127")));
    EXPECT_FALSE(rule("192.0.2.0/25").matches(ip("192.0.2.128")));
    // A v4-mapped peer (dual-stack socket) matches the IPv4 rule.
    EXPECT_TRUE(rule("127.0.0.1").matches(ip("::ffff:127.0.0.1")));
    EXPECT_EQ(ip("::ffff:127.0.0.1").text, "127.0.0.1");
    // local only matches local.
    EXPECT_TRUE(rule("local").matches(mpasswdd::Peer{}));
    EXPECT_FALSE(rule("local").matches(ip("127.0.0.1")));
    EXPECT_FALSE(rule("127.0.0.1").matches(mpasswdd::Peer{}));
}

TEST(Peer, PipeIsLocal) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const auto p = mpasswdd::peer_of_fd(fds[0]);
    EXPECT_TRUE(p.local);
    EXPECT_EQ(p.text, "local");
    close(fds[0]);
    close(fds[1]);
}

TEST(Peer, UnixSocketIsLocal) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    const auto p = mpasswdd::peer_of_fd(fds[0]);
    EXPECT_TRUE(p.local);
    EXPECT_EQ(p.text, "local");
    close(fds[0]);
    close(fds[1]);
}

TEST(Peer, SshConnection) {
    const auto p = mpasswdd::peer_from_ssh_connection("198.51.100.4 50022 192.0.2.1 22");
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->text, "198.51.100.4");
    EXPECT_FALSE(mpasswdd::peer_from_ssh_connection("garbage").has_value());
}

TEST(UserPolicy, RootAndSystemUsersNeedExplicitNaming) {
    mpasswdd::UserPolicy p;
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "root"), mctp::UserVerdict::forbidden);
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "daemon"), mctp::UserVerdict::forbidden);
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "nobody"), mctp::UserVerdict::forbidden);
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "no-such-user-xyz"), mctp::UserVerdict::unknown);
    p.allow_users = {"root"};
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "root"), mctp::UserVerdict::allowed);
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "daemon"), mctp::UserVerdict::forbidden);
    p.min_uid = 0;
    p.allow_users.clear();
    // uid 0 is never allowed by range alone.
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "root"), mctp::UserVerdict::forbidden);
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "daemon"), mctp::UserVerdict::allowed);
}

TEST(UserPolicy, DenyListsAndControllerNarrowing) {
    mpasswdd::UserPolicy p;
    p.min_uid = 1;
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "daemon"), mctp::UserVerdict::allowed);
    p.deny_users = {"daemon"};
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "daemon"), mctp::UserVerdict::forbidden);
    p.deny_users.clear();
    p.deny_groups = {"daemon"};  // daemon's primary group
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "daemon"), mctp::UserVerdict::forbidden);
    p.deny_groups.clear();
    p.allow_groups = {"bin"};
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "daemon"), mctp::UserVerdict::forbidden);
    EXPECT_EQ(mpasswdd::check_user(p, nullptr, "bin"), mctp::UserVerdict::allowed);
    p.allow_groups.clear();
    mpasswdd::Controller ctl;
    ctl.users = {"bin"};
    EXPECT_EQ(mpasswdd::check_user(p, &ctl, "daemon"), mctp::UserVerdict::forbidden);
    EXPECT_EQ(mpasswdd::check_user(p, &ctl, "bin"), mctp::UserVerdict::allowed);
    ctl.users.clear();
    ctl.groups = {"daemon"};
    EXPECT_EQ(mpasswdd::check_user(p, &ctl, "daemon"), mctp::UserVerdict::allowed);
    EXPECT_EQ(mpasswdd::check_user(p, &ctl, "bin"), mctp::UserVerdict::forbidden);
}

TEST(SecretHash, VerifiesOnlyTheRightSecret) {
    using mpasswdd::HashCheck;
    const std::string& h = test_hash();
    EXPECT_TRUE(h.starts_with("$y$"));
    EXPECT_EQ(mpasswdd::check_secret(mctp::Secret("good-secret-1"), h), HashCheck::match);
    EXPECT_EQ(mpasswdd::check_secret(mctp::Secret("good-secret-2"), h), HashCheck::mismatch);
    EXPECT_EQ(mpasswdd::check_secret(mctp::Secret(""), h), HashCheck::mismatch);
    EXPECT_EQ(mpasswdd::check_secret(mctp::Secret("good-secret-1"), "*"), HashCheck::unusable);
    // Two hashes of one secret differ (random salt) and both verify.
    const auto h2 = mpasswdd::hash_secret(mctp::Secret("good-secret-1"), 1);
    EXPECT_NE(h, h2);
    EXPECT_EQ(mpasswdd::check_secret(mctp::Secret("good-secret-1"), h2), HashCheck::match);
}

TEST(SecretHash, ShapeCheck) {
    EXPECT_TRUE(mpasswdd::has_yescrypt_shape(test_hash()));
    const std::string h43(43, 'A');
    EXPECT_TRUE(mpasswdd::has_yescrypt_shape("$y$j9T$salt$" + h43));
    for (const std::string& bad : std::vector<std::string>{"$y$broken", "$y$j9T$salt$" + h43 + "A", "$y$j9T$$" + h43,
                                  "$y$$salt$" + h43, "$y$j9T$sa lt$" + h43, "$y$j9T$salt$",
                                  "$y$j9T$salt$" + h43 + "$", "$6$salt$" + h43}) {
        EXPECT_FALSE(mpasswdd::has_yescrypt_shape(bad)) << bad;
    }
    // Well shaped, but parameters libxcrypt cannot decode: only hashing
    // tells (check_hashes, for --check-config).
    const std::string bogus = "$y$zzzz$abcdefgh$" + h43;
    EXPECT_TRUE(mpasswdd::has_yescrypt_shape(bogus));
    EXPECT_EQ(mpasswdd::check_secret(mctp::Secret(""), bogus), mpasswdd::HashCheck::unusable);
}

}  // namespace

// The stand-in verifier for a controller name this host does not have:
// the same salt every time (asking twice tells nothing), but not one that
// anybody can compute from the host and controller names (which would
// tell a real entry's salt from a stand-in's): it is keyed by the
// configured verifiers.
TEST(SystemHostScram, TheStandInSaltIsStableAndNotPublic) {
    const auto salt_for = [](const mpasswdd::Config& config, const std::string& name) {
        mpasswdd::SystemHost host(config, mpasswdd::Peer{});
        const auto r = host.scram_first("n,,n=" + name + ",r=clientnonce");
        EXPECT_EQ(r.kind, mctp::ScramResult::Kind::next);
        const auto s = r.message.find(",s=");
        const auto i = r.message.find(",i=");
        return s == std::string::npos || i == std::string::npos ? std::string()
                                                                 : r.message.substr(s + 3, i - s - 3);
    };
    mpasswdd::Config config;
    config.host_name = "web1";
    mpasswdd::Controller ctl;
    ctl.name = "ctl";
    std::string why;
    ctl.from.push_back(*mpasswdd::parse_address_rule("local", &why));
    ctl.verifier = mctp::scram::make_verifier("secret-one", mctp::scram::random_salt(), 4096);
    config.controllers.push_back(ctl);
    const std::string ghost = salt_for(config, "ghost");
    ASSERT_FALSE(ghost.empty());
    EXPECT_EQ(salt_for(config, "ghost"), ghost);  // stable
    EXPECT_NE(salt_for(config, "other-ghost"), ghost);
    // Not the salt anybody could derive from the names alone.
    const auto public_rule =
        mctp::scram::make_verifier("web1\nghost", "mpasswdd stand-in salt", 1).stored_key;
    EXPECT_NE(ghost, mctp::scram::base64(std::string_view(
                         reinterpret_cast<const char*>(public_rule.data()), mctp::scram::salt_min)));
    // Another host's verifiers: another stand-in salt for the same names.
    config.controllers[0].verifier =
        mctp::scram::make_verifier("secret-two", mctp::scram::random_salt(), 4096);
    EXPECT_NE(salt_for(config, "ghost"), ghost);
}
