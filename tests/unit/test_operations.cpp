// The account operations over the fan-out engine (controller/operations.*):
// lock, unlock, expire, check, --if-different and batches, against
// in-memory targets that answer each command as a responder would and
// keep each user's password and account state.
#include <gtest/gtest.h>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "dot.hpp"
#include "fanout.hpp"
#include "operations.hpp"
#include "transport.hpp"

namespace {

using namespace mpasswd;

// One target's accounts and what it was told.
struct Accounts {
    std::set<std::string> announced{"TEST", "EXPR", "LOCK", "UNLK", "CHCK"};
    std::map<std::string, std::string> passwords{
        {"alice", "Old-Pw-1"}, {"bob", "Old-Pw-1"}, {"carol", "Old-Pw-1"}};
    std::set<std::string> refuse_test;  // TEST of these users: 554
    std::set<std::string> expired, locked;
    std::string refuse_expr;       // a whole reply to EXPR, instead of 250
    std::string cut_at_change_of;  // the stream ends at this user's CHPW end of data
    bool cut_applies = false;      // ... after the change was made
    int sessions = 0;
    std::chrono::milliseconds delay{0};  // before each read is answered
    std::vector<std::string> lines;  // every command line; passwords as "(password)"

    std::string answer(const std::string& line, std::string& verb, std::string& user,
                       bool& in_data, bool& cut) {
        if (in_data) {
            in_data = false;
            lines.emplace_back("(password)");
            pending_password_ = std::string(line.starts_with('.') ? line.substr(1) : line);
            return "355 go on";
        }
        lines.push_back(line);
        const auto sp = line.find(' ');
        const std::string cmd = line.substr(0, sp);
        const std::string arg = sp == std::string::npos ? "" : line.substr(sp + 1);
        if (cmd == "EHLO") {
            std::string r = "250-t hi";
            for (const auto& v : announced) {
                r += "\r\n250-" + v;
            }
            return r + "\r\n250 LINEMAX 128";
        }
        if (cmd == "AUTH") {
            return "250 authenticated";
        }
        if (cmd == "QUIT") {
            return "221 bye";
        }
        if (cmd == "DATA") {
            in_data = true;
            return "354 go";
        }
        if (cmd == ".") {
            const std::string pw = pending_password_;
            if (verb == "TEST") {
                return refuse_test.count(user) ? "554 BAD PASSWORD: too short" : "250 acceptable";
            }
            if (verb == "CHCK") {
                return passwords[user] == pw ? "250 current" : "554 not current";
            }
            if (user == cut_at_change_of) {
                if (cut_applies) {
                    passwords[user] = pw;
                }
                cut = true;
                return "";
            }
            passwords[user] = pw;
            return "250 password changed";
        }
        if (!passwords.count(arg)) {
            return "551 no such user";
        }
        verb = cmd;
        user = arg;
        if (cmd == "EXPR") {
            if (!refuse_expr.empty()) {
                return refuse_expr;
            }
            expired.insert(arg);
        } else if (cmd == "LOCK") {
            locked.insert(arg);
        } else if (cmd == "UNLK") {
            locked.erase(arg);
        }
        return "250 ok";
    }
    std::string all_lines() const {
        std::string s;
        for (const auto& l : lines) {
            s += l + "\n";
        }
        return s;
    }

private:
    std::string pending_password_;
};

class AccountStream final : public Stream {
public:
    explicit AccountStream(Accounts& a) : a_(a) { out_ = "220 t ready\r\n"; }
    asio::awaitable<std::size_t> read_some(std::span<char> buffer) override {
        if (a_.delay.count() > 0) {
            asio::steady_timer timer(co_await asio::this_coro::executor, a_.delay);
            co_await timer.async_wait(asio::use_awaitable);
        }
        if (out_.empty()) {
            throw std::system_error(asio::error::eof);
        }
        const std::size_t n = std::min(buffer.size(), out_.size());
        std::copy_n(out_.data(), n, buffer.data());
        out_.erase(0, n);
        co_return n;
    }
    asio::awaitable<void> write_all(std::span<const char> bytes) override {
        in_.append(bytes.data(), bytes.size());
        for (auto lf = in_.find('\n'); lf != std::string::npos && !cut_; lf = in_.find('\n')) {
            std::string line = in_.substr(0, lf);
            in_.erase(0, lf + 1);
            if (line.ends_with('\r')) {
                line.pop_back();
            }
            const auto reply = a_.answer(line, verb_, user_, in_data_, cut_);
            if (!cut_) {
                out_ += reply + "\r\n";
            }
        }
        co_return;
    }
    void close() noexcept override {}

private:
    Accounts& a_;
    std::string in_, out_, verb_, user_;
    bool in_data_ = false;
    bool cut_ = false;
};

// Targets "h:1", "h:2", ...: the port picks the accounts.
struct Fleet final : Transport {
    std::vector<Accounts> hosts;
    explicit Fleet(std::size_t n) : hosts(n) {}
    asio::awaitable<std::unique_ptr<Stream>> connect(const Target& t) override {
        Accounts& a = hosts.at(t.port - 1);
        ++a.sessions;
        co_return std::make_unique<AccountStream>(a);
    }
    std::vector<Target> targets() const {
        std::vector<Target> list;
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            Target t{"h", static_cast<std::uint16_t>(i + 1), "test"};
            t.auth_plain = true;
            list.push_back(t);
        }
        return list;
    }
};

struct EngineOperations : ::testing::Test {
    mctp::Secret secret{"test-secret-1"};
    mctp::Secret password{"New-Pw-1"};
    EngineSettings settings() {
        EngineSettings s;
        s.helo_name = "ctl";
        s.secret = &secret;
        return s;
    }
    std::vector<Result> seen;
    std::vector<Result> run_job(Fleet& fleet, Action action, bool best_effort = false,
                                bool if_different = false, std::string user = "alice") {
        Job job{action, std::move(user), needs_password(action) ? &password : nullptr,
                best_effort, if_different};
        seen.assign(fleet.hosts.size(), Result{});
        std::vector<int> calls(fleet.hosts.size(), 0);
        auto results = run(fleet.targets(), settings(), job, fleet,
                           [&](std::size_t i, const Result& r) {
                               seen.at(i) = r;
                               ++calls.at(i);
                           });
        for (std::size_t i = 0; i < calls.size(); ++i) {
            EXPECT_EQ(calls[i], 1) << "on_result once per target, target " << i;
            EXPECT_EQ(seen[i].outcome, results[i].outcome) << i;
        }
        return results;
    }
};

TEST_F(EngineOperations, LockAndUnlockEveryTarget) {
    Fleet fleet(2);
    auto results = run_job(fleet, Action::lock);
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(results[i].outcome, Outcome::ok) << results[i].text;
        EXPECT_EQ(results[i].step, "LOCK");
        EXPECT_EQ(results[i].phase, "change");
        EXPECT_EQ(results[i].applied, Applied::yes);
        EXPECT_TRUE(fleet.hosts[i].locked.count("alice"));
        EXPECT_EQ(fleet.hosts[i].sessions, 1);
        // No password goes anywhere for a lock.
        EXPECT_EQ(fleet.hosts[i].all_lines().find("(password)"), std::string::npos);
    }
    results = run_job(fleet, Action::unlock);
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(results[i].outcome, Outcome::ok) << results[i].text;
        EXPECT_EQ(results[i].step, "UNLK");
        EXPECT_FALSE(fleet.hosts[i].locked.count("alice"));
    }
    // A user a target does not know: refused there, with its code.
    results = run_job(fleet, Action::lock, false, false, "dave");
    EXPECT_EQ(results[0].outcome, Outcome::refused);
    EXPECT_EQ(results[0].code, 551);
    EXPECT_EQ(results[0].applied, Applied::no);
}

TEST_F(EngineOperations, ATargetWithoutTheVerbIsUnsupportedAndSentNothing) {
    Fleet fleet(2);
    fleet.hosts[1].announced = {"TEST"};  // an mpasswdd without account operations
    for (const Action a : {Action::lock, Action::unlock, Action::check, Action::expire}) {
        fleet.hosts[1].lines.clear();
        auto results = run_job(fleet, a);
        EXPECT_EQ(results[1].outcome, Outcome::unsupported) << action_name(a);
        EXPECT_EQ(results[1].step, "EHLO");
        EXPECT_EQ(results[1].applied, Applied::no);
        // Only EHLO, and QUIT; for expire, its TEST session as well.
        const std::string lines = fleet.hosts[1].all_lines();
        for (const char* verb : {"LOCK", "UNLK", "CHCK", "EXPR", "CHPW", "AUTH"}) {
            if (a == Action::expire && std::string(verb) == "AUTH") {
                continue;  // the TEST session authenticated
            }
            EXPECT_EQ(lines.find(verb), std::string::npos) << action_name(a) << "\n" << lines;
        }
    }
    EXPECT_FALSE(fleet.hosts[1].locked.count("alice"));
    EXPECT_EQ(fleet.hosts[1].passwords["alice"], "Old-Pw-1");
    // expire: the unsupported target stops the change everywhere.
    EXPECT_EQ(fleet.hosts[0].passwords["alice"], "Old-Pw-1");
}

TEST_F(EngineOperations, ExpireTestsFirstThenChangesAndExpiresInOneSession) {
    Fleet fleet(2);
    auto results = run_job(fleet, Action::expire);
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(results[i].outcome, Outcome::ok) << results[i].text;
        EXPECT_EQ(results[i].step, "EXPR");
        EXPECT_EQ(results[i].applied, Applied::yes);
        EXPECT_EQ(fleet.hosts[i].passwords["alice"], "New-Pw-1");
        EXPECT_TRUE(fleet.hosts[i].expired.count("alice"));
        EXPECT_EQ(fleet.hosts[i].sessions, 2);  // TEST, then CHPW + EXPR
        const std::string lines = fleet.hosts[i].all_lines();
        EXPECT_LT(lines.find("TEST alice"), lines.find("CHPW alice"));
        EXPECT_LT(lines.find("CHPW alice"), lines.find("EXPR alice"));
    }
    // A refusal in TEST anywhere: no change, no EXPR anywhere.
    Fleet refused(2);
    refused.hosts[1].refuse_test = {"alice"};
    results = run_job(refused, Action::expire);
    EXPECT_EQ(results[0].outcome, Outcome::skipped);
    EXPECT_EQ(results[1].outcome, Outcome::refused);
    for (auto& h : refused.hosts) {
        EXPECT_EQ(h.passwords["alice"], "Old-Pw-1");
        EXPECT_EQ(h.all_lines().find("CHPW"), std::string::npos);
        EXPECT_TRUE(h.expired.empty());
    }
}

TEST_F(EngineOperations, AnExprRefusedAfterTheChangeCountsAsApplied) {
    Fleet fleet(2);
    fleet.hosts[1].refuse_expr = "530 EXPR is not allowed for this controller";
    auto results = run_job(fleet, Action::expire);
    EXPECT_EQ(results[0].outcome, Outcome::ok);
    EXPECT_EQ(results[1].outcome, Outcome::refused);
    EXPECT_EQ(results[1].code, 530);
    EXPECT_EQ(results[1].step, "EXPR");
    EXPECT_EQ(results[1].text,
              "password changed, but not made one-time: EXPR is not allowed for this controller");
    EXPECT_EQ(results[1].applied, Applied::yes);
    EXPECT_EQ(fleet.hosts[1].passwords["alice"], "New-Pw-1");
}

TEST_F(EngineOperations, CheckSaysOkOrDifferentAndChangesNothing) {
    Fleet fleet(3);
    fleet.hosts[0].passwords["alice"] = "New-Pw-1";
    fleet.hosts[2].passwords["alice"] = "New-Pw-1";
    auto results = run_job(fleet, Action::check);
    EXPECT_EQ(results[0].outcome, Outcome::ok);
    EXPECT_EQ(results[1].outcome, Outcome::different);
    EXPECT_EQ(results[1].code, 554);
    EXPECT_EQ(results[1].step, "CHCK");
    EXPECT_EQ(results[1].phase, "check");
    EXPECT_EQ(results[2].outcome, Outcome::ok);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(results[i].applied, Applied::no);
        EXPECT_EQ(fleet.hosts[i].sessions, 1);
        EXPECT_EQ(fleet.hosts[i].all_lines().find("CHPW"), std::string::npos);
    }
    EXPECT_EQ(fleet.hosts[1].passwords["alice"], "Old-Pw-1");
}

TEST_F(EngineOperations, IfDifferentChangesOnlyWhereItDiffers) {
    Fleet fleet(3);
    fleet.hosts[0].passwords["alice"] = "New-Pw-1";
    auto results = run_job(fleet, Action::change, false, true);
    EXPECT_EQ(results[0].outcome, Outcome::unchanged);
    EXPECT_EQ(results[0].phase, "check");
    EXPECT_EQ(results[0].applied, Applied::no);
    for (std::size_t i = 1; i < 3; ++i) {
        EXPECT_EQ(results[i].outcome, Outcome::ok) << results[i].text;
        EXPECT_EQ(results[i].phase, "change");
        EXPECT_EQ(results[i].applied, Applied::yes);
        EXPECT_EQ(fleet.hosts[i].passwords["alice"], "New-Pw-1");
        EXPECT_EQ(fleet.hosts[i].sessions, 3);  // CHCK, TEST, CHPW
    }
    // The unchanged target got its CHCK and nothing more.
    EXPECT_EQ(fleet.hosts[0].sessions, 1);
    EXPECT_EQ(fleet.hosts[0].all_lines().find("TEST"), std::string::npos);
    EXPECT_EQ(fleet.hosts[0].all_lines().find("CHPW"), std::string::npos);
}

TEST_F(EngineOperations, IfDifferentIsAllOrNothingWhenACheckFails) {
    Fleet fleet(3);
    fleet.hosts[0].passwords["alice"] = "New-Pw-1";
    fleet.hosts[2].announced = {"TEST"};  // no CHCK: the check fails there
    auto results = run_job(fleet, Action::change, false, true);
    EXPECT_EQ(results[0].outcome, Outcome::unchanged);
    EXPECT_EQ(results[1].outcome, Outcome::skipped);
    EXPECT_NE(results[1].text.find("CHCK failed on another target"), std::string::npos);
    EXPECT_EQ(results[2].outcome, Outcome::unsupported);
    for (auto& h : fleet.hosts) {
        EXPECT_EQ(h.all_lines().find("CHPW"), std::string::npos);
    }
    EXPECT_EQ(fleet.hosts[1].passwords["alice"], "Old-Pw-1");
    // Best effort: the differing target is changed all the same.
    results = run_job(fleet, Action::change, true, true);
    EXPECT_EQ(results[1].outcome, Outcome::ok);
    EXPECT_EQ(fleet.hosts[1].passwords["alice"], "New-Pw-1");
    EXPECT_EQ(results[2].outcome, Outcome::unsupported);
    // A TEST refusal where it differs: nothing changed, the others skipped.
    Fleet strict(3);
    strict.hosts[2].refuse_test = {"alice"};
    results = run_job(strict, Action::change, false, true);
    EXPECT_EQ(results[0].outcome, Outcome::skipped);
    EXPECT_EQ(results[2].outcome, Outcome::refused);
    EXPECT_EQ(results[2].phase, "test");
    for (auto& h : strict.hosts) {
        EXPECT_EQ(h.passwords["alice"], "Old-Pw-1");
    }
}

TEST_F(EngineOperations, IfDifferentDoesNotGoWithExpireOrOthers) {
    Fleet fleet(1);
    Job job{Action::expire, "alice", &password, false, true};
    EXPECT_THROW(run(fleet.targets(), settings(), job, fleet, nullptr), JobError);
    job.action = Action::lock;
    EXPECT_THROW(check_job(settings(), job), JobError);
    EXPECT_EQ(fleet.hosts[0].sessions, 0);
}

// The journal's hook: once, just before the first line that changes an
// account goes anywhere; never for a check, nor when TEST or CHCK stops
// the run, nor when nothing differs.
TEST_F(EngineOperations, BeforeChangeComesOnceBeforeTheFirstChangingLine) {
    const auto changing = [](Fleet& f) {
        for (auto& h : f.hosts) {
            const std::string lines = h.all_lines();
            for (const char* verb : {"CHPW", "EXPR", "LOCK", "UNLK"}) {
                if (lines.find(verb) != std::string::npos) {
                    return true;
                }
            }
        }
        return false;
    };
    struct Case {
        const char* name;
        Action action;
        bool if_different;
        int calls;
        std::function<void(Fleet&)> set_up;
    };
    const std::vector<Case> cases{
        {"lock", Action::lock, false, 1, {}},
        {"unlock", Action::unlock, false, 1, {}},
        {"expire", Action::expire, false, 1, {}},
        {"expire refused in TEST", Action::expire, false, 0,
         [](Fleet& f) { f.hosts[1].refuse_test = {"alice"}; }},
        {"check", Action::check, false, 0, {}},
        {"if-different, one differs", Action::change, true, 1,
         [](Fleet& f) { f.hosts[0].passwords["alice"] = "New-Pw-1"; }},
        {"if-different, none differs", Action::change, true, 0,
         [](Fleet& f) {
             f.hosts[0].passwords["alice"] = "New-Pw-1";
             f.hosts[1].passwords["alice"] = "New-Pw-1";
         }},
    };
    for (const auto& c : cases) {
        Fleet fleet(2);
        if (c.set_up) {
            c.set_up(fleet);
        }
        int calls = 0;
        bool changed_before = false;
        Job job{c.action, "alice", needs_password(c.action) ? &password : nullptr, false,
                c.if_different};
        job.before_change = [&] {
            ++calls;
            changed_before = changed_before || changing(fleet);
        };
        run(fleet.targets(), settings(), job, fleet, nullptr);
        EXPECT_EQ(calls, c.calls) << c.name;
        EXPECT_FALSE(changed_before) << c.name;
        if (c.calls == 0) {
            EXPECT_FALSE(changing(fleet)) << c.name;
        }
    }
    // What it throws ends the run with nothing changed.
    Fleet fleet(2);
    Job job{Action::lock, "alice", nullptr};
    job.before_change = [] { throw std::runtime_error("journal full"); };
    EXPECT_THROW(run(fleet.targets(), settings(), job, fleet, nullptr), std::runtime_error);
    EXPECT_FALSE(changing(fleet));
    EXPECT_FALSE(fleet.hosts[0].locked.count("alice"));
}

// ---- batches ----

struct Batch : EngineOperations {
    std::vector<mctp::Secret> passwords;
    std::vector<BatchUser> users;
    std::map<std::pair<std::size_t, std::size_t>, int> calls;
    void make(const std::vector<std::string>& names) {
        passwords.clear();
        users.clear();
        passwords.reserve(names.size());
        for (const auto& n : names) {
            passwords.emplace_back("Pw-of-" + n);
            users.push_back({n, &passwords.back()});
        }
    }
    std::vector<std::vector<Result>> run_all(Fleet& fleet, bool best_effort = false) {
        calls.clear();
        return run_batch(fleet.targets(), settings(), users, best_effort, fleet,
                         [&](std::size_t u, std::size_t t, const Result&) { ++calls[{u, t}]; });
    }
};

TEST_F(Batch, OneSessionPerTargetPerPhaseAndEveryUserChanged) {
    Fleet fleet(2);
    make({"alice", "bob", "carol"});
    const auto results = run_all(fleet);
    ASSERT_EQ(results.size(), 3U);
    for (std::size_t u = 0; u < 3; ++u) {
        ASSERT_EQ(results[u].size(), 2U);
        for (std::size_t t = 0; t < 2; ++t) {
            EXPECT_EQ(results[u][t].outcome, Outcome::ok) << results[u][t].text;
            EXPECT_EQ(results[u][t].phase, "change");
            EXPECT_EQ(results[u][t].applied, Applied::yes);
            EXPECT_EQ(fleet.hosts[t].passwords[users[u].user], "Pw-of-" + users[u].user);
            EXPECT_EQ((calls[{u, t}]), 1);
        }
    }
    for (auto& h : fleet.hosts) {
        EXPECT_EQ(h.sessions, 2);  // one TEST session, one CHPW session
        const std::string lines = h.all_lines();
        EXPECT_LT(lines.find("TEST carol"), lines.find("CHPW alice"));
        EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'),
                  2 * (2 + 3 * 4 + 1));  // per session: EHLO, AUTH, 4 per user, QUIT
    }
}

TEST_F(Batch, OneUsersTestRefusalChangesNoOne) {
    Fleet fleet(2);
    fleet.hosts[1].refuse_test = {"bob"};
    make({"alice", "bob", "carol"});
    const auto results = run_all(fleet);
    EXPECT_EQ(results[1][1].outcome, Outcome::refused);
    EXPECT_EQ(results[1][1].code, 554);
    EXPECT_EQ(results[1][1].step, "TEST");
    EXPECT_EQ(results[1][1].phase, "test");
    for (std::size_t u = 0; u < 3; ++u) {
        for (std::size_t t = 0; t < 2; ++t) {
            if (u != 1 || t != 1) {
                EXPECT_EQ(results[u][t].outcome, Outcome::skipped) << u << " " << t;
            }
            EXPECT_EQ(results[u][t].applied, Applied::no);
            EXPECT_EQ((calls[{u, t}]), 1);
        }
    }
    for (auto& h : fleet.hosts) {
        EXPECT_EQ(h.sessions, 1);
        EXPECT_EQ(h.all_lines().find("CHPW"), std::string::npos);
        for (const auto& [user, pw] : h.passwords) {
            EXPECT_EQ(pw, "Old-Pw-1") << user;
        }
    }
}

TEST_F(Batch, ASessionCutShortMarksTheUserUnderWayMaybeAndTheRestNotTried) {
    Fleet fleet(2);
    fleet.hosts[1].cut_at_change_of = "bob";
    fleet.hosts[1].cut_applies = true;
    make({"alice", "bob", "carol"});
    const auto results = run_all(fleet);
    for (std::size_t u = 0; u < 3; ++u) {
        EXPECT_EQ(results[u][0].outcome, Outcome::ok);  // the other target: all done
    }
    EXPECT_EQ(results[0][1].outcome, Outcome::ok);
    EXPECT_EQ(results[0][1].applied, Applied::yes);
    EXPECT_EQ(results[1][1].outcome, Outcome::protocol_error);
    EXPECT_EQ(results[1][1].applied, Applied::maybe);
    EXPECT_TRUE(results[1][1].maybe_applied);  // the JSON's, set with it
    EXPECT_FALSE(results[2][1].maybe_applied);
    EXPECT_NE(results[1][1].text.find("the password was sent and may have been changed"),
              std::string::npos)
        << results[1][1].text;
    EXPECT_EQ(results[2][1].outcome, Outcome::protocol_error);
    EXPECT_EQ(results[2][1].applied, Applied::no);
    EXPECT_EQ(results[2][1].text.rfind("not tried: the session ended before this user (bob: ", 0),
              0U)
        << results[2][1].text;
    EXPECT_EQ(fleet.hosts[1].passwords["carol"], "Old-Pw-1");
    EXPECT_EQ(fleet.hosts[1].all_lines().find("CHPW carol"), std::string::npos);
}

// The same with PIPELINING: carol's CHPW and DATA went out behind bob's
// "." before the session was cut. bob is still the user under way
// (maybe); carol, whose command was only sent ahead, was not tried.
TEST_F(Batch, PipelinedAUserSentAheadOfACutSessionWasNotTried) {
    Fleet fleet(2);
    for (auto& h : fleet.hosts) {
        h.announced.insert("PIPELINING");
    }
    fleet.hosts[1].cut_at_change_of = "bob";
    fleet.hosts[1].cut_applies = true;
    make({"alice", "bob", "carol"});
    const auto results = run_all(fleet);
    for (std::size_t u = 0; u < 3; ++u) {
        EXPECT_EQ(results[u][0].outcome, Outcome::ok) << results[u][0].text;
    }
    EXPECT_EQ(results[0][1].outcome, Outcome::ok);
    EXPECT_EQ(results[1][1].applied, Applied::maybe);
    EXPECT_TRUE(results[1][1].maybe_applied);
    EXPECT_EQ(results[2][1].outcome, Outcome::protocol_error);
    EXPECT_EQ(results[2][1].applied, Applied::no);
    EXPECT_FALSE(results[2][1].maybe_applied);
    EXPECT_EQ(results[2][1].text.rfind("not tried: the session ended before this user (bob: ", 0),
              0U)
        << results[2][1].text;
    EXPECT_EQ(fleet.hosts[1].passwords["carol"], "Old-Pw-1");
}

// target_timeout bounds each user's part of a batch session, not the
// whole of it: a batch longer than target_timeout in all, each user well
// within it, ends ok; one slow user still times out.
TEST_F(Batch, TargetTimeoutBoundsEachUserNotTheWholeBatch) {
    Fleet fleet(1);
    fleet.hosts[0].delay = std::chrono::milliseconds(10);  // 40 ms per user
    make({"alice", "bob", "carol", "dave", "erin", "frank"});
    for (const auto& u : users) {
        fleet.hosts[0].passwords[u.user] = "Old-Pw-1";
    }
    EngineSettings s = settings();
    s.connect_timeout = std::chrono::milliseconds(100);
    s.reply_timeout = std::chrono::milliseconds(100);
    s.target_timeout = std::chrono::milliseconds(150);  // 6 users x 40 ms is more
    auto results = run_batch(fleet.targets(), s, users, true, fleet, {});
    for (std::size_t u = 0; u < users.size(); ++u) {
        EXPECT_EQ(results[u][0].outcome, Outcome::ok) << u << " " << results[u][0].text;
    }
    // 120 ms to the first user, whose part takes 160 ms: over.
    fleet.hosts[0].delay = std::chrono::milliseconds(40);
    results = run_batch(fleet.targets(), s, users, true, fleet, {});
    EXPECT_EQ(results[0][0].outcome, Outcome::timeout) << results[0][0].text;
    EXPECT_EQ(results[0][0].text.rfind("not done within target_timeout (0.1 s)", 0), 0U)
        << results[0][0].text;
    EXPECT_EQ(results[0][0].applied, Applied::no);  // cut off at its CHPW, before the data
    EXPECT_EQ(results[1][0].outcome, Outcome::protocol_error);
    EXPECT_EQ(results[1][0].text.rfind("not tried", 0), 0U) << results[1][0].text;
}

TEST_F(Batch, BestEffortSendsNoTest) {
    Fleet fleet(1);
    fleet.hosts[0].refuse_test = {"bob"};  // TEST would refuse: not asked
    make({"alice", "bob"});
    const auto results = run_all(fleet, true);
    EXPECT_EQ(results[1][0].outcome, Outcome::ok);
    EXPECT_EQ(fleet.hosts[0].sessions, 1);
    EXPECT_EQ(fleet.hosts[0].all_lines().find("TEST"), std::string::npos);
}

TEST_F(Batch, BadBatchesAreRefusedBeforeAnythingIsSent) {
    Fleet fleet(2);
    const auto error = [&](std::size_t targets) {
        try {
            check_batch(settings(), users, targets);
        } catch (const JobError& e) {
            return std::string(e.what());
        }
        return std::string("(accepted)");
    };
    make({});
    EXPECT_EQ(error(2), "the batch has no users");
    make({"alice", "Secret-Pw-9", "alice"});
    EXPECT_EQ(error(2), "batch user 3: the same user again");
    make({"alice", "bob:x"});
    EXPECT_EQ(error(2), "batch user 2: not a valid user name");
    mctp::Secret empty;
    make({"alice"});
    users[0].password = &empty;
    EXPECT_EQ(error(2), "batch user 1: the new password is empty");
    std::vector<std::string> many;
    for (std::size_t i = 0; i <= batch_users_max; ++i) {
        many.push_back("u" + std::to_string(i));
    }
    make(many);
    EXPECT_EQ(error(1), "a batch is at most 10000 users");
    many.pop_back();
    make(many);
    EXPECT_EQ(error(20), "(accepted)");
    EXPECT_EQ(error(21), "a batch is at most 200000 user x target pairs (10000 users x 21 targets)");
    // run_batch checks first: 2 users x 100,001 targets, nothing sent.
    make({"alice", "bob"});
    std::vector<Target> targets(100'001, fleet.targets()[0]);
    EXPECT_THROW(run_batch(targets, settings(), users, false, fleet, {}), JobError);
    EXPECT_EQ(fleet.hosts[0].sessions, 0);
}

TEST_F(Batch, BeforeChangeOnceAfterTestAndBeforeAnyChpw) {
    for (const bool refuse : {false, true}) {
        Fleet fleet(2);
        if (refuse) {
            fleet.hosts[1].refuse_test = {"bob"};
        }
        make({"alice", "bob", "carol"});
        int hooks = 0;
        bool chpw_before = false;
        run_batch(fleet.targets(), settings(), users, false, fleet, {}, [&] {
            ++hooks;
            for (auto& h : fleet.hosts) {
                // TEST has passed for every user everywhere, no CHPW yet.
                chpw_before = chpw_before || h.all_lines().find("CHPW") != std::string::npos;
                EXPECT_NE(h.all_lines().find("TEST carol"), std::string::npos);
            }
        });
        EXPECT_EQ(hooks, refuse ? 0 : 1) << refuse;
        EXPECT_FALSE(chpw_before);
    }
    // Best effort: at once, before anything is sent.
    Fleet fleet(2);
    make({"alice"});
    int hooks = 0;
    run_batch(fleet.targets(), settings(), users, true, fleet, {}, [&] {
        ++hooks;
        EXPECT_EQ(fleet.hosts[0].sessions + fleet.hosts[1].sessions, 0);
    });
    EXPECT_EQ(hooks, 1);
}

}  // namespace
