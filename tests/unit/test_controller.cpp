// The controller's parts: targets and hosts files, mpasswd.conf, reply
// parsing, reports, pam_mctp's options, and the fan-out engine against
// scripted servers on 127.0.0.1 (real sockets, one thread per connection).
#include <gtest/gtest.h>

#include "temp_file.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller_config.hpp"
#include "fanout.hpp"
#include "inventory.hpp"
#include "scram.hpp"
#include "memory_transport.hpp"
#include "options.hpp"
#include "reply.hpp"
#include "report.hpp"
#include "resources.hpp"
#include "target.hpp"
#include "text.hpp"

namespace {

using namespace mpasswd;
using namespace std::chrono_literals;

std::string parse_error(const std::string& text, const std::string& path = "hosts") {
    try {
        parse_hosts(text, path, 4242);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(Targets, ParsesEveryForm) {
    std::string why;
    const auto t = [&](std::string_view s) {
        auto r = parse_target(s, 4242, &why);
        return r ? r->host + " " + std::to_string(r->port) : "ERR " + why;
    };
    EXPECT_EQ(t("db1.example.org"), "db1.example.org 4242");
    EXPECT_EQ(t("db1:1234"), "db1 1234");
    EXPECT_EQ(t("10.0.0.1"), "10.0.0.1 4242");
    EXPECT_EQ(t("10.0.0.1:99"), "10.0.0.1 99");
    EXPECT_EQ(t("[::1]:5000"), "::1 5000");
    EXPECT_EQ(t("[fe80::1]"), "fe80::1 4242");
    EXPECT_EQ(t("2001:db8::7"), "2001:db8::7 4242");
    EXPECT_EQ(t("host:0").substr(0, 3), "ERR");
    EXPECT_EQ(t("host:65536").substr(0, 3), "ERR");
    EXPECT_EQ(t("host:").substr(0, 3), "ERR");
    EXPECT_EQ(t("[::1").substr(0, 3), "ERR");
    EXPECT_EQ(t("[db1]:22").substr(0, 3), "ERR");
    EXPECT_EQ(t("-db1").substr(0, 3), "ERR");
    EXPECT_EQ(t("db..1").substr(0, 3), "ERR");
    EXPECT_EQ(t("db1;rm").substr(0, 3), "ERR");
    EXPECT_EQ(t("").substr(0, 3), "ERR");
    EXPECT_EQ(t(std::string(64, 'a') + ".org").substr(0, 3), "ERR");
    EXPECT_EQ(t("1:2:3").substr(0, 3), "ERR");
    // Found by fuzz-controller: inet_pton stops at a NUL.
    EXPECT_EQ(t(std::string("::\0x", 4)), "ERR '::\\x00x' is not an IPv6 address (write "
                                          "[ADDRESS]:PORT for a port)");
    EXPECT_EQ(t(std::string("[::1\0x]", 7)).substr(0, 3), "ERR");
    EXPECT_EQ(t(std::string("127.0.0.1\0x", 11)).substr(0, 3), "ERR");
    Target v6{"::1", 5000, ""};
    EXPECT_EQ(v6.label(), "[::1]:5000");
}

TEST(Targets, HostsFileCommentsBlanksAndPorts) {
    const auto list = parse_hosts("# fleet\n\n  web1   # front\nweb2:4000\r\n[::1]:7\n\t\n", "h", 4242);
    ASSERT_EQ(list.size(), 3U);
    EXPECT_EQ(list[0].label(), "web1:4242");
    EXPECT_EQ(list[0].origin, "h:3");
    EXPECT_EQ(list[1].label(), "web2:4000");
    EXPECT_EQ(list[2].label(), "[::1]:7");
}

TEST(Targets, HostsFileOptions) {
    TargetDefaults d(4242);
    auto list = parse_hosts("a\nb ssh\nc:2222 ssh insecure_plaintext\nd insecure_plaintext\n", "h", d);
    ASSERT_EQ(list.size(), 4U);
    EXPECT_EQ(list[0].via, Via::tcp);
    EXPECT_FALSE(list[0].insecure_plaintext);
    EXPECT_EQ(list[1].via, Via::ssh);
    EXPECT_EQ(list[1].port, 22);  // an ssh target's default port is ssh's
    EXPECT_EQ(list[2].port, 2222);
    EXPECT_TRUE(list[2].insecure_plaintext);
    EXPECT_EQ(list[3].via, Via::tcp);
    EXPECT_TRUE(list[3].insecure_plaintext);
    // Defaults from the configuration; a line may say otherwise.
    d.via = Via::ssh;
    d.insecure_plaintext = true;
    list = parse_hosts("a\nb tcp\n", "h", d);
    EXPECT_EQ(list[0].via, Via::ssh);
    EXPECT_EQ(list[0].port, 22);
    EXPECT_EQ(list[1].via, Via::tcp);
    EXPECT_EQ(list[1].port, 4242);
    EXPECT_TRUE(list[1].insecure_plaintext);
    EXPECT_EQ(parse_error("a tlss\n"),
              "hosts:1: unknown option 'tlss' (HOST[:PORT] then tcp, tls, ssh, "
              "insecure_plaintext, auth=plain or tls_fingerprint=SHA256)");
    list = parse_hosts("a\nb auth=plain\n", "h", TargetDefaults(4242));
    EXPECT_FALSE(list[0].auth_plain);
    EXPECT_TRUE(list[1].auth_plain);
    // tls, and a pin (which implies tls), normalized to lower-case hex.
    const std::string pin(64, 'A');
    list = parse_hosts("a tls\nb tls_fingerprint=" + pin.substr(0, 2) + ":" + pin.substr(2) + "\n",
                       "h", TargetDefaults(4242));
    EXPECT_EQ(list[0].via, Via::tls);
    EXPECT_TRUE(list[0].tls_fingerprint.empty());
    EXPECT_EQ(list[1].via, Via::tls);
    EXPECT_EQ(list[1].tls_fingerprint, std::string(64, 'a'));
    EXPECT_EQ(parse_error("a tls_fingerprint=abc\n"),
              "hosts:1: tls_fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons allowed");
    EXPECT_EQ(parse_error("a tls_fingerprint=" + pin + " ssh\n"),
              "hosts:1: tls_fingerprint goes with tls only");
}

TEST(Targets, BadLinesNameFileAndLine) {
    EXPECT_EQ(parse_error("web1\nweb 2\n", "/etc/mpasswd/hosts"),
              "/etc/mpasswd/hosts:2: unknown option '2' (HOST[:PORT] then tcp, tls, ssh, "
              "insecure_plaintext, auth=plain or tls_fingerprint=SHA256)");
    EXPECT_EQ(parse_error("ok\n\nbad:port\n"), "hosts:3: 'port' is not a port from 1 to 65535");
    EXPECT_EQ(parse_error("web1\nweb1:4242\n"), "hosts:2: web1:4242 is already listed on line 1");
    EXPECT_EQ(parse_error("x\n" + std::string(2000, 'a') + "\n"),
              "hosts:2: line longer than 1024 characters");
    EXPECT_EQ(parse_error("h$st\n"), "hosts:1: 'h$st' is neither a host name nor an IP address");
}

std::string config_error(const std::string& text, mode_t mode = 0600) {
    TempFile f(text, mode);
    try {
        load_controller_config(f.path());
    } catch (const ConfigError& e) {
        const std::string msg = e.what();
        // Without the temporary path, when the message is about that file.
        return msg.starts_with(f.path()) ? msg.substr(f.path().size()) : msg;
    }
    return "(no error)";
}

TEST(ControllerConfig, Defaults) {
    TempFile f("secret = s3cret-value\n");
    const auto c = load_controller_config(f.path());
    EXPECT_EQ(c.secret.view(), "s3cret-value");
    EXPECT_EQ(c.port, 4242);
    EXPECT_EQ(c.connect_timeout, 5s);
    EXPECT_EQ(c.reply_timeout, 15s);
    EXPECT_EQ(c.target_timeout, 60s);
    EXPECT_EQ(c.parallel, limits::parallel_auto);
    EXPECT_NE(describe(c).find("\nparallel = auto\n"), std::string::npos);
    EXPECT_EQ(c.hosts_file, std::string(MPASSWD_SYSCONFDIR) + "/mpasswd/hosts");
    EXPECT_TRUE(c.name.empty());
    EXPECT_EQ(c.transport, Via::tcp);
    EXPECT_FALSE(c.insecure_plaintext);
    EXPECT_EQ(c.ssh_command, "/usr/bin/ssh");
    EXPECT_EQ(c.ssh_user, "root");
    EXPECT_TRUE(c.ssh_identity.empty());
    EXPECT_TRUE(c.ssh_known_hosts.empty());
}

TEST(ControllerConfig, TransportKeys) {
    TempFile f("secret = s3cret-value\ntransport = ssh\ninsecure_plaintext = yes\n"
               "ssh_user = mctp\nssh_identity = keys/id\nssh_known_hosts = /etc/kh\n"
               "ssh_command = /opt/ssh\nssh_config = ssh.conf\n");
    const auto c = load_controller_config(f.path());
    EXPECT_EQ(c.ssh_settings().config, "/tmp/ssh.conf");
    EXPECT_EQ(c.transport, Via::ssh);
    EXPECT_TRUE(c.insecure_plaintext);
    EXPECT_EQ(c.ssh_user, "mctp");
    EXPECT_EQ(c.ssh_identity, "/tmp/keys/id");  // relative to the config's folder
    EXPECT_EQ(c.ssh_known_hosts, "/etc/kh");
    EXPECT_EQ(c.ssh_command, "/opt/ssh");
    EXPECT_EQ(c.target_defaults().via, Via::ssh);
    EXPECT_EQ(c.ssh_settings().user, "mctp");
    EXPECT_EQ(c.ssh_settings().connect_timeout_s, 5U);  // connect_timeout, whole seconds
    TempFile f2("secret = s3cret-value\nconnect_timeout = 1.5\n");
    EXPECT_EQ(load_controller_config(f2.path()).ssh_settings().connect_timeout_s, 2U);
    EXPECT_EQ(config_error("secret = x1\ntransport = udp\n"),
              ":2: transport: must be tcp, tls or ssh");
    EXPECT_EQ(config_error("secret = x1\ntls_certificate = /c.pem\n"),
              ": tls_certificate and tls_key go together");
    EXPECT_EQ(config_error("secret = x1\ninsecure_plaintext = maybe\n"),
              ":2: insecure_plaintext: must be yes or no");
    EXPECT_EQ(config_error("secret = x1\nssh_user = -oProxyCommand=x\n"),
              ":2: ssh_user: must be a user name");
}

TEST(ControllerConfig, SshFilesMustNotBeFifosOrDevices) {
    // ssh opens them itself, and would wait on a FIFO; a missing one is
    // ssh's business.
    char fifo[] = "/tmp/mpasswd-test-fifo-XXXXXX";
    ASSERT_NE(mkdtemp(fifo), nullptr);
    const std::string dir = fifo;
    const std::string path = dir + "/known_hosts";
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    EXPECT_EQ(config_error("secret = x1\nssh_known_hosts = " + path + "\n"),
              ": ssh_known_hosts " + path + ": not a regular file (a FIFO)");
    unlink(path.c_str());
    rmdir(dir.c_str());
    EXPECT_EQ(config_error("secret = x1\nssh_identity = /dev/zero\n"),
              ": ssh_identity /dev/zero: not a regular file (a character device)");
    EXPECT_EQ(config_error("secret = x1\nssh_identity = /tmp\n"),
              ": ssh_identity /tmp: not a regular file (a directory)");
    EXPECT_EQ(config_error("secret = x1\nssh_identity = /nonexistent/id\n"), "(no error)");
}

TEST(ControllerConfig, EveryKey) {
    TempFile secret("from-file-secret\nsecond line ignored\n");
    TempFile f("[mpasswd]\nname = ctl1.example.org\nsecret_file = " + secret.path() +
               "\nhosts = fleet\nport = 5000\nconnect_timeout = 1.5\nreply_timeout = 3\n"
               "target_timeout = 20\nparallel = 8\n");
    const auto c = load_controller_config(f.path());
    EXPECT_EQ(c.name, "ctl1.example.org");
    EXPECT_EQ(c.secret.view(), "from-file-secret");
    EXPECT_EQ(c.hosts_file, "/tmp/fleet");  // relative to the config's folder
    EXPECT_EQ(c.port, 5000);
    EXPECT_EQ(c.connect_timeout, 1500ms);
    EXPECT_EQ(c.reply_timeout, 3s);
    EXPECT_EQ(c.target_timeout, 20s);
    EXPECT_EQ(c.parallel, 8U);
    TempFile a("secret = x1\nparallel = auto\n");
    EXPECT_EQ(load_controller_config(a.path()).parallel, limits::parallel_auto);
    TempFile m("secret = x1\nparallel = 4096\n");
    EXPECT_EQ(load_controller_config(m.path()).parallel, 4096U);
}

// mpasswd -H: the configured transport's port unless one is named, the
// configured transport and insecure_plaintext, no target twice.
TEST(Targets, CommandLineTargets) {
    TargetDefaults d(4242);
    std::string why;
    auto t = parse_target_args({"db1", "db2:99", "[::1]"}, d, &why);
    ASSERT_TRUE(t) << why;
    ASSERT_EQ(t->size(), 3U);
    EXPECT_EQ((*t)[0].label(), "db1:4242");
    EXPECT_EQ((*t)[1].label(), "db2:99");
    EXPECT_EQ((*t)[2].label(), "[::1]:4242");
    EXPECT_EQ((*t)[0].origin, "-H");
    d.via = Via::ssh;
    d.insecure_plaintext = true;
    t = parse_target_args({"db1"}, d, &why);
    ASSERT_TRUE(t) << why;
    EXPECT_EQ((*t)[0].label(), "db1:22");
    EXPECT_EQ((*t)[0].via, Via::ssh);
    EXPECT_TRUE((*t)[0].insecure_plaintext);
    EXPECT_FALSE(parse_target_args({"db1", "db2", "db1:22"}, d, &why));
    EXPECT_EQ(why, "-H db1:22: db1:22 is given twice");
    EXPECT_FALSE(parse_target_args({"db1:0"}, d, &why));
    EXPECT_EQ(why, "-H db1:0: '0' is not a port from 1 to 65535");
}

TEST(ControllerConfig, EngineSettingsFromTheConfig) {
    TempFile f("secret = s3cret-value\nname = ctl1\nconnect_timeout = 2\nreply_timeout = 3\n"
               "target_timeout = 9\nparallel = 5\n");
    const auto c = load_controller_config(f.path());
    auto s = c.engine_settings();
    EXPECT_EQ(s.helo_name, "ctl1");
    EXPECT_EQ(s.secret, &c.secret);
    EXPECT_EQ(s.connect_timeout, 2s);
    EXPECT_EQ(s.reply_timeout, 3s);
    EXPECT_EQ(s.target_timeout, 9s);
    EXPECT_EQ(s.parallel, 5U);
    // mpasswd --timeout: connect and each reply; the target's whole time
    // never shorter than the connect.
    s = c.engine_settings(20s);
    EXPECT_EQ(s.connect_timeout, 20s);
    EXPECT_EQ(s.reply_timeout, 20s);
    EXPECT_EQ(s.target_timeout, 20s);
    TempFile unnamed("secret = s3cret-value\n");
    EXPECT_EQ(load_controller_config(unnamed.path()).engine_settings().helo_name,
              default_helo_name());
}

TEST(ControllerConfig, DescribeEveryKeySecretMasked) {
    TempFile f("secret = s3cret-value\nport = 5000\nreply_timeout = 2.5\ntransport = ssh\n");
    const auto c = load_controller_config(f.path());
    const std::string d = describe(c);
    EXPECT_EQ(d.find("s3cret-value"), std::string::npos);
    EXPECT_NE(d.find("\nsecret = (set)\n"), std::string::npos) << d;
    EXPECT_NE(d.find("\nport = 5000\n"), std::string::npos) << d;
    EXPECT_NE(d.find("\nreply_timeout = 2.5\n"), std::string::npos) << d;
    EXPECT_NE(d.find("\ntransport = ssh\n"), std::string::npos) << d;
    EXPECT_NE(d.find("\nname = (this host's name)\n"), std::string::npos) << d;
    EXPECT_TRUE(d.starts_with("# effective settings of " + f.path() + "\n")) << d;
    for (const char* key : {"name", "secret", "secret_file", "hosts", "port", "transport",
                            "insecure_plaintext", "connect_timeout", "reply_timeout",
                            "target_timeout", "parallel", "tls_ca", "tls_certificate", "tls_key",
                            "ssh_command", "ssh_user", "ssh_identity", "ssh_known_hosts",
                            "ssh_config"}) {
        EXPECT_NE(d.find("\n" + std::string(key) + " = "), std::string::npos) << key;
    }
}

TEST(ControllerConfig, BadLinesNameFileLineAndKey) {
    EXPECT_EQ(config_error("secret = x1\nportt = 1\n"), ":2: portt: unknown key");
    EXPECT_EQ(config_error("secret = x1\nport = 0\n"), ":2: port: must be a port from 1 to 65535");
    EXPECT_EQ(config_error("secret = x1\n\nparallel = 0\n"),
              ":3: parallel: must be auto or a number from 1 to 4096");
    EXPECT_EQ(config_error("secret = x1\nparallel = 4097\n"),
              ":2: parallel: must be auto or a number from 1 to 4096");
    EXPECT_EQ(config_error("secret = x1\nparallel = Auto\n"),
              ":2: parallel: must be auto or a number from 1 to 4096");
    EXPECT_EQ(config_error("secret = x1\nreply_timeout = soon\n"),
              ":2: reply_timeout: must be seconds from 0.1 to 3600");
    EXPECT_EQ(config_error("secret = two words\n"),
              ":1: secret: must be 1 to 121 printable ASCII characters without spaces");
    EXPECT_EQ(config_error("secret = " + std::string(122, 'x') + "\n"),
              ":1: secret: must be 1 to 121 printable ASCII characters without spaces");
    EXPECT_EQ(config_error("secret = x1\nname = bad name\n").substr(0, 10), ":2: name: ");
    EXPECT_EQ(config_error("secret = x1\n[other]\nport = 1\n"),
              ":3: port: in unknown section [other]; the only section is [mpasswd]");
    EXPECT_EQ(config_error("secret = x1\nport = 1\nport = 2\n"), ":3: port: given twice");
    EXPECT_EQ(config_error("secret = x1\nno equals sign\n"),
              ":2: syntax error (expected 'key = value' or '[mpasswd]')");
    EXPECT_EQ(config_error("port = 1\n").substr(0, 12), ": no secret:");
    EXPECT_EQ(config_error("secret = x1\nsecret_file = /x\n"),
              ": give either secret or secret_file, not both");
    EXPECT_EQ(config_error("secret = x1\nconnect_timeout = 9\ntarget_timeout = 8\n"),
              ": target_timeout (8 s) is shorter than connect_timeout");
}

TEST(ControllerConfig, SecretsMustBePrivate) {
    EXPECT_NE(config_error("secret = x1\n", 0640).find("readable by other users; chmod 600"),
              std::string::npos);
    TempFile open_secret("the-secret\n", 0644);
    EXPECT_NE(config_error("secret_file = " + open_secret.path() + "\n", 0600)
                  .find("holds a secret, so it must be readable by its owner only"),
              std::string::npos);
    TempFile empty_secret("\n", 0600);
    EXPECT_NE(config_error("secret_file = " + empty_secret.path() + "\n", 0600)
                  .find("the first line must be the secret"),
              std::string::npos);
    EXPECT_NE(config_error("secret_file = /nonexistent/secret\n", 0600)
                  .find("/nonexistent/secret: cannot open: No such file"),
              std::string::npos);
}

TEST(Replies, Parse) {
    auto r = mctp::parse_reply("250 t1 hello ctl [127.0.0.1]");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->code, mctp::Code::ok);
    EXPECT_EQ(r->text, "t1 hello ctl [127.0.0.1]");
    r = mctp::parse_reply("221");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->text, "");
    r = mctp::parse_reply("554 bad\x01 \xc3\xa9");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->text, "bad ?");
    EXPECT_FALSE(mctp::parse_reply("25"));
    EXPECT_FALSE(mctp::parse_reply("250-more"));
    EXPECT_FALSE(mctp::parse_reply("abc text"));
    EXPECT_FALSE(mctp::parse_reply("199 low"));
    EXPECT_FALSE(mctp::parse_reply("600 high"));
    EXPECT_FALSE(mctp::parse_reply(""));
}

TEST(Secrets, JoinBuildsOneBuffer) {
    const auto s = mctp::Secret::join({"AUTH ", "abc", "", "\r\n"});
    EXPECT_EQ(s.view(), "AUTH abc\r\n");
    EXPECT_EQ(s.c_str()[s.size()], '\0');
    EXPECT_TRUE(mctp::Secret::join({}).empty());
}

TEST(Report, JsonTableSummary) {
    const Target t{"::1", 7, "-H"};
    Job job{Action::change, "alice", nullptr};
    Result r;
    r.outcome = Outcome::refused;
    r.code = 554;
    r.text = "BAD PASSWORD: \"short\" \\ x";
    r.step = "end of data";
    r.elapsed = 12ms;
    EXPECT_EQ(json_line(t, job, r),
              "{\"target\":\"[::1]:7\",\"host\":\"::1\",\"port\":7,\"transport\":\"tcp\",\"user\":\"alice\","
              "\"action\":\"change\",\"result\":\"refused\",\"code\":554,\"step\":\"end of data\","
              "\"auth\":null,\"phase\":null,\"text\":\"BAD PASSWORD: \\\"short\\\" \\\\ x\","
              "\"maybe_applied\":false,\"elapsed_ms\":12,\"run\":null}");
    // The run id, and a target that may have applied the change.
    Result sent = r;
    sent.maybe_applied = true;
    const std::string with_run = json_line(t, job, sent, "20261206T154247.123Z-0a1b2c3d");
    EXPECT_NE(with_run.find("\"maybe_applied\":true,"), std::string::npos) << with_run;
    EXPECT_TRUE(with_run.ends_with(",\"run\":\"20261206T154247.123Z-0a1b2c3d\"}")) << with_run;
    r.phase = "test";
    EXPECT_NE(json_line(t, job, r).find(",\"phase\":\"test\","), std::string::npos);
    r.phase.clear();
    r.auth = "SCRAM-SHA-256-PLUS";
    EXPECT_NE(json_line(t, job, r).find(",\"auth\":\"SCRAM-SHA-256-PLUS\","), std::string::npos);
    r.auth.clear();
    Result ok;
    ok.outcome = Outcome::ok;
    ok.code = 250;
    const std::vector<Target> targets{t, Target{"h", 1, ""}};
    EXPECT_EQ(failure_table(targets, {ok, ok}), "");
    EXPECT_EQ(failure_table(targets, {r, ok}),
              "TARGET   RESULT          CODE  STEP         REASON\n"
              "[::1]:7  refused         554   end of data  BAD PASSWORD: \"short\" \\ x\n");
    Result late;
    late.outcome = Outcome::timeout;
    EXPECT_EQ(summary_line(job, {ok, r, late}),
              "alice: password changed on 1 of 3 targets, 2 failed (1 refused, 1 timeout)");
    Result tested = r;
    tested.phase = "test";
    Result skipped = ok;
    skipped.outcome = Outcome::skipped;
    skipped.phase = "test";
    EXPECT_EQ(summary_line(job, {tested, skipped}),
              "alice: password changed on 0 of 2 targets, 2 failed (1 refused, 1 skipped); TEST "
              "did not pass on every target, so no target was sent the change");
    job.action = Action::verify;
    EXPECT_EQ(summary_line(job, {ok}), "alice: verified on 1 of 1 target");
    EXPECT_EQ(progress_line(3, 1, 10), "3/10 done, 1 failed, 7 pending");
}

TEST(PamOptions, TableAndUnknownArguments) {
    std::vector<std::string> ignored;
    const char* argv[] = {"debug",       "best_effort", "config=/etc/x.conf", "hosts=/etc/h",
                          "use_authtok", "bogus",       "hosts=relative",     "parallel=12",
                          "parallel=0"};
    const auto o = pam_mctp::parse_options(9, argv, &ignored);
    EXPECT_TRUE(o.debug);
    EXPECT_FALSE(o.require_all);
    // use_authtok is known (not ignored): pam_get_authtok acts on it.
    EXPECT_EQ(o.config, "/etc/x.conf");
    EXPECT_EQ(o.hosts.value_or(""), "/etc/h");
    EXPECT_EQ(o.parallel.value_or(0), 12U);  // a bad one later changes nothing
    ASSERT_EQ(ignored.size(), 3U);
    EXPECT_EQ(ignored[0], "bogus (unknown option)");
    EXPECT_EQ(ignored[1], "hosts=relative (not an absolute path)");
    EXPECT_EQ(ignored[2], "parallel=0 (must be auto or a number from 1 to 4096)");
    ignored.clear();
    const char* auto_argv[] = {"parallel=auto"};
    EXPECT_EQ(pam_mctp::parse_options(1, auto_argv, &ignored).parallel, limits::parallel_auto);
    EXPECT_TRUE(ignored.empty());
    const auto d = pam_mctp::parse_options(0, nullptr, &ignored);
    EXPECT_FALSE(d.parallel.has_value());
    EXPECT_TRUE(d.require_all);
    EXPECT_FALSE(d.debug);
    EXPECT_EQ(d.config, std::string(MPASSWD_SYSCONFDIR) + "/mpasswd/mpasswd.conf");
}

TEST(PamOptions, LimitIsKeptEvenWhenBad) {
    std::vector<std::string> ignored;
    const char* argv[] = {"limit=web:!web3"};
    EXPECT_EQ(pam_mctp::parse_options(1, argv, &ignored).limit.value_or("(none)"), "web:!web3");
    EXPECT_TRUE(ignored.empty());
    // An empty pattern is not "no limit": select_targets refuses it, so a
    // typo never reaches every target.
    const char* empty[] = {"limit="};
    EXPECT_EQ(pam_mctp::parse_options(1, empty, &ignored).limit.value_or("(none)"), "");
    EXPECT_EQ(pam_mctp::parse_options(0, nullptr, &ignored).limit, std::nullopt);
}

// ---- the engine against scripted servers ----

// A socket on 127.0.0.1 whose every connection runs `script` on a thread
// of its own; counts connections and the most open at once.
class ScriptServer {
public:
    using Script = std::function<void(int fd)>;
    explicit ScriptServer(Script script) : script_(std::move(script)) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(listen(fd_, 128), 0);
        socklen_t len = sizeof a;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }
    ~ScriptServer() {
        stopping_ = true;
        shutdown(fd_, SHUT_RDWR);
        acceptor_.join();
        for (auto& t : workers_) {
            t.join();
        }
        close(fd_);
    }
    ScriptServer(const ScriptServer&) = delete;
    ScriptServer& operator=(const ScriptServer&) = delete;

    [[nodiscard]] Target target() const { return Target{"127.0.0.1", port_, "test"}; }
    [[nodiscard]] int connections() const { return connections_; }
    [[nodiscard]] int most_at_once() const { return most_; }
    std::string received() {
        std::lock_guard lock(mutex_);
        return received_;
    }
    // The client may connect again once it has its last reply: a script
    // calls this before sending that reply, so "open" never overcounts.
    void leaving() {
        left_ = true;
        --open_;
    }
    void note(const std::string& line) {
        std::lock_guard lock(mutex_);
        received_ += line + "\n";
    }

private:
    void accept_loop() {
        for (;;) {
            const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) {
                return;
            }
            ++connections_;
            const int now = ++open_;
            int seen = most_;
            while (now > seen && !most_.compare_exchange_weak(seen, now)) {
            }
            workers_.emplace_back([this, c] {
                script_(c);
                if (!left_) {
                    --open_;
                }
                close(c);
            });
        }
    }

    Script script_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread acceptor_;
    std::vector<std::thread> workers_;
    std::atomic<bool> stopping_{false};
    std::atomic<int> connections_{0};
    std::atomic<int> open_{0};
    std::atomic<int> most_{0};
    std::mutex mutex_;
    std::string received_;
    static thread_local bool left_;
};

thread_local bool ScriptServer::left_ = false;

// MSG_NOSIGNAL: a client that hung up must not kill the test with SIGPIPE.
void say(int fd, const std::string& line) {
    const std::string l = line + "\r\n";
    (void)!send(fd, l.data(), l.size(), MSG_NOSIGNAL);
}

// Reads one line (without CRLF); "" at end of input.
std::string hear(int fd) {
    std::string line;
    char c = 0;
    while (read(fd, &c, 1) == 1) {
        if (c == '\n') {
            if (!line.empty() && line.back() == '\r') {
                line.pop_back();
            }
            return line;
        }
        line += c;
    }
    return line;
}

// A well-behaved responder; `at` may replace the reply to one command
// (by its first word) with something else, or "silence" to stop answering
// there, or "close" to hang up.
ScriptServer::Script responder(ScriptServer* self, std::string at = "", std::string instead = "") {
    return [self, at, instead](int fd) {
        const auto reply = [&](const std::string& cmd, const std::string& normal) {
            if (cmd == at) {
                if (instead == "silence") {
                    std::this_thread::sleep_for(1500ms);
                    return false;
                }
                if (instead == "close") {
                    return false;
                }
                say(fd, instead);
                // Like mpasswdd: only 421 and 521 end the session; other
                // refusals leave it open for the next command.
                return !instead.starts_with("421") && !instead.starts_with("521") &&
                       std::isdigit(static_cast<unsigned char>(instead[0])) &&
                       instead.size() > 3 && instead[3] == ' ';
            }
            say(fd, normal);
            return true;
        };
        if (!reply("banner", "220 t MCTP ready")) {
            return;
        }
        for (;;) {
            const std::string line = hear(fd);
            if (line.empty()) {
                return;
            }
            const std::string verb = line.substr(0, 4);
            if (verb == "AUTH" && at != "AUTH" && line.starts_with("AUTH SCRAM-SHA-256 ")) {
                // SCRAM for controller ctl with test-secret-1 (what is
                // recorded: the steps, not the random messages).
                self->note("AUTH SCRAM-SHA-256");
                mctp::scram::Server server;
                std::string why;
                const auto first = mctp::scram::unbase64(line.substr(19));
                if (!first || server.start(*first, &why) != std::optional<std::string>("ctl")) {
                    say(fd, "530 authentication failed");
                    continue;
                }
                say(fd, "334 " + mctp::scram::base64(server.first(mctp::scram::make_verifier(
                                     "test-secret-1", "0123456789abcdef", 4096))));
                const auto final = mctp::scram::unbase64(hear(fd));
                self->note("proof");
                const auto last = final ? server.final(*final, &why) : std::nullopt;
                if (!last) {
                    say(fd, "530 authentication failed");
                    continue;
                }
                say(fd, "334 " + mctp::scram::base64(*last));
                self->note(hear(fd).empty() ? "(empty)" : "not empty");
                say(fd, "250 authenticated as ctl");
                continue;
            }
            self->note(line);
            if (verb == "EHLO") {
                if (!reply("EHLO", "250-t hello ctl\r\n250 AUTH SCRAM-SHA-256")) {
                    return;
                }
                continue;
            }
            if (verb == "QUIT") {
                self->leaving();
                say(fd, "221 bye");
                return;
            }
            if (verb == "DATA") {
                if (!reply("DATA", "354 go on")) {
                    return;
                }
                const std::string pw = hear(fd);
                self->note("data:" + pw);
                if (!reply("password", "355 ok")) {
                    return;
                }
                self->note(hear(fd));
                if (!reply(".", "250 password changed")) {
                    return;
                }
                continue;
            }
            if (!reply(verb, "250 ok")) {
                return;
            }
        }
    };
}

struct EngineFixture : ::testing::Test {
    mctp::Secret secret{"test-secret-1"};
    mctp::Secret password{"New-Pw-1"};
    EngineSettings settings() {
        EngineSettings s;
        s.helo_name = "ctl";
        s.secret = &secret;
        s.connect_timeout = 1s;
        s.reply_timeout = 500ms;
        s.target_timeout = 10s;
        s.parallel = 8;
        return s;
    }
    Result run_one(ScriptServer& server, Action action = Action::change) {
        auto transport = make_tcp_transport();
        Job job{action, "alice", action == Action::change ? &password : nullptr, true};
        return run({server.target()}, settings(), job, *transport, nullptr).at(0);
    }
};

TEST_F(EngineFixture, ChangeSendsTheWholeDialogue) {
    ScriptServer* self = nullptr;
    ScriptServer server([&](int fd) { responder(self)(fd); });
    self = &server;
    const Result r = run_one(server);
    EXPECT_EQ(r.outcome, Outcome::ok) << r.text;
    EXPECT_EQ(r.code, 250);
    EXPECT_EQ(r.step, "end of data");
    EXPECT_EQ(server.received(),
              "EHLO ctl\nAUTH SCRAM-SHA-256\nproof\n(empty)\nCHPW alice\nDATA\ndata:New-Pw-1\n.\n"
              "QUIT\n");
    EXPECT_EQ(r.auth, "SCRAM-SHA-256");
}

TEST_F(EngineFixture, VerifySendsNoPassword) {
    ScriptServer* self = nullptr;
    ScriptServer server([&](int fd) { responder(self)(fd); });
    self = &server;
    const Result r = run_one(server, Action::verify);
    EXPECT_EQ(r.outcome, Outcome::ok) << r.text;
    EXPECT_EQ(server.received(),
              "EHLO ctl\nAUTH SCRAM-SHA-256\nproof\n(empty)\nVRFY alice\nQUIT\n");
}

TEST_F(EngineFixture, LeadingDotIsStuffed) {
    ScriptServer* self = nullptr;
    ScriptServer server([&](int fd) { responder(self)(fd); });
    self = &server;
    password = mctp::Secret(".dot-first");
    EXPECT_EQ(run_one(server).outcome, Outcome::ok);
    EXPECT_NE(server.received().find("data:..dot-first\n"), std::string::npos);
}

TEST_F(EngineFixture, RefusalsKeepCodeTextAndStep) {
    struct Case {
        std::string at, reply, step;
        int code;
    };
    for (const auto& c : {Case{"banner", "521 t no controller entry for you", "banner", 521},
                          Case{"AUTH", "530 authentication failed", "AUTH", 530},
                          Case{"CHPW", "551 no such user", "CHPW", 551},
                          Case{".", "554 BAD PASSWORD: it is too short", "end of data", 554}}) {
        ScriptServer* self = nullptr;
        ScriptServer server([&](int fd) { responder(self, c.at, c.reply)(fd); });
        self = &server;
        const Result r = run_one(server);
        EXPECT_EQ(r.outcome, Outcome::refused) << c.at;
        EXPECT_EQ(r.code, c.code);
        EXPECT_EQ(r.step, c.step);
        EXPECT_EQ(r.text, c.reply.substr(4));
        // The session still open after the refusal is ended with QUIT;
        // after 521 the responder has closed it already.
        const std::string got = server.received();
        EXPECT_EQ(got.ends_with("QUIT\n"), c.code != 521) << c.at << ": " << got;
    }
}

TEST_F(EngineFixture, NotMctpIsAProtocolError) {
    for (const auto& bad : {std::string("SSH-2.0-OpenSSH_9.2"), std::string("250-continued"),
                            std::string("220 ready but then") /* 220 where 250 is due */}) {
        ScriptServer* self = nullptr;
        const std::string at = bad.starts_with("220") ? "EHLO" : "banner";
        ScriptServer server([&](int fd) { responder(self, at, bad)(fd); });
        self = &server;
        const Result r = run_one(server);
        EXPECT_EQ(r.outcome, Outcome::protocol_error) << bad;
    }
    ScriptServer endless([](int fd) {
        const std::string chunk(1000, 'x');
        for (int i = 0; i < 10; ++i) {
            (void)!send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
        }
        std::this_thread::sleep_for(200ms);
    });
    const Result r = run_one(endless);
    EXPECT_EQ(r.outcome, Outcome::protocol_error);
    EXPECT_EQ(r.text, "reply longer than 4096 octets");
}

TEST_F(EngineFixture, HangUpAndSilenceAtEachStep) {
    for (const std::string at : {"banner", "EHLO", "AUTH", "CHPW", "DATA", "password", "."}) {
        ScriptServer* self = nullptr;
        ScriptServer server([&](int fd) { responder(self, at, "close")(fd); });
        self = &server;
        Result r = run_one(server);
        EXPECT_EQ(r.outcome, Outcome::protocol_error) << at;
        EXPECT_NE(r.text.find("connection closed by the target"), std::string::npos) << r.text;
    }
    for (const std::string at : {"banner", "AUTH", "."}) {
        ScriptServer* self = nullptr;
        ScriptServer server([&](int fd) { responder(self, at, "silence")(fd); });
        self = &server;
        const auto start = std::chrono::steady_clock::now();
        Result r = run_one(server);
        const auto took = std::chrono::steady_clock::now() - start;
        EXPECT_EQ(r.outcome, Outcome::timeout) << at;
        // The reply timeout (0.5 s) ended it, not the server's 1.5 s sleep.
        EXPECT_LT(took, 1400ms) << at;
        // Only silence after the whole password went out leaves it maybe applied.
        EXPECT_EQ(r.maybe_applied, at == ".") << at;
        if (at == ".") {
            EXPECT_NE(r.text.find("the password was sent and may have been changed"),
                      std::string::npos);
        }
    }
}

TEST_F(EngineFixture, TargetTimeoutBoundsASlowTarget) {
    // Answers every step just inside the reply timeout.
    ScriptServer server([](int fd) {
        say(fd, "220 slow");
        for (;;) {
            const std::string line = hear(fd);
            if (line.empty()) {
                return;
            }
            std::this_thread::sleep_for(400ms);
            say(fd, line.starts_with("DATA")   ? "354 go"
                    : line.starts_with("EHLO") ? "250-slow\r\n250 AUTH SCRAM-SHA-256"
                                               : "250 ok");
        }
    });
    auto s = settings();
    s.target_timeout = 700ms;
    auto transport = make_tcp_transport();
    Job job{Action::verify, "alice", nullptr};
    const Result r = run({server.target()}, s, job, *transport, nullptr).at(0);
    EXPECT_EQ(r.outcome, Outcome::timeout);
    EXPECT_EQ(r.text, "not done within target_timeout (0.7 s)");
}

TEST_F(EngineFixture, ClosedPortAndUnknownNameAreUnreachable) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    const std::uint16_t port = ntohs(a.sin_port);
    close(fd);  // bound once, never listening: refused
    auto transport = make_tcp_transport();
    Job job{Action::verify, "alice", nullptr};
    const auto results = run({Target{"127.0.0.1", port, ""}, Target{"no-such-host.invalid", 1, ""}},
                             settings(), job, *transport, nullptr);
    EXPECT_EQ(results[0].outcome, Outcome::unreachable);
    EXPECT_EQ(results[0].step, "connect");
    EXPECT_EQ(results[1].outcome, Outcome::unreachable);
    EXPECT_NE(results[1].text.find("cannot resolve no-such-host.invalid"), std::string::npos)
        << results[1].text;
}

TEST_F(EngineFixture, PlainTcpBeyondLoopbackNeedsTheOptIn) {
    auto transport = make_tcp_transport();
    Job job{Action::verify, "alice", nullptr};
    Target far{"192.0.2.1", 4242, ""};
    Target mapped{"::ffff:127.0.0.1", 1, ""};  // loopback, v4-mapped
    auto results = run({far, mapped}, settings(), job, *transport, nullptr);
    EXPECT_EQ(results[0].outcome, Outcome::untrusted);
    EXPECT_EQ(results[0].step, "connect");
    EXPECT_NE(results[0].text.find("insecure_plaintext"), std::string::npos) << results[0].text;
    EXPECT_NE(results[1].outcome, Outcome::untrusted) << results[1].text;
    far.insecure_plaintext = true;
    results = run({far}, settings(), job, *transport, nullptr);
    EXPECT_NE(results[0].outcome, Outcome::untrusted) << results[0].text;
}

TEST_F(EngineFixture, ParallelLimitAndResultsInOrder) {
    ScriptServer* self = nullptr;
    ScriptServer server([&](int fd) {
        std::this_thread::sleep_for(50ms);
        responder(self)(fd);
    });
    self = &server;
    std::vector<Target> targets(20, server.target());
    auto s = settings();
    s.parallel = 3;
    auto transport = make_tcp_transport();
    Job job{Action::verify, "alice", nullptr};
    std::vector<std::size_t> order;
    const auto results = run(targets, s, job, *transport,
                             [&](std::size_t i, const Result&) { order.push_back(i); });
    EXPECT_EQ(results.size(), 20U);
    for (const auto& r : results) {
        EXPECT_EQ(r.outcome, Outcome::ok);
    }
    EXPECT_EQ(order.size(), 20U);
    EXPECT_EQ(server.connections(), 20);
    EXPECT_LE(server.most_at_once(), 3);
    EXPECT_GE(server.most_at_once(), 2);
}

TEST_F(EngineFixture, BadJobsSendNothing) {
    ScriptServer* self = nullptr;
    ScriptServer server([&](int fd) { responder(self)(fd); });
    self = &server;
    auto transport = make_tcp_transport();
    const auto attempt = [&](const std::string& user, const mctp::Secret* pw) {
        Job job{Action::change, user, pw};
        try {
            run({server.target()}, settings(), job, *transport, nullptr);
        } catch (const JobError& e) {
            return std::string(e.what());
        }
        return std::string("(ran)");
    };
    const mctp::Secret control("new\npassword");
    const mctp::Secret empty("");
    const mctp::Secret bad_utf8("\xc3\x28");
    EXPECT_EQ(attempt("alice;rm", &password).substr(0, 12), "'alice;rm' i");
    EXPECT_EQ(attempt("alice", &control),
              "the new password is not valid UTF-8 text (control characters cannot be sent)");
    EXPECT_EQ(attempt("alice", &bad_utf8).substr(0, 30), "the new password is not valid ");
    EXPECT_EQ(attempt("alice", &empty), "the new password is empty");
    EXPECT_EQ(attempt("alice", nullptr), "the new password is empty");
    EXPECT_EQ(server.connections(), 0);
}

// ---- texts from elsewhere reach a terminal, PAM or syslog escaped ----

// A target's (or ssh's) hostile text: a title change, a screen clear, a
// forged line, and C1 CSI.
const std::string hostile = "\x1b]0;pwned\x07\x1b[2J\nalice: password changed on 3 of 3 \x9b" "31m";
const std::string hostile_shown =
    "\\x1b]0;pwned\\x07\\x1b[2J\\x0aalice: password changed on 3 of 3 \\x9b31m";

// No octet outside 0x20-0x7E, except the '\n' ending each of `lines` lines.
::testing::AssertionResult clean_lines(const std::string& out, std::size_t lines) {
    std::size_t breaks = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto c = static_cast<unsigned char>(out[i]);
        if (c == '\n' && (i + 1 == out.size() || out[i + 1] != '\n')) {
            ++breaks;
        } else if (c < 0x20 || c > 0x7E) {
            return ::testing::AssertionFailure() << "octet " << int(c) << " at " << i << ": " << out;
        }
    }
    if (breaks != lines || (lines > 0 && !out.ends_with('\n'))) {
        return ::testing::AssertionFailure() << breaks << " lines, not " << lines << ": " << out;
    }
    return ::testing::AssertionSuccess();
}

// On a terminal the RESULT cell alone is coloured, after padding: the
// other cells, and every column, are where they are without colour.
TEST(Report, ColouredResultCellKeepsTheColumns) {
    const std::vector<Target> targets{Target{"web1", 4242, ""}, Target{"web2", 4242, ""},
                                      Target{"web3", 4242, ""}};
    Result refused;
    refused.outcome = Outcome::refused;
    refused.code = 554;
    refused.step = "TEST";
    refused.text = "too short";
    Result skipped;
    skipped.outcome = Outcome::skipped;
    skipped.step = "TEST";
    Result untrusted;
    untrusted.outcome = Outcome::untrusted;
    untrusted.code = 530;
    untrusted.step = "SCRAM proof";
    const std::vector<Result> results{refused, skipped, untrusted};
    const std::string plain = failure_table(targets, results);
    const std::string coloured = failure_table(targets, results, true);
    EXPECT_EQ(plain.find('\x1b'), std::string::npos);
    EXPECT_NE(coloured.find("  \x1b[31mrefused\x1b[0m         554 "), std::string::npos)
        << coloured;
    EXPECT_NE(coloured.find("  \x1b[33mskipped\x1b[0m         -   "), std::string::npos);
    EXPECT_NE(coloured.find("  \x1b[1;31muntrusted\x1b[0m       530 "), std::string::npos);
    // Without the colour sequences it is the plain table, octet for octet.
    std::string stripped = coloured;
    for (const char* sgr : {"\x1b[31m", "\x1b[33m", "\x1b[1;31m", "\x1b[0m"}) {
        for (auto at = stripped.find(sgr); at != std::string::npos; at = stripped.find(sgr)) {
            stripped.erase(at, std::strlen(sgr));
        }
    }
    EXPECT_EQ(stripped, plain);
    EXPECT_EQ(failure_table(targets, {}, true), "");
}

TEST(Report, HostileTextsAreEscapedInTableSummaryAndJson) {
    const Target t{"h", 7, "-H"};
    Job job{Action::change, "al\x1b[2Jice", nullptr};
    Result r;
    r.outcome = Outcome::unreachable;
    r.text = hostile;
    r.step = "ba\rnner";
    const std::string table = failure_table({t}, {r});
    EXPECT_TRUE(clean_lines(table, 2));
    EXPECT_EQ(table,
              "TARGET  RESULT          CODE  STEP        REASON\n"
              "h:7     unreachable     -     ba\\x0dnner  " + hostile_shown + "\n");
    const std::string summary = summary_line(job, {r});
    EXPECT_TRUE(clean_lines(summary + "\n", 1));
    EXPECT_TRUE(summary.starts_with("al\\x1b[2Jice: password changed on 0 of 1 target"));
    // JSON keeps its own escaping: every control octet and DEL as \u00XX,
    // and an octet of (invalid) UTF-8 as a code point, so the line stays
    // valid JSON, ASCII only.
    r.text = std::string("a\x1b\x7f\n\xc3(\x9b", 7);
    const std::string json = json_line(t, job, r);
    EXPECT_TRUE(clean_lines(json + "\n", 1));
    EXPECT_NE(json.find("\"text\":\"a\\u001b\\u007f\\u000a\\u00c3(\\u009b\""), std::string::npos)
        << json;
    EXPECT_NE(json.find("\"user\":\"al\\u001b[2Jice\""), std::string::npos) << json;
}

TEST(Targets, ErrorsShowTheFileTextEscaped) {
    const std::string line = "web1 \x1b]0;pwned\x07\x1b[2J\n";
    const std::string e = parse_error(line);
    EXPECT_TRUE(clean_lines(e + "\n", 1));
    EXPECT_TRUE(e.starts_with("hosts:1: unknown option '\\x1b]0;pwned\\x07\\x1b[2J' (")) << e;
    EXPECT_EQ(parse_error("h\x1b[2J\n"),
              "hosts:1: 'h\\x1b[2J' is neither a host name nor an IP address");
    EXPECT_EQ(parse_error("h:\x9b" "1\n"), "hosts:1: '\\x9b1' is not a port from 1 to 65535");
    EXPECT_EQ(parse_error("[\x1b]:7\n"), "hosts:1: '\\x1b' in brackets is not an IPv6 address");
    // A whole line in brackets is a group (or an IPv6 target).
    EXPECT_EQ(parse_error("[\x1b]\n"),
              "hosts:1: '\\x1b' is not a group name (letters, digits, '_', '-', '.', at most 255)");
    std::string why;
    EXPECT_FALSE(parse_target("a\nb:1:\x07", 4242, &why));
    EXPECT_EQ(why, "'a\\x0ab:1:\\x07' is not an IPv6 address (write [ADDRESS]:PORT for a port)");
}

TEST(ControllerConfig, ErrorsShowTheFileTextEscaped) {
    const auto error = [](const std::string& text) {
        try {
            parse_controller_config(text, "c.conf");
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_EQ(error("secret = s3cret\nna\x1b[2Jme = x\n"), "c.conf:2: na\\x1b[2Jme: unknown key");
    EXPECT_EQ(error("[w\x1b[2J\x07]\nport = 1\n"),
              "c.conf:2: port: in unknown section [w\\x1b[2J\\x07]; the only section is [mpasswd]");
}

// ---- the engine over an in-memory stream ----

struct MemoryEngine : ::testing::Test {
    mctp::Secret secret{"test-secret-1"};
    mctp::Secret password{"New-Pw-1"};
    Result run_one(const fake::MemoryScript& script, Action action = Action::change) {
        EngineSettings s;
        s.helo_name = "ctl";
        s.secret = &secret;
        fake::MemoryTransport transport(script);
        Job job{action, "alice", action == Action::change ? &password : nullptr, true};
        // Scripted bytes: the old AUTH <secret>, whose replies are fixed.
        Target t{"h", 1, "test"};
        t.auth_plain = true;
        return run({t}, s, job, transport, nullptr).at(0);
    }
};

TEST_F(MemoryEngine, SshErrorTextsAreKeptEscaped) {
    // As the ssh transport ends a stream: ssh's last line of errors, which
    // a target's forced command writes, as the exception's text.
    fake::MemoryScript script;
    script.end = fake::MemoryScript::End::transport_error;
    script.end_text = "ssh: " + hostile;
    Result r = run_one(script);
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_EQ(r.step, "banner");
    EXPECT_EQ(r.text, "ssh: " + hostile_shown);
    script.end = fake::MemoryScript::End::untrusted;
    script.fail_connect = true;
    r = run_one(script);
    EXPECT_EQ(r.outcome, Outcome::untrusted);
    EXPECT_EQ(r.step, "connect");
    EXPECT_EQ(r.text, "ssh: " + hostile_shown);
    // After the password was sent, the warning comes after the escaped text.
    script = fake::MemoryScript{};
    script.bytes = "220 t\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n355 ok\r\n";
    script.end = fake::MemoryScript::End::transport_error;
    script.end_text = "ssh: \x1b[2J";
    r = run_one(script);
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_EQ(r.step, "end of data");
    EXPECT_EQ(r.text, "ssh: \\x1b[2J; the password was sent and may have been changed");
    EXPECT_TRUE(r.maybe_applied);
}

TEST_F(MemoryEngine, ReplyTextsCarryNoControlOctet) {
    fake::MemoryScript script;
    // A refusal whose text has escapes and a bare CR; and a reply that is
    // not MCTP at all.
    script.bytes = "220 t\r\n250 hi\r\n530 no\x1b]0;pwned\x07\x1b[2J\rforged\x9b" "1m\r\n";
    Result r = run_one(script);
    EXPECT_EQ(r.outcome, Outcome::refused);
    EXPECT_EQ(r.code, 530);
    EXPECT_TRUE(clean_lines(r.text + "\n", 1)) << r.text;
    script.bytes = "\x1b[2J\x07SSH-2.0\r\n";
    r = run_one(script);
    EXPECT_EQ(r.outcome, Outcome::protocol_error);
    EXPECT_EQ(r.text, "not an MCTP reply: '\\x1b[2J\\x07SSH-2.0'");
}

}  // namespace

// ssh reads ssh_config itself: it is checked before anything starts, and
// only when a target uses ssh.
TEST(SshTransport, SshConfigIsChecked) {
    const auto ssh_target = parse_hosts("web1 ssh\n", "hosts", TargetDefaults(4242));
    const auto tcp_target = parse_hosts("web1\n", "hosts", TargetDefaults(4242));
    SshSettings s;
    s.config = "/nonexistent/ssh_config";
    EXPECT_NO_THROW(make_transport(s, TlsSettings{}, tcp_target));  // not read without ssh
    try {
        make_transport(s, TlsSettings{}, ssh_target);
        ADD_FAILURE() << "a missing ssh_config was accepted";
    } catch (const TransportError& e) {
        EXPECT_NE(std::string(e.what()).find("ssh_config: /nonexistent/ssh_config"),
                  std::string::npos)
            << e.what();
    }
    TempFile writable("Host *\n  ProxyCommand /tmp/x\n", 0666);
    s.config = writable.path();
    EXPECT_THROW(make_transport(s, TlsSettings{}, ssh_target), TransportError);
    TempFile good("Host *\n  ServerAliveInterval 5\n", 0644);
    s.config = good.path();
    EXPECT_NO_THROW(make_transport(s, TlsSettings{}, ssh_target));
}

// ssh_command runs as root from setuid passwd: a program that someone
// other than root may change (a group's members, anyone) is refused, as
// are a missing or a non-executable one.
TEST(SshTransport, SshCommandIsChecked) {
    const auto ssh_target = parse_hosts("web1 ssh\n", "hosts", TargetDefaults(4242));
    SshSettings s;
    const auto refused = [&](const std::string& command, const std::string& why) {
        s.command = command;
        try {
            make_transport(s, TlsSettings{}, ssh_target);
            ADD_FAILURE() << command << " was accepted";
        } catch (const TransportError& e) {
            EXPECT_NE(std::string(e.what()).find("ssh_command: " + command + ": " + why),
                      std::string::npos)
                << e.what();
        }
    };
    TempFile program("#!/bin/sh\n", 0755);
    s.command = program.path();
    EXPECT_NO_THROW(make_transport(s, TlsSettings{}, ssh_target));
    refused("/nonexistent/ssh", "cannot run");
    chmod(program.path().c_str(), 0644);
    refused(program.path(), "not executable");
    chmod(program.path().c_str(), 0777);
    refused(program.path(), "writable by other users");
    if (geteuid() == 0) {
        chmod(program.path().c_str(), 0775);
        ASSERT_EQ(chown(program.path().c_str(), 0, 65534), 0);
        refused(program.path(), "writable by its group");
        ASSERT_EQ(chown(program.path().c_str(), 0, 0), 0);  // root's group may
        s.command = program.path();
        EXPECT_NO_THROW(make_transport(s, TlsSettings{}, ssh_target));
    }
}

// A caller's low soft RLIMIT_NOFILE (a user's `ulimit -Sn 16` before
// setuid passwd) is raised for the connections and put back afterwards.
TEST(DescriptorRoom, RaisesTheSoftLimitAndPutsItBack) {
    rlimit saved{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max < 64 * DescriptorRoom::per_connection + DescriptorRoom::reserve) {
        GTEST_SKIP() << "hard RLIMIT_NOFILE " << saved.rlim_max << " is too low for this test";
    }
    const rlimit low{16, saved.rlim_max};
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    {
        const DescriptorRoom room(64);
        EXPECT_EQ(room.parallel(), 64U);
        rlimit now{};
        getrlimit(RLIMIT_NOFILE, &now);
        EXPECT_GE(now.rlim_cur, 64 * DescriptorRoom::per_connection + DescriptorRoom::reserve);
    }
    rlimit after{};
    getrlimit(RLIMIT_NOFILE, &after);
    EXPECT_EQ(after.rlim_cur, 16U);
    setrlimit(RLIMIT_NOFILE, &saved);
}

// Where even the hard limit is low and cannot be raised, fewer targets
// are talked to at once rather than some failing (in a child: a lowered
// hard limit cannot come back without CAP_SYS_RESOURCE).
TEST(DescriptorRoom, LowersParallelToTheHardLimit) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        if (setresuid(65534, 65534, 65534) != 0 && geteuid() == 0) {
            _exit(3);
        }
        const rlimit low{100, 100};
        if (setrlimit(RLIMIT_NOFILE, &low) != 0) {
            _exit(4);
        }
        const DescriptorRoom room(64);
        _exit(room.parallel() == (100 - DescriptorRoom::reserve) / DescriptorRoom::per_connection
                  ? 0
                  : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// parallel = auto asks for room for 1024 targets: a low soft limit is
// raised to it (within the hard limit) and put back afterwards.
TEST(DescriptorRoom, AutoAsksForRoomFor1024) {
    constexpr rlim_t need =
        limits::parallel_auto_want * DescriptorRoom::per_connection + DescriptorRoom::reserve;
    rlimit saved{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    if (saved.rlim_max < need && geteuid() != 0) {
        GTEST_SKIP() << "hard RLIMIT_NOFILE " << saved.rlim_max << " is below " << need
                     << " and this is not root";
    }
    const rlimit low{256, saved.rlim_max};
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    {
        const DescriptorRoom room(limits::parallel_auto);
        EXPECT_EQ(room.parallel(), limits::parallel_auto_want);
        rlimit now{};
        getrlimit(RLIMIT_NOFILE, &now);
        EXPECT_GE(now.rlim_cur, need);
    }
    rlimit after{};
    getrlimit(RLIMIT_NOFILE, &after);
    EXPECT_EQ(after.rlim_cur, 256U);
    EXPECT_EQ(after.rlim_max, saved.rlim_max);
    setrlimit(RLIMIT_NOFILE, &saved);
}

// auto where the hard limit is low and cannot be raised (no
// CAP_SYS_RESOURCE): it takes what fits under the hard limit, and an
// explicit value is still cut to fit; where the process may raise the
// hard limit (root), auto gets its 1024. In children: a lowered hard
// limit cannot come back without CAP_SYS_RESOURCE.
TEST(DescriptorRoom, AutoFallsBackToTheHardLimit) {
    const auto in_child = [](bool drop_root, unsigned parallel, unsigned expected) {
        const pid_t pid = fork();
        if (pid == 0) {
            const rlimit low{64, 300};
            if (setrlimit(RLIMIT_NOFILE, &low) != 0) {
                _exit(4);
            }
            if (drop_root && setresuid(65534, 65534, 65534) != 0 && geteuid() == 0) {
                _exit(3);
            }
            const DescriptorRoom room(parallel);
            rlimit now{};
            getrlimit(RLIMIT_NOFILE, &now);
            const bool fits = now.rlim_cur >= room.parallel() * DescriptorRoom::per_connection +
                                                  DescriptorRoom::reserve;
            _exit(room.parallel() == expected && fits ? 0 : 1);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
            return -1;
        }
        return WEXITSTATUS(status);
    };
    constexpr unsigned under_300 = (300 - DescriptorRoom::reserve) / DescriptorRoom::per_connection;
    EXPECT_EQ(in_child(true, limits::parallel_auto, under_300), 0);
    EXPECT_EQ(in_child(true, 500, under_300), 0);
    EXPECT_EQ(in_child(true, 20, 20), 0);
    // Without dropping anything: the 1024 where the hard limit may be
    // raised (CAP_SYS_RESOURCE, as in setuid passwd), else the fallback.
    const pid_t probe = fork();
    ASSERT_GE(probe, 0);
    if (probe == 0) {
        const rlimit low{64, 300};
        const rlimit high{2112, 2112};
        _exit(setrlimit(RLIMIT_NOFILE, &low) == 0 && setrlimit(RLIMIT_NOFILE, &high) == 0 ? 0
                                                                                          : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(probe, &status, 0), probe);
    const bool may_raise = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::printf("  hard limit may be raised here: %s\n", may_raise ? "yes" : "no");
    EXPECT_EQ(in_child(false, limits::parallel_auto,
                       may_raise ? limits::parallel_auto_want : under_300),
              0);
}

// ---- two phases: TEST on every target, then CHPW only if all accepted ----

struct TwoPhase : ::testing::Test {
    mctp::Secret secret{"test-secret-1"};
    mctp::Secret password{"New-Pw-1"};
    std::string written;
    std::vector<Result> seen;
    // Job::before_change: how often, what had been written by then, and
    // whether it throws (as a journal that cannot record the change does).
    int before_change_calls = 0;
    std::string written_before_change;
    bool before_change_throws = false;
    std::vector<Result> run_all(const std::vector<fake::MemoryScript>& scripts,
                                bool best_effort = false) {
        EngineSettings s;
        s.helo_name = "ctl";
        s.secret = &secret;
        // One transport per target: a target's index picks its script.
        struct PerTarget final : Transport {
            const std::vector<fake::MemoryScript>* scripts;
            std::vector<std::unique_ptr<fake::MemoryTransport>> each;
            asio::awaitable<std::unique_ptr<Stream>> connect(const Target& t) override {
                co_return co_await each.at(t.port - 1)->connect(t);
            }
        } transport;
        for (const auto& sc : scripts) {
            transport.each.push_back(std::make_unique<fake::MemoryTransport>(sc));
        }
        std::vector<Target> targets;
        for (std::size_t i = 0; i < scripts.size(); ++i) {
            Target t{"h", static_cast<std::uint16_t>(i + 1), "test"};
            t.auth_plain = true;
            targets.push_back(t);
        }
        Job job{Action::change, "alice", &password, best_effort};
        const auto all_written = [&transport] {
            std::string out;
            for (const auto& t : transport.each) {
                out += t->written() + "|";
            }
            return out;
        };
        before_change_calls = 0;
        job.before_change = [&] {
            ++before_change_calls;
            written_before_change = all_written();
            if (before_change_throws) {
                throw std::runtime_error("the journal cannot take it");
            }
        };
        seen.assign(scripts.size(), Result{});
        std::vector<Result> results;
        try {
            results = run(targets, s, job, transport,
                          [&](std::size_t i, const Result& r) { seen.at(i) = r; });
        } catch (...) {
            written = all_written();
            throw;
        }
        written = all_written();
        return results;
    }
    static fake::MemoryScript script(std::string ehlo_extra, std::string last) {
        fake::MemoryScript sc;
        sc.bytes = "220 t\r\n250-t hi\r\n" + ehlo_extra + "250 LINEMAX 128\r\n250 ok\r\n250 ok\r\n"
                   "354 go\r\n355 ok\r\n" + last + "221 bye\r\n";
        return sc;
    }
};

TEST_F(TwoPhase, ARefusalInTestSendsNoChangeAnywhere) {
    const auto results = run_all({script("250-TEST\r\n", "250 acceptable\r\n"),
                                  script("250-TEST\r\n", "554 BAD PASSWORD: too short\r\n")});
    ASSERT_EQ(results.size(), 2U);
    EXPECT_EQ(results[1].outcome, Outcome::refused);
    EXPECT_EQ(results[1].code, 554);
    EXPECT_EQ(results[1].text, "BAD PASSWORD: too short");
    EXPECT_EQ(results[1].step, "TEST");
    EXPECT_EQ(results[1].phase, "test");
    EXPECT_EQ(results[0].outcome, Outcome::skipped);
    EXPECT_EQ(results[0].phase, "test");
    EXPECT_EQ(seen[0].outcome, Outcome::skipped);
    EXPECT_EQ(seen[1].outcome, Outcome::refused);
    EXPECT_NE(written.find("TEST alice\r\n"), std::string::npos) << written;
    EXPECT_EQ(written.find("CHPW"), std::string::npos) << written;
    EXPECT_EQ(before_change_calls, 0) << "no change went out";
}

TEST_F(TwoPhase, EveryTargetAcceptingGetsTheChange) {
    const auto results = run_all({script("250-TEST\r\n", "250 ok\r\n"),
                                  script("250-TEST\r\n", "250 ok\r\n")});
    for (const auto& r : results) {
        EXPECT_EQ(r.outcome, Outcome::ok) << r.text;
        EXPECT_EQ(r.phase, "change");
    }
    EXPECT_EQ(seen[0].phase, "change");
    // Each target: TEST first, then CHPW.
    const auto first = written.find("TEST alice");
    const auto chpw = written.find("CHPW alice");
    ASSERT_NE(first, std::string::npos) << written;
    ASSERT_NE(chpw, std::string::npos) << written;
    EXPECT_LT(first, chpw);
    // The journal hears of the change once, after every TEST, before any CHPW.
    EXPECT_EQ(before_change_calls, 1);
    EXPECT_NE(written_before_change.find("TEST alice"), std::string::npos);
    EXPECT_EQ(written_before_change.find("CHPW"), std::string::npos) << written_before_change;
    // When it throws, the run ends there: no CHPW anywhere.
    before_change_throws = true;
    EXPECT_THROW(run_all({script("250-TEST\r\n", "250 ok\r\n"),
                          script("250-TEST\r\n", "250 ok\r\n")}),
                 std::runtime_error);
    EXPECT_EQ(written.find("CHPW"), std::string::npos) << written;
}

TEST_F(TwoPhase, ATargetWithoutTestIsUnsupportedUnlessBestEffort) {
    auto results = run_all({script("250-TEST\r\n", "250 ok\r\n"), script("", "250 ok\r\n")});
    EXPECT_EQ(results[1].outcome, Outcome::unsupported);
    EXPECT_EQ(results[1].step, "EHLO");
    EXPECT_NE(results[1].text.find("does not announce TEST"), std::string::npos);
    EXPECT_EQ(results[0].outcome, Outcome::skipped);
    EXPECT_EQ(written.find("CHPW"), std::string::npos) << written;
    // The old target got nothing but EHLO and QUIT.
    const auto old = written.substr(written.find('|') + 1);
    EXPECT_EQ(old.find("New-Pw-1"), std::string::npos) << old;
    // Best effort: no TEST, CHPW everywhere, today's behaviour.
    results = run_all({script("250-TEST\r\n", "250 ok\r\n"), script("", "250 ok\r\n")}, true);
    for (const auto& r : results) {
        EXPECT_EQ(r.outcome, Outcome::ok) << r.text;
        EXPECT_EQ(r.phase, "change");
    }
    EXPECT_EQ(written.find("TEST alice"), std::string::npos) << written;
    EXPECT_EQ(before_change_calls, 1);
    EXPECT_EQ(written_before_change, "||");
}
