// EXPR, LOCK, UNLK and CHCK in the session (mpasswd-protocol(7),
// ACCOUNT OPERATIONS): states, the operations a controller may use, the
// replies for every result, and the per-session bounds.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fake_host.hpp"
#include "session.hpp"

namespace {

using mctp::AccountOp;
using mctp::AccountResult;
using mctp::State;
using Kind = AccountResult::Kind;

struct AccountHost : test::FakeHost {
    unsigned offered = mctp::all_operations;
    unsigned allowed = mctp::all_operations;
    AccountResult next{Kind::done, ""};
    AccountResult next_check{Kind::done, ""};
    std::vector<std::string> ops;  // "EXPR alice", ...
    std::vector<std::string> checks;

    unsigned offered_operations() override { return offered; }
    unsigned operations(std::string_view controller) override {
        return controller == "ctl" ? allowed : 0U;
    }
    AccountResult account(AccountOp op, std::string_view user) override {
        static const char* names[] = {"EXPR", "LOCK", "UNLK"};
        ops.push_back(std::string(names[static_cast<int>(op)]) + " " + std::string(user));
        return next;
    }
    AccountResult check_password(std::string_view user, const mctp::Secret& pw) override {
        checks.push_back(std::string(user) + "=" + std::string(pw.view()));
        return next_check;
    }
};

struct Driver {
    AccountHost host;
    mctp::Session session{mctp::SessionSettings{}, host, "192.0.2.7"};
    mctp::Reply last{mctp::Code::ok, ""};

    Driver() { session.start(mctp::PeerVerdict::accepted); }
    int line(std::string_view text) {
        last = session.on_line(text);
        return mctp::number(last.code);
    }
    void login() {
        ASSERT_EQ(line("HELO ctl"), 250);
        ASSERT_EQ(line("AUTH " + host.secret), 250);
    }
    [[nodiscard]] bool logged(std::string_view what) const {
        return host.all_log().find(what) != std::string::npos;
    }
};

TEST(AccountVerbs, OnlyWhenAuthenticated) {
    for (const char* verb : {"EXPR alice", "LOCK alice", "UNLK alice", "CHCK alice"}) {
        Driver d;
        EXPECT_EQ(d.line(verb), 503) << verb;  // connected
        d.line("HELO ctl");
        EXPECT_EQ(d.line(verb), 503) << verb;  // greeted
        d.line("AUTH " + d.host.secret);
        d.line("CHPW alice");
        EXPECT_EQ(d.line(verb), 503) << verb;  // pending
        EXPECT_EQ(d.session.state(), State::pending);
        d.line("DATA");
        EXPECT_EQ(d.line(verb), 355) << verb;  // receiving: a data line
        EXPECT_TRUE(d.host.ops.empty());
        EXPECT_TRUE(d.host.checks.empty());
    }
}

TEST(AccountVerbs, EachVerbReachesTheHostAndStaysAuthed) {
    Driver d;
    d.login();
    EXPECT_EQ(d.line("EXPR alice"), 250);
    EXPECT_EQ(d.last.text, "alice must change the password at the next login");
    EXPECT_EQ(d.line("lock alice"), 250);
    EXPECT_EQ(d.last.text, "alice locked (password and account)");
    EXPECT_EQ(d.line("UNLK bob"), 250);
    EXPECT_EQ(d.last.text, "bob unlocked");
    EXPECT_EQ(d.session.state(), State::authed);
    EXPECT_EQ(d.host.ops, (std::vector<std::string>{"EXPR alice", "LOCK alice", "UNLK bob"}));
}

TEST(AccountVerbs, AlreadyIsStill250) {
    Driver d;
    d.login();
    d.host.next = {Kind::already, ""};
    EXPECT_EQ(d.line("EXPR alice"), 250);
    EXPECT_EQ(d.last.text, "alice already must change the password at the next login");
    EXPECT_EQ(d.line("LOCK alice"), 250);
    EXPECT_EQ(d.last.text, "alice already locked (password and account)");
    EXPECT_EQ(d.line("UNLK alice"), 250);
    EXPECT_EQ(d.last.text, "alice already unlocked");
}

TEST(AccountVerbs, UnknownForbiddenAndBadNamesNeverReachTheHost) {
    Driver d;
    d.login();
    for (const char* verb : {"EXPR", "LOCK", "UNLK", "CHCK"}) {
        EXPECT_EQ(d.line(std::string(verb) + " nobody"), 551) << verb;
        EXPECT_EQ(d.line(std::string(verb) + " root"), 530) << verb;
        EXPECT_EQ(d.line(std::string(verb) + " .."), 501) << verb;
        EXPECT_EQ(d.line(std::string(verb) + " ."), 501) << verb;
        EXPECT_EQ(d.line(std::string(verb)), 501) << verb;
        EXPECT_EQ(d.session.state(), State::authed);
    }
    EXPECT_TRUE(d.host.ops.empty());
    EXPECT_TRUE(d.host.checks.empty());
}

TEST(AccountVerbs, HostResultsMapToCodes) {
    const struct {
        Kind kind;
        int code;
    } cases[] = {{Kind::not_local, 550}, {Kind::failed, 451}, {Kind::unknown, 551},
                 {Kind::forbidden, 530}, {Kind::mismatch, 451}};
    for (const auto& c : cases) {
        Driver d;
        d.login();
        d.host.next = {c.kind, "the shadow database has 2 lines for alice"};
        EXPECT_EQ(d.line("LOCK alice"), c.code);
        EXPECT_EQ(d.session.state(), State::authed);
        if (c.code == 451) {
            EXPECT_NE(d.last.text.find("2 lines"), std::string::npos) << d.last.text;
        }
    }
}

TEST(AccountVerbs, CheckTakesOnePasswordLikeTest) {
    Driver d;
    d.login();
    EXPECT_EQ(d.line("CHCK alice"), 250);
    EXPECT_EQ(d.session.state(), State::pending);
    EXPECT_EQ(d.line("DATA"), 354);
    EXPECT_EQ(d.line("..dotted-Passw0rd"), 355);
    EXPECT_EQ(d.line("."), 250);
    EXPECT_EQ(d.last.text, "the current password of alice");
    EXPECT_EQ(d.host.checks, (std::vector<std::string>{"alice=.dotted-Passw0rd"}));
    EXPECT_TRUE(d.host.changes.empty());
    EXPECT_TRUE(d.host.tests.empty());
    // Not the current one: 554; never the password in a reply or the log.
    d.host.next_check = {Kind::mismatch, ""};
    d.line("CHCK alice");
    d.line("DATA");
    d.line("Other-Passw0rd");
    EXPECT_EQ(d.line("."), 554);
    EXPECT_EQ(d.last.text, "not the current password of alice");
    EXPECT_FALSE(d.logged("Passw0rd"));
    EXPECT_EQ(d.session.state(), State::authed);
}

TEST(AccountVerbs, CheckResultsMapToCodes) {
    const struct {
        Kind kind;
        int code;
    } cases[] = {{Kind::not_local, 550}, {Kind::failed, 451}, {Kind::unknown, 551},
                 {Kind::forbidden, 530}};
    for (const auto& c : cases) {
        Driver d;
        d.login();
        d.host.next_check = {c.kind, ""};
        d.line("CHCK alice");
        d.line("DATA");
        d.line("Some-Passw0rd");
        EXPECT_EQ(d.line("."), c.code);
    }
}

TEST(AccountVerbs, CheckWithoutExactlyOnePasswordChecksNothing) {
    for (const std::vector<std::string>& data :
         {std::vector<std::string>{}, std::vector<std::string>{"a", "b"},
          std::vector<std::string>{""}}) {
        Driver d;
        d.login();
        d.line("CHCK alice");
        d.line("DATA");
        for (const auto& l : data) {
            d.line(l);
        }
        EXPECT_EQ(d.line("."), 501);
        EXPECT_NE(d.last.text.find("nothing checked"), std::string::npos) << d.last.text;
        EXPECT_TRUE(d.host.checks.empty());
    }
}

TEST(AccountVerbs, EhloAndHelpNameWhatTheHostOffers) {
    Driver d;
    ASSERT_EQ(d.line("EHLO ctl"), 250);
    for (const char* verb : {"CHCK", "EXPR", "LOCK", "UNLK", "TEST"}) {
        EXPECT_NE(std::find(d.last.more.begin(), d.last.more.end(), verb), d.last.more.end())
            << verb;
    }
    EXPECT_LE(d.last.more.size() + 1, mctp::ehlo_lines_max);
    EXPECT_EQ(d.line("HELP"), 250);
    EXPECT_NE(d.last.text.find("EXPR LOCK UNLK CHCK"), std::string::npos) << d.last.text;

    Driver old;
    old.host.offered = mctp::default_operations;
    ASSERT_EQ(old.line("EHLO ctl"), 250);
    for (const char* verb : {"CHCK", "EXPR", "LOCK", "UNLK"}) {
        EXPECT_EQ(std::find(old.last.more.begin(), old.last.more.end(), verb),
                  old.last.more.end())
            << verb;
    }
    EXPECT_EQ(old.line("HELP"), 250);
    EXPECT_EQ(old.last.text.find("EXPR"), std::string::npos) << old.last.text;
}

TEST(AccountVerbs, AVerbTheHostDoesNotOfferIs502) {
    Driver d;
    d.host.offered = mctp::default_operations | mctp::op_expr;
    d.login();
    EXPECT_EQ(d.line("EXPR alice"), 250);
    EXPECT_EQ(d.line("LOCK alice"), 502);
    EXPECT_EQ(d.line("UNLK alice"), 502);
    EXPECT_EQ(d.line("CHCK alice"), 502);
    EXPECT_EQ(d.session.state(), State::authed);
    EXPECT_EQ(d.host.ops, (std::vector<std::string>{"EXPR alice"}));
}

TEST(AccountVerbs, AVerbTheControllerMayNotUseIs530AndLogged) {
    Driver d;
    d.host.allowed = mctp::default_operations;
    d.login();
    for (const char* verb : {"EXPR", "LOCK", "UNLK", "CHCK"}) {
        EXPECT_EQ(d.line(std::string(verb) + " alice"), 530) << verb;
        EXPECT_TRUE(d.logged(std::string(verb) + " refused: controller ctl may not use it"))
            << d.host.all_log();
    }
    EXPECT_TRUE(d.host.ops.empty());
    EXPECT_TRUE(d.host.checks.empty());
    EXPECT_EQ(d.session.state(), State::authed);
}

TEST(AccountVerbs, TheOldVerbsAreOperationsToo) {
    Driver d;
    d.host.allowed = mctp::op_chck;
    d.login();
    EXPECT_EQ(d.line("VRFY alice"), 530);
    EXPECT_EQ(d.line("TEST alice"), 530);
    EXPECT_EQ(d.line("CHPW alice"), 530);
    EXPECT_EQ(d.session.state(), State::authed);
    EXPECT_TRUE(d.logged("CHPW refused: controller ctl may not use it (operations: CHCK)"));
    EXPECT_EQ(d.line("CHCK alice"), 250);
}

TEST(AccountVerbs, RsetForgetsTheOperations) {
    Driver d;
    d.login();
    EXPECT_EQ(d.line("RSET"), 250);
    d.line("HELO ctl");
    EXPECT_EQ(d.line("EXPR alice"), 503);
}

TEST(AccountVerbs, The65thAccountChangeIs421AndCloses) {
    Driver d;
    d.login();
    for (unsigned i = 0; i < mctp::account_changes_max; ++i) {
        // Refusals count too: the bound is on requests, not on successes.
        ASSERT_EQ(d.line(i % 2 == 0 ? "LOCK alice" : "UNLK nobody"), i % 2 == 0 ? 250 : 551)
            << i;
    }
    // RSET does not reset the count.
    d.line("RSET");
    d.login();
    EXPECT_EQ(d.line("EXPR alice"), 421);
    EXPECT_TRUE(d.last.close);
    EXPECT_TRUE(d.session.closed());
    EXPECT_EQ(d.host.ops.size(), mctp::account_changes_max / 2);
}

TEST(AccountVerbs, The33rdCheckIs421AndCloses) {
    Driver d;
    d.login();
    d.host.next_check = {Kind::mismatch, ""};
    for (unsigned i = 0; i < mctp::password_checks_max; ++i) {
        ASSERT_EQ(d.line("CHCK alice"), 250) << i;
        d.line("DATA");
        d.line("Guess-" + std::to_string(i));
        ASSERT_EQ(d.line("."), 554) << i;
    }
    // EXPR/LOCK/UNLK have their own count.
    EXPECT_EQ(d.line("EXPR alice"), 250);
    EXPECT_EQ(d.line("CHCK alice"), 421);
    EXPECT_TRUE(d.session.closed());
    EXPECT_EQ(d.host.checks.size(), mctp::password_checks_max);
}

TEST(Operations, NamesAndBits) {
    EXPECT_EQ(mctp::operation_names(mctp::default_operations), "VRFY TEST CHPW");
    EXPECT_EQ(mctp::operation_names(mctp::all_operations), "VRFY TEST CHPW EXPR LOCK UNLK CHCK");
    EXPECT_EQ(mctp::operation_bit("CHCK"), mctp::op_chck);
    EXPECT_EQ(mctp::operation_bit("chck"), 0U);
    EXPECT_EQ(mctp::operation_bit("HELO"), 0U);
}

}  // namespace
