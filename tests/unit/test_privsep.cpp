// The privileged half of mpasswdd's privilege separation, driven by a
// hostile child: a socketpair, the monitor in a thread with a fake Host
// behind it, and raw messages written to the child's end.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "privsep.hpp"
#include "sandbox.hpp"
#include "fake_scram.hpp"
#include "scram.hpp"

namespace {

using mpasswdd::Clock;
using mpasswdd::privsep::Message;
using mpasswdd::privsep::MonitorEnd;
using mpasswdd::privsep::Received;
using mpasswdd::privsep::Type;
using std::chrono::milliseconds;

class FakeHost final : public mctp::Host {
public:
    mctp::AuthResult authenticate(const mctp::Secret& secret) override {
        ++auths;
        if (secret.view() == "good-secret-1") {
            return {mctp::AuthResult::Kind::accepted, "ctl"};
        }
        return {};
    }
    mctp::UserVerdict check_user(std::string_view controller, std::string_view user) override {
        checked.push_back(std::string(controller) + ":" + std::string(user));
        if (user == "ghost") {
            return mctp::UserVerdict::unknown;
        }
        return user == "alice" ? mctp::UserVerdict::allowed : mctp::UserVerdict::forbidden;
    }
    mctp::ChangeResult change_password(std::string_view user, std::string_view helo,
                                       const mctp::Secret& password) override {
        changes.push_back(std::string(user) + "@" + std::string(helo) + "=" +
                          std::string(password.view()));
        return {mctp::ChangeResult::Kind::changed, ""};
    }
    mctp::ChangeResult test_password(std::string_view user, std::string_view helo,
                                     const mctp::Secret& password) override {
        tests.push_back(std::string(user) + "@" + std::string(helo) + "=" +
                        std::string(password.view()));
        return {mctp::ChangeResult::Kind::refused, "too short"};
    }
    // The monitor's own record ("monitor: ...") apart from the lines it
    // relays for the child.
    void log(mctp::LogLevel, std::string_view message) override {
        (message.starts_with("monitor: ") ? own : lines).emplace_back(message);
    }
    // SCRAM for controller "ctl", whose secret is good-secret-1.
    mctp::ScramResult scram_first(std::string_view client_first) override {
        ++scram_firsts;
        return scram.first(client_first, "good-secret-1");
    }
    mctp::ScramResult scram_final(std::string_view client_final) override {
        ++scram_finals;
        return scram.final(client_final);
    }

    // The account operations: what controller "ctl" may use, and a record.
    unsigned operations(std::string_view controller) override {
        operations_asked.emplace_back(controller);
        return allowed;
    }
    mctp::AccountResult account(mctp::AccountOp op, std::string_view user) override {
        accounts.push_back(std::to_string(static_cast<int>(op)) + ":" + std::string(user));
        return {mctp::AccountResult::Kind::done, "kept"};
    }
    mctp::AccountResult check_password(std::string_view user,
                                       const mctp::Secret& password) override {
        account_checks.push_back(std::string(user) + "=" + std::string(password.view()));
        return {password.view() == "Current-Passw0rd" ? mctp::AccountResult::Kind::done
                                                      : mctp::AccountResult::Kind::mismatch,
                ""};
    }
    unsigned allowed = mctp::all_operations;
    std::vector<std::string> operations_asked;
    std::vector<std::string> accounts;
    std::vector<std::string> account_checks;

    FakeScram scram;
    unsigned scram_firsts = 0;
    unsigned scram_finals = 0;
    unsigned auths = 0;
    std::vector<std::string> checked;
    std::vector<std::string> changes;
    std::vector<std::string> tests;
    std::vector<std::string> lines;
    std::vector<std::string> own;
};

// The monitor on one end of a socketpair, in a thread; the test is the
// child on the other end.
class Monitor {
public:
    explicit Monitor(mctp::PeerVerdict verdict = mctp::PeerVerdict::accepted,
                     milliseconds deadline = milliseconds(10'000)) {
        EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds_), 0);
        settings_.max_auth_failures = 2;
        settings_.auth_failure_delay = milliseconds(150);
        settings_.line_max = 128;
        const auto until = Clock::now() + deadline;
        end_ = std::async(std::launch::async, [this, verdict, until] {
            const mpasswdd::privsep::MonitorBackend backend{
                host,
                [verdict](const std::string& subject, const std::string&, const std::string&) {
                    return subject == "CN=intruder" ? mctp::PeerVerdict::rejected : verdict;
                },
                [this](std::string_view e) { errors.emplace_back(e); }};
            const MonitorEnd end = mpasswdd::privsep::serve(fds_[0], backend, settings_, until);
            close(fds_[0]);
            return end;
        });
    }
    ~Monitor() {
        if (fds_[1] >= 0) {
            close(fds_[1]);
        }
        if (end_.valid()) {
            end_.wait();
        }
    }
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;

    // Raw octets as one message.
    void raw(const std::string& octets) const {
        ASSERT_EQ(send(fds_[1], octets.data(), octets.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(octets.size()));
    }
    void put(const Message& m) const { ASSERT_TRUE(mpasswdd::privsep::send(fds_[1], m)); }
    // The reply to m, which must be of type t.
    void ask(const Message& m, Type t, Message* reply) const {
        put(m);
        std::string why;
        ASSERT_EQ(mpasswdd::privsep::receive(fds_[1], reply, Clock::now() + milliseconds(5000),
                                             &why),
                  Received::ok)
            << why;
        ASSERT_EQ(reply->type(), t);
    }
    [[nodiscard]] int child_fd() const { return fds_[1]; }
    void hang_up() {
        close(fds_[1]);
        fds_[1] = -1;
    }
    MonitorEnd end() {
        EXPECT_EQ(end_.wait_for(std::chrono::seconds(5)), std::future_status::ready);
        return end_.get();
    }
    [[nodiscard]] std::string all_errors() const {
        std::string s;
        for (const auto& e : errors) {
            s += e + "\n";
        }
        return s;
    }

    FakeHost host;
    std::vector<std::string> errors;

private:
    int fds_[2] = {-1, -1};
    mpasswdd::privsep::MonitorSettings settings_;
    std::future<MonitorEnd> end_;
};

std::uint8_t start(const Monitor& mon, const std::string& subject = "") {
    Message m(Type::start);
    m.put_str(subject);
    m.put_str("");
    m.put_str("");
    Message r;
    mon.ask(m, Type::verdict, &r);
    std::uint8_t v = 99;
    EXPECT_TRUE(r.get_u8(&v) && r.at_end());
    return v;
}

std::pair<std::uint8_t, std::string> auth(const Monitor& mon, const std::string& secret) {
    Message m(Type::auth);
    m.put_str(secret);
    Message r;
    mon.ask(m, Type::auth_reply, &r);
    std::uint8_t kind = 99;
    std::string controller;
    EXPECT_TRUE(r.get_u8(&kind) && r.get_str(64, &controller) && r.at_end());
    return {kind, controller};
}

std::unique_ptr<Message> change(const std::string& user,
                                const std::string& password = "New-Passw0rd-1",
                                Type type = Type::change) {
    auto m = std::make_unique<Message>(type);
    m->put_str(user);
    m->put_str("ctl.example");
    m->put_str(password);
    return m;
}

std::string header(std::uint8_t version, std::uint8_t type, std::uint16_t flags,
                   std::uint32_t length) {
    std::string h(8, '\0');
    h[0] = static_cast<char>(version);
    h[1] = static_cast<char>(type);
    std::memcpy(h.data() + 2, &flags, 2);
    std::memcpy(h.data() + 4, &length, 4);
    return h;
}

std::string str(const std::string& s) {
    const auto n = static_cast<std::uint16_t>(s.size());
    return std::string(reinterpret_cast<const char*>(&n), 2) + s;
}

// One SCRAM step through the monitor: the reply's kind, message and
// controller.
struct ScramStep {
    std::uint8_t kind = 99;
    std::string message;
    std::string controller;
};

ScramStep scram_step(const Monitor& mon, Type type, const std::string& body) {
    Message m(type);
    m.put_str(body);
    Message r;
    const bool final = type == Type::scram_final;
    mon.ask(m, final ? Type::scram_final_reply : Type::scram_first_reply, &r);
    ScramStep out;
    EXPECT_TRUE(r.get_u8(&out.kind) && r.get_str(2048, &out.message) &&
                (!final || r.get_str(64, &out.controller)) && r.at_end());
    return out;
}

constexpr auto scram_next = static_cast<std::uint8_t>(mctp::ScramResult::Kind::next);
constexpr auto scram_rejected = static_cast<std::uint8_t>(mctp::ScramResult::Kind::rejected);

std::uint8_t check(const Monitor& mon, const std::string& user) {
    Message q(Type::check_user);
    q.put_str(user);
    Message r;
    mon.ask(q, Type::user_reply, &r);
    std::uint8_t v = 99;
    EXPECT_TRUE(r.get_u8(&v) && r.at_end());
    return v;
}

TEST(Privsep, ScramThroughTheMonitor) {
    Monitor mon;
    start(mon);
    mctp::scram::Client client("ctl");
    const auto first = scram_step(mon, Type::scram_first, client.first());
    ASSERT_EQ(first.kind, scram_next);
    std::string why;
    const auto final = client.final(first.message, "good-secret-1", &why);
    ASSERT_TRUE(final) << why;
    const auto last = scram_step(mon, Type::scram_final, *final);
    ASSERT_EQ(last.kind, scram_next);
    EXPECT_EQ(last.controller, "ctl");
    EXPECT_TRUE(client.verify(last.message, &why)) << why;
    // The controller is recorded: the child may ask about users now.
    EXPECT_EQ(check(mon, "alice"), static_cast<std::uint8_t>(mctp::UserVerdict::allowed));
    EXPECT_EQ(mon.host.checked, std::vector<std::string>{"ctl:alice"});
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_TRUE(mon.errors.empty()) << mon.all_errors();
}

TEST(Privsep, AWrongScramProofIsAFailureAfterTheDelayAndRecordsNoOne) {
    Monitor mon;
    start(mon);
    mctp::scram::Client client("ctl");
    const auto first = scram_step(mon, Type::scram_first, client.first());
    ASSERT_EQ(first.kind, scram_next);
    std::string why;
    const auto final = client.final(first.message, "wrong-secret-1", &why);
    ASSERT_TRUE(final) << why;
    const auto before = Clock::now();
    const auto last = scram_step(mon, Type::scram_final, *final);
    EXPECT_GE(Clock::now() - before, milliseconds(150));
    EXPECT_EQ(last.kind, scram_rejected);
    EXPECT_TRUE(last.message.empty());
    EXPECT_TRUE(last.controller.empty());
    // No controller: asking about a user is a violation.
    Message q(Type::check_user);
    q.put_str("alice");
    mon.put(q);
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_TRUE(mon.host.checked.empty());
}

TEST(Privsep, ScramFailuresCountTowardsTheLimit) {
    Monitor mon;  // max_auth_failures = 2
    start(mon);
    for (int i = 0; i < 2; ++i) {
        mctp::scram::Client client("ctl");
        const auto first = scram_step(mon, Type::scram_first, client.first());
        ASSERT_EQ(first.kind, scram_next);
        std::string why;
        const auto final = client.final(first.message, "wrong-secret-1", &why);
        EXPECT_EQ(scram_step(mon, Type::scram_final, *final).kind, scram_rejected);
    }
    mctp::scram::Client client("ctl");
    Message m(Type::scram_first);
    m.put_str(client.first());
    mon.put(m);
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_NE(mon.all_errors().find("after max_auth_failures (2) failures"), std::string::npos)
        << mon.all_errors();
    EXPECT_EQ(mon.host.scram_firsts, 2U);
}

TEST(Privsep, AHostileChildCannotSendScramOutOfOrder) {
    const auto valid_final = [](const Monitor& mon) {
        mctp::scram::Client client("ctl");
        const auto first = scram_step(mon, Type::scram_first, client.first());
        std::string why;
        return *client.final(first.message, "good-secret-1", &why);
    };
    {  // SCRAM_FINAL before any SCRAM_FIRST
        Monitor mon;
        start(mon);
        Message m(Type::scram_final);
        m.put_str("c=biws,r=abc,p=AAAA");
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_NE(mon.all_errors().find("SCRAM_FINAL without a SCRAM exchange"),
                  std::string::npos);
        EXPECT_EQ(mon.host.scram_finals, 0U);
    }
    {  // SCRAM_FINAL twice
        Monitor mon;
        start(mon);
        const std::string f = valid_final(mon);
        EXPECT_EQ(scram_step(mon, Type::scram_final, f).kind, scram_next);
        Message m(Type::scram_final);
        m.put_str(f);
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_EQ(mon.host.scram_finals, 1U);
    }
    {  // SCRAM_FIRST before START
        Monitor mon;
        Message m(Type::scram_first);
        m.put_str("n,,n=ctl,r=abcdefabcdefabcdefabcdef");
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_EQ(mon.host.scram_firsts, 0U);
    }
    {  // for a refused peer
        Monitor mon(mctp::PeerVerdict::rejected);
        start(mon);
        Message m(Type::scram_first);
        m.put_str("n,,n=ctl,r=abcdefabcdefabcdefabcdef");
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_EQ(mon.host.scram_firsts, 0U);
    }
}

TEST(Privsep, OversizedOrEmptyScramMessagesEndTheSession) {
    const auto sized = [](std::uint8_t type, const std::string& body) {
        return header(1, type, 0, static_cast<std::uint32_t>(body.size())) + body;
    };
    const std::vector<std::pair<std::string, std::string>> cases{
        {"first over 1024", sized(11, str("n,,n=ctl,r=" + std::string(1014, 'a')))},
        {"first empty", sized(11, str(""))},
        {"first trailing", sized(11, str("n,,n=ctl,r=abc") + "x")},
        {"START with a short binding", sized(2, str("") + str("") + str("0123456789"))},
    };
    for (const auto& [name, octets] : cases) {
        Monitor mon;
        if (name.rfind("START", 0) != 0) {
            start(mon);
        }
        mon.raw(octets);
        EXPECT_EQ(mon.end(), MonitorEnd::violation) << name;
        EXPECT_EQ(mon.host.scram_firsts, 0U) << name;
    }
    // Exactly 1024 is allowed (the server-first message is longer).
    Monitor mon;
    start(mon);
    EXPECT_EQ(scram_step(mon, Type::scram_first, "n,,n=ctl,r=" + std::string(1013, 'a')).kind,
              scram_next);
    EXPECT_EQ(mon.host.scram_firsts, 1U);
}

TEST(Privsep, ASoundChildGetsItsAnswers) {
    Monitor mon;
    EXPECT_EQ(start(mon), static_cast<std::uint8_t>(mctp::PeerVerdict::accepted));
    const auto before = Clock::now();
    const auto bad = auth(mon, "wrong-secret-1");
    // The parent waits before answering a failed AUTH, whatever the child does.
    EXPECT_GE(Clock::now() - before, milliseconds(150));
    EXPECT_EQ(bad.first, static_cast<std::uint8_t>(mctp::AuthResult::Kind::rejected));
    EXPECT_EQ(auth(mon, "good-secret-1"),
              std::make_pair(static_cast<std::uint8_t>(mctp::AuthResult::Kind::accepted),
                             std::string("ctl")));
    Message q(Type::check_user);
    q.put_str("alice");
    Message r;
    mon.ask(q, Type::user_reply, &r);
    std::uint8_t v = 99;
    EXPECT_TRUE(r.get_u8(&v) && r.at_end());
    EXPECT_EQ(v, static_cast<std::uint8_t>(mctp::UserVerdict::allowed));
    Message cr;
    mon.ask(*change("alice"), Type::change_reply, &cr);
    std::uint8_t kind = 99;
    std::string text;
    EXPECT_TRUE(cr.get_u8(&kind) && cr.get_str(4096, &text) && cr.at_end());
    EXPECT_EQ(kind, static_cast<std::uint8_t>(mctp::ChangeResult::Kind::changed));
    Message log(Type::log);
    log.put_u8(static_cast<std::uint8_t>(mctp::LogLevel::info));
    log.put_str("HELO ctl.example");
    mon.put(log);
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_EQ(mon.host.changes, std::vector<std::string>{"alice@ctl.example=New-Passw0rd-1"});
    // The controller is the parent's own record, for both checks.
    EXPECT_EQ(mon.host.checked, (std::vector<std::string>{"ctl:alice", "ctl:alice"}));
    EXPECT_EQ(mon.host.lines, std::vector<std::string>{"HELO ctl.example"});
    EXPECT_TRUE(mon.errors.empty()) << mon.all_errors();
}

TEST(Privsep, ChangeBeforeAuthEndsTheSessionAndChangesNothing) {
    Monitor mon;
    start(mon);
    EXPECT_EQ(auth(mon, "wrong-secret-1").first,
              static_cast<std::uint8_t>(mctp::AuthResult::Kind::rejected));
    mon.put(*change("alice"));
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_TRUE(mon.host.changes.empty());
    EXPECT_NE(mon.all_errors().find("asked to change the password of alice before a "
                                    "successful AUTH"),
              std::string::npos)
        << mon.all_errors();
}

TEST(Privsep, CheckUserBeforeAuthEndsTheSession) {
    Monitor mon;
    start(mon);
    Message q(Type::check_user);
    q.put_str("alice");
    mon.put(q);
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_TRUE(mon.host.checked.empty());
}

TEST(Privsep, ChangeBeforeStartEndsTheSession) {
    Monitor mon;
    mon.put(*change("alice"));
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_TRUE(mon.host.changes.empty());
}

TEST(Privsep, AUserTheControllerMayNotManageIsRefused) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    for (const auto& [user, expected] :
         {std::pair{"bob", mctp::ChangeResult::Kind::forbidden},
          std::pair{"ghost", mctp::ChangeResult::Kind::unknown}}) {
        Message r;
        mon.ask(*change(user), Type::change_reply, &r);
        std::uint8_t kind = 99;
        std::string text;
        EXPECT_TRUE(r.get_u8(&kind) && r.get_str(4096, &text) && r.at_end());
        EXPECT_EQ(kind, static_cast<std::uint8_t>(expected)) << user;
    }
    Message q(Type::check_user);
    q.put_str("bob");
    Message r;
    mon.ask(q, Type::user_reply, &r);
    std::uint8_t v = 99;
    EXPECT_TRUE(r.get_u8(&v));
    EXPECT_EQ(v, static_cast<std::uint8_t>(mctp::UserVerdict::forbidden));
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_TRUE(mon.host.changes.empty());
    EXPECT_NE(mon.all_errors().find("change the password of bob, whom controller ctl may not "
                                    "manage; refused"),
              std::string::npos)
        << mon.all_errors();
}

std::unique_ptr<Message> test_request(const std::string& user) {
    return change(user, "Test-Passw0rd-1", Type::test);
}

TEST(Privsep, TestGoesToTheCheckAndChangesNothing) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    Message r;
    mon.ask(*test_request("alice"), Type::test_reply, &r);
    std::uint8_t kind = 99;
    std::string text;
    EXPECT_TRUE(r.get_u8(&kind) && r.get_str(4096, &text) && r.at_end());
    EXPECT_EQ(kind, static_cast<std::uint8_t>(mctp::ChangeResult::Kind::refused));
    EXPECT_EQ(text, "too short");
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_EQ(mon.host.tests, std::vector<std::string>{"alice@ctl.example=Test-Passw0rd-1"});
    EXPECT_TRUE(mon.host.changes.empty());
    // The user policy is asked again by the parent.
    EXPECT_EQ(mon.host.checked, std::vector<std::string>{"ctl:alice"});
    ASSERT_FALSE(mon.host.own.empty());
    EXPECT_EQ(mon.host.own.back(), "monitor: test for alice for controller ctl: not acceptable");
    EXPECT_EQ(mon.all_errors().find("Test-Passw0rd-1"), std::string::npos);
    EXPECT_TRUE(mon.errors.empty()) << mon.all_errors();
}

TEST(Privsep, TestBeforeAuthEndsTheSessionAndTestsNothing) {
    Monitor mon;
    start(mon);
    mon.put(*test_request("alice"));
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_TRUE(mon.host.tests.empty());
    EXPECT_NE(mon.all_errors().find("asked to test a password for alice before a successful AUTH"),
              std::string::npos)
        << mon.all_errors();
}

TEST(Privsep, TestForAUserTheControllerMayNotManageIsRefused) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    for (const auto& [user, expected] :
         {std::pair{"bob", mctp::ChangeResult::Kind::forbidden},
          std::pair{"ghost", mctp::ChangeResult::Kind::unknown}}) {
        Message r;
        mon.ask(*test_request(user), Type::test_reply, &r);
        std::uint8_t kind = 99;
        std::string text;
        EXPECT_TRUE(r.get_u8(&kind) && r.get_str(4096, &text) && r.at_end());
        EXPECT_EQ(kind, static_cast<std::uint8_t>(expected)) << user;
    }
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_TRUE(mon.host.tests.empty());
    EXPECT_NE(mon.all_errors().find("test a password for bob, whom controller ctl may not "
                                    "manage; refused"),
              std::string::npos)
        << mon.all_errors();
}

TEST(Privsep, AMalformedTestEndsTheSession) {
    for (const std::string& pw : {std::string(), std::string("bad\npw")}) {
        Monitor mon;
        start(mon);
        auth(mon, "good-secret-1");
        mon.put(*change("alice", pw, Type::test));
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_TRUE(mon.host.tests.empty());
        EXPECT_NE(mon.all_errors().find("sent a malformed TEST"), std::string::npos)
            << mon.all_errors();
    }
}

TEST(Privsep, NoMoreAuthAfterTheLimitOrForARefusedPeer) {
    {
        Monitor mon;
        start(mon);
        auth(mon, "wrong-secret-1");
        auth(mon, "wrong-secret-2");
        Message m(Type::auth);
        m.put_str("good-secret-1");
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_EQ(mon.host.auths, 2U);
        EXPECT_NE(mon.all_errors().find("after max_auth_failures (2) failures"),
                  std::string::npos);
    }
    {
        Monitor mon;
        EXPECT_EQ(start(mon, "CN=intruder"),
                  static_cast<std::uint8_t>(mctp::PeerVerdict::rejected));
        Message m(Type::auth);
        m.put_str("good-secret-1");
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_EQ(mon.host.auths, 0U);
    }
    {
        Monitor mon;
        start(mon);
        Message m(Type::start);
        m.put_str("");
        m.put_str("");
        m.put_str("");
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_NE(mon.all_errors().find("START twice"), std::string::npos);
    }
}

// Every malformed message ends the session, is logged, and changes nothing.
TEST(Privsep, MalformedMessagesEndTheSession) {
    const std::string auth_body = str("good-secret-1");
    const std::string change_body = str("alice") + str("ctl") + str("New-Passw0rd-1");
    const auto sized = [](std::uint8_t type, const std::string& body) {
        return header(1, type, 0, static_cast<std::uint32_t>(body.size())) + body;
    };
    const std::vector<std::pair<std::string, std::string>> cases{
        {"wrong version", header(2, 8, 0, static_cast<std::uint32_t>(change_body.size())) +
                              change_body},
        {"flags set", header(1, 8, 1, static_cast<std::uint32_t>(change_body.size())) +
                          change_body},
        {"bad type", sized(99, change_body)},
        {"a reply type", sized(9, change_body)},
        {"a HELLO", sized(1, change_body)},
        {"length too long", header(1, 8, 0, 1000) + change_body},
        {"length too short", header(1, 8, 0, 3) + change_body},
        {"oversized", sized(8, change_body + std::string(9000, 'x'))},
        {"shorter than a header", std::string("\x01\x08\x00", 3)},
        {"truncated field", sized(8, str("alice") + str("ctl") + std::string("\x40\x00pw", 4))},
        {"missing field", sized(8, str("alice") + str("ctl"))},
        {"trailing octets", sized(8, change_body + "x")},
        {"bad user name", sized(8, str("al ice") + str("ctl") + str("New-Passw0rd-1"))},
        {"bad HELO name", sized(8, str("alice") + str("ctl/x") + str("New-Passw0rd-1"))},
        {"control octet in password", sized(8, str("alice") + str("ctl") + str("New\nPass"))},
        {"password over line_max", sized(8, str("alice") + str("ctl") + str(std::string(200, 'p')))},
        {"log text not printable", sized(10, std::string(1, '\1') + str("a\x1b[2J"))},
        {"log level", sized(10, std::string(1, '\7') + str("hello"))},
        {"secret with a space", sized(4, str("good secret"))},
    };
    for (const auto& [name, octets] : cases) {
        Monitor mon;
        start(mon);
        auth(mon, "good-secret-1");
        mon.raw(octets);
        EXPECT_EQ(mon.end(), MonitorEnd::violation) << name;
        EXPECT_TRUE(mon.host.changes.empty()) << name;
        EXPECT_NE(mon.all_errors().find("privsep: the network child "), std::string::npos)
            << name;
        EXPECT_TRUE(mon.host.lines.empty()) << name;
    }
    // The same octets, well formed, do change: the cases above fail for
    // the reason named.
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    mon.raw(sized(8, change_body));
    Message r;
    std::string why;
    EXPECT_EQ(mpasswdd::privsep::receive(mon.child_fd(), &r, Clock::now() + milliseconds(5000),
                                         &why),
              Received::ok);
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_EQ(mon.host.changes, std::vector<std::string>{"alice@ctl=New-Passw0rd-1"});
}

TEST(Privsep, TheParentEndsASessionPastItsDeadline) {
    Monitor mon(mctp::PeerVerdict::accepted, milliseconds(200));
    start(mon);
    EXPECT_EQ(mon.end(), MonitorEnd::timeout);
    EXPECT_NE(mon.all_errors().find("outlived session_timeout"), std::string::npos);
}

TEST(Privsep, HelloRoundTripAndBounds) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
    mpasswdd::privsep::Hello h;
    h.change_ids = true;
    h.uid = 65534;
    h.gid = 65534;
    h.root = "/usr/share/mpasswdd/empty";
    h.host_name = "t1.example";
    h.peer = "192.0.2.1";
    h.line_max = 512;
    h.max_auth_failures = 5;
    h.tls = true;
    h.tls_certificate = "/etc/mpasswd/cert.pem";
    h.tls_key = "/etc/mpasswd/key.pem";
    ASSERT_TRUE(mpasswdd::privsep::send_hello(fds[0], h));
    Message m;
    std::string why;
    ASSERT_EQ(mpasswdd::privsep::receive(fds[1], &m, Clock::now() + milliseconds(1000), &why),
              Received::ok);
    mpasswdd::privsep::Hello got;
    ASSERT_TRUE(mpasswdd::privsep::parse_hello(m, &got, &why)) << why;
    EXPECT_TRUE(got.change_ids);
    EXPECT_EQ(got.uid, 65534U);
    EXPECT_EQ(got.root, h.root);
    EXPECT_EQ(got.host_name, h.host_name);
    EXPECT_EQ(got.peer, h.peer);
    EXPECT_EQ(got.line_max, 512U);
    EXPECT_EQ(got.max_auth_failures, 5U);
    EXPECT_TRUE(got.tls);
    EXPECT_EQ(got.tls_key, h.tls_key);
    EXPECT_EQ(got.tls_client_ca, "");

    h.line_max = 5;  // below line_max_min
    ASSERT_TRUE(mpasswdd::privsep::send_hello(fds[0], h));
    Message bad;
    ASSERT_EQ(mpasswdd::privsep::receive(fds[1], &bad, Clock::now() + milliseconds(1000), &why),
              Received::ok);
    EXPECT_FALSE(mpasswdd::privsep::parse_hello(bad, &got, &why));
    close(fds[0]);
    close(fds[1]);
}

// A message never grows past message_max; such a message is not sent.
TEST(Privsep, MessagesAreBounded) {
    Message m(Type::log);
    m.put_u8(1);
    m.put_str(std::string(mpasswdd::privsep::message_max, 'x'));
    EXPECT_FALSE(m.fits());
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
    EXPECT_FALSE(mpasswdd::privsep::send(fds[0], m));
    close(fds[0]);
    close(fds[1]);
}

}  // namespace

// The confined child may set its descriptors' flags, but not signal-driven
// I/O: with F_SETOWN or O_ASYNC it could have the kernel send SIGKILL to
// any process of its uid whenever its peer sends an octet.
TEST(Sandbox, FcntlIsLimitedToFlags) {
    const auto confined = [](int (*probe)(int fd)) {
        const pid_t pid = fork();
        if (pid == 0) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
                _exit(90);
            }
            try {
                mpasswdd::confine(mpasswdd::Jail{}, getppid());
            } catch (...) {
                _exit(91);
            }
            _exit(probe(sv[0]));
        }
        int status = 0;
        waitpid(pid, &status, 0);
        return status;
    };
    const int flags = confined([](int fd) {
        const int f = fcntl(fd, F_GETFL);
        return f >= 0 && fcntl(fd, F_SETFL, f | O_NONBLOCK) == 0 &&
                       fcntl(fd, F_SETFD, FD_CLOEXEC) == 0
                   ? 0
                   : 1;
    });
    ASSERT_TRUE(WIFEXITED(flags)) << flags;
    EXPECT_EQ(WEXITSTATUS(flags), 0);
    for (const auto probe : {+[](int fd) { return fcntl(fd, F_SETOWN, getpid()) == 0 ? 2 : 3; },
                             +[](int fd) { return fcntl(fd, F_SETFL, O_ASYNC) == 0 ? 2 : 3; },
                             +[](int fd) { return fcntl(fd, F_SETSIG, SIGKILL) == 0 ? 2 : 3; }}) {
        const int status = confined(probe);
        EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) << status;
    }
}

namespace {
std::unique_ptr<Message> check_user_message(const std::string& user) {
    auto m = std::make_unique<Message>(Type::check_user);
    m->put_str(user);
    return m;
}
}  // namespace

// A child that stops reading its replies fills its socket buffer: the
// monitor must end the session, not block in send() past every deadline.
TEST(Privsep, AChildThatDoesNotReadCannotHoldTheMonitor) {
    Monitor mon;
    start(mon);
    ASSERT_EQ(auth(mon, "good-secret-1").first,
              static_cast<std::uint8_t>(mctp::AuthResult::Kind::accepted));
    // Requests for three seconds at most, none of whose replies is read.
    const auto ask = check_user_message("alice");
    const auto until = Clock::now() + std::chrono::seconds(3);
    while (Clock::now() < until) {
        if (send(mon.child_fd(), ask->wire().data(), ask->wire().size(),
                 MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            if (errno != EAGAIN) {
                break;  // the monitor ended
            }
            usleep(1000);  // it has not read the last ones yet
        }
    }
    EXPECT_EQ(mon.end(), MonitorEnd::io_error);
    EXPECT_NE(mon.all_errors().find("does not read its replies"), std::string::npos)
        << mon.all_errors();
}

// The child's log lines are relayed, but bounded; and the parent writes
// its own record of what it did, which a compromised child cannot forge
// or leave out.
TEST(Privsep, LogLinesAreBoundedAndTheParentKeepsItsOwnRecord) {
    {
        Monitor mon;
        start(mon);
        ASSERT_EQ(auth(mon, "good-secret-1").first,
                  static_cast<std::uint8_t>(mctp::AuthResult::Kind::accepted));
        Message r;
        mon.ask(*change("alice"), Type::change_reply, &r);
        EXPECT_EQ(mon.host.own,
                  (std::vector<std::string>{"monitor: controller ctl authenticated",
                                            "monitor: change of alice for controller ctl: "
                                            "changed"}));
    }
    Monitor mon;
    start(mon);
    for (unsigned i = 0; i <= mpasswdd::privsep::log_messages_max; ++i) {
        Message m(Type::log);
        m.put_u8(1);
        m.put_str("AUTH ok: controller admin");
        if (!mpasswdd::privsep::send(mon.child_fd(), m)) {
            break;
        }
    }
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_NE(mon.all_errors().find("more than 256 LOG messages"), std::string::npos)
        << mon.all_errors();
    EXPECT_EQ(mon.host.lines.size(), mpasswdd::privsep::log_messages_max);
}

// issue 14: OPERATIONS, ACCOUNT and CHECK.
namespace {

std::pair<std::uint8_t, std::string> account_op(const Monitor& mon, std::uint8_t op,
                                                const std::string& user) {
    Message m(Type::account);
    m.put_u8(op);
    m.put_str(user);
    Message r;
    mon.ask(m, Type::account_reply, &r);
    std::pair<std::uint8_t, std::string> out{99, ""};
    EXPECT_TRUE(r.get_u8(&out.first) && r.get_str(4096, &out.second) && r.at_end());
    return out;
}

std::uint8_t check_pw(const Monitor& mon, const std::string& user, const std::string& pw) {
    Message m(Type::check);
    m.put_str(user);
    m.put_str(pw);
    Message r;
    mon.ask(m, Type::check_reply, &r);
    std::uint8_t kind = 99;
    std::string text;
    EXPECT_TRUE(r.get_u8(&kind) && r.get_str(4096, &text) && r.at_end());
    return kind;
}

constexpr auto account_done = static_cast<std::uint8_t>(mctp::AccountResult::Kind::done);
constexpr auto account_mismatch = static_cast<std::uint8_t>(mctp::AccountResult::Kind::mismatch);
constexpr auto account_forbidden =
    static_cast<std::uint8_t>(mctp::AccountResult::Kind::forbidden);
constexpr auto account_unknown = static_cast<std::uint8_t>(mctp::AccountResult::Kind::unknown);

TEST(Privsep, AccountOperationsThroughTheMonitor) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    Message q(Type::operations);
    q.put_str("ctl");
    Message r;
    mon.ask(q, Type::operations_reply, &r);
    std::uint32_t ops = 0;
    EXPECT_TRUE(r.get_u32(&ops) && r.at_end());
    EXPECT_EQ(ops, mctp::all_operations);
    for (std::uint8_t op = 0; op < 3; ++op) {
        EXPECT_EQ(account_op(mon, op, "alice"), std::make_pair(account_done, std::string("kept")));
    }
    EXPECT_EQ(check_pw(mon, "alice", "Current-Passw0rd"), account_done);
    const auto before = Clock::now();
    EXPECT_EQ(check_pw(mon, "alice", "Old-Passw0rd"), account_mismatch);
    // A mismatch is answered only after the delay, whatever the child does.
    EXPECT_GE(Clock::now() - before, milliseconds(150));
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_EQ(mon.host.accounts, (std::vector<std::string>{"0:alice", "1:alice", "2:alice"}));
    EXPECT_EQ(mon.host.account_checks,
              (std::vector<std::string>{"alice=Current-Passw0rd", "alice=Old-Passw0rd"}));
    EXPECT_TRUE(mon.errors.empty()) << mon.all_errors();
    // The parent's own record, never the password.
    std::string own;
    for (const auto& l : mon.host.own) {
        own += l + "\n";
    }
    EXPECT_NE(own.find("monitor: LOCK alice for controller ctl: done"), std::string::npos) << own;
    EXPECT_NE(own.find("monitor: CHCK alice for controller ctl: not current"), std::string::npos)
        << own;
    EXPECT_EQ(own.find("Passw0rd"), std::string::npos) << own;
}

TEST(Privsep, AccountOperationsBeforeAuthEndTheSession) {
    for (Type t : {Type::operations, Type::account, Type::check}) {
        Monitor mon;
        start(mon);
        Message m(t);
        if (t == Type::account) {
            m.put_u8(0);
        }
        m.put_str(t == Type::operations ? "ctl" : "alice");
        if (t == Type::check) {
            m.put_str("Some-Passw0rd");
        }
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_TRUE(mon.host.accounts.empty());
        EXPECT_TRUE(mon.host.account_checks.empty());
    }
}

TEST(Privsep, OperationsForAnotherControllerEndTheSession) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    Message q(Type::operations);
    q.put_str("other");
    mon.put(q);
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
}

TEST(Privsep, MalformedAccountMessagesEndTheSession) {
    const std::vector<std::string> bodies = {
        std::string(1, '\3') + str("alice"),        // no such operation
        std::string(1, '\0') + str(".."),           // not a user name
        std::string(1, '\0') + str("alice") + "x",  // a trailing octet
        std::string(1, '\0'),                       // no user
    };
    for (const auto& body : bodies) {
        Monitor mon;
        start(mon);
        auth(mon, "good-secret-1");
        mon.raw(header(1, static_cast<std::uint8_t>(Type::account), 0,
                       static_cast<std::uint32_t>(body.size())) +
                body);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_TRUE(mon.host.accounts.empty());
        EXPECT_NE(mon.all_errors().find("malformed ACCOUNT"), std::string::npos)
            << mon.all_errors();
    }
    for (const std::string& pw : {std::string(), std::string("bad\npw"), std::string(200, 'x')}) {
        Monitor mon;
        start(mon);
        auth(mon, "good-secret-1");
        Message m(Type::check);
        m.put_str("alice");
        m.put_str(pw);
        mon.put(m);
        EXPECT_EQ(mon.end(), MonitorEnd::violation);
        EXPECT_TRUE(mon.host.account_checks.empty());
        EXPECT_NE(mon.all_errors().find("malformed CHECK"), std::string::npos) << mon.all_errors();
    }
}

TEST(Privsep, AVerbTheControllerMayNotUseIsRefusedByTheMonitor) {
    Monitor mon;
    mon.host.allowed = mctp::default_operations;
    start(mon);
    auth(mon, "good-secret-1");
    EXPECT_EQ(account_op(mon, 1, "alice").first, account_forbidden);
    EXPECT_EQ(check_pw(mon, "alice", "Current-Passw0rd"), account_forbidden);
    mon.host.allowed = mctp::op_vrfy;
    Message r;
    mon.ask(*change("alice"), Type::change_reply, &r);
    std::uint8_t kind = 99;
    EXPECT_TRUE(r.get_u8(&kind));
    EXPECT_EQ(kind, static_cast<std::uint8_t>(mctp::ChangeResult::Kind::forbidden));
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_TRUE(mon.host.accounts.empty());
    EXPECT_TRUE(mon.host.account_checks.empty());
    EXPECT_TRUE(mon.host.changes.empty());
    EXPECT_NE(mon.all_errors().find("asked for LOCK alice, which controller ctl may not use"),
              std::string::npos)
        << mon.all_errors();
}

TEST(Privsep, AccountOperationsForAUserTheControllerMayNotManageAreRefused) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    EXPECT_EQ(account_op(mon, 0, "bob").first, account_forbidden);
    EXPECT_EQ(account_op(mon, 0, "ghost").first, account_unknown);
    EXPECT_EQ(check_pw(mon, "bob", "Current-Passw0rd"), account_forbidden);
    mon.hang_up();
    EXPECT_EQ(mon.end(), MonitorEnd::child_done);
    EXPECT_TRUE(mon.host.accounts.empty());
    EXPECT_TRUE(mon.host.account_checks.empty());
}

TEST(Privsep, TheMonitorBoundsAccountOperationsPerSession) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    for (unsigned i = 0; i < mctp::account_changes_max; ++i) {
        ASSERT_EQ(account_op(mon, 2, "alice").first, account_done) << i;
    }
    Message m(Type::account);
    m.put_u8(0);
    m.put_str("alice");
    mon.put(m);
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_EQ(mon.host.accounts.size(), mctp::account_changes_max);
    EXPECT_NE(mon.all_errors().find("more than 64 account operations"), std::string::npos)
        << mon.all_errors();
}

TEST(Privsep, TheMonitorBoundsChecksPerSession) {
    Monitor mon;
    start(mon);
    auth(mon, "good-secret-1");
    for (unsigned i = 0; i < mctp::password_checks_max; ++i) {
        ASSERT_EQ(check_pw(mon, "alice", "Current-Passw0rd"), account_done) << i;
    }
    Message m(Type::check);
    m.put_str("alice");
    m.put_str("Current-Passw0rd");
    mon.put(m);
    EXPECT_EQ(mon.end(), MonitorEnd::violation);
    EXPECT_EQ(mon.host.account_checks.size(), mctp::password_checks_max);
}

}  // namespace
