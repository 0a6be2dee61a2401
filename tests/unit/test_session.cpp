// The state table of mpasswd-protocol(7), cell by cell, and the session
// rules around it.
#include <gtest/gtest.h>

#include "fake_host.hpp"
#include "limits.hpp"

using mctp::State;
using test::Wire;

namespace {

void reach(Wire& w, State s) {
    if (s == State::connected) {
        return;
    }
    ASSERT_EQ(w.line("HELO ctl"), 250);
    if (s == State::greeted) {
        return;
    }
    ASSERT_EQ(w.line("AUTH good-secret-1"), 250);
    if (s == State::authed) {
        return;
    }
    ASSERT_EQ(w.line("CHPW alice"), 250);
    if (s == State::pending) {
        return;
    }
    ASSERT_EQ(w.line("DATA"), 354);
}

struct Cell {
    const char* command;
    State from;
    int code;
    State to;
};

std::ostream& operator<<(std::ostream& o, const Cell& c) {
    return o << c.command << " in " << mctp::to_string(c.from);
}

class StateTable : public ::testing::TestWithParam<Cell> {};

TEST_P(StateTable, ReplyAndNextState) {
    const Cell& c = GetParam();
    Wire w;
    reach(w, c.from);
    EXPECT_EQ(w.line(c.command), c.code);
    EXPECT_EQ(w.session.state(), c.to);
}

constexpr State C = State::connected, G = State::greeted, A = State::authed,
                P = State::pending, R = State::receiving, X = State::closed;

INSTANTIATE_TEST_SUITE_P(
    Protocol, StateTable,
    ::testing::Values(
        // HELO
        Cell{"HELO ctl", C, 250, G}, Cell{"HELO ctl", G, 503, G}, Cell{"HELO ctl", A, 503, A},
        Cell{"HELO ctl", P, 503, P}, Cell{"HELO ctl", R, 355, R},
        // AUTH
        Cell{"AUTH good-secret-1", C, 503, C}, Cell{"AUTH good-secret-1", G, 250, A},
        Cell{"AUTH wrong-secret", G, 530, G}, Cell{"AUTH good-secret-1", A, 503, A},
        Cell{"AUTH good-secret-1", P, 503, P}, Cell{"AUTH good-secret-1", R, 355, R},
        // VRFY
        Cell{"VRFY alice", C, 503, C}, Cell{"VRFY alice", G, 503, G}, Cell{"VRFY alice", A, 250, A},
        Cell{"VRFY alice", P, 250, P}, Cell{"VRFY nobody-here", A, 551, A},
        Cell{"VRFY root", A, 530, A}, Cell{"VRFY alice", R, 355, R},
        // CHPW
        Cell{"CHPW alice", C, 503, C}, Cell{"CHPW alice", G, 503, G}, Cell{"CHPW alice", A, 250, P},
        Cell{"CHPW bob", P, 503, P}, Cell{"CHPW nobody-here", A, 551, A},
        Cell{"CHPW root", A, 530, A}, Cell{"CHPW alice", R, 355, R},
        // TEST
        Cell{"TEST alice", C, 503, C}, Cell{"TEST alice", G, 503, G}, Cell{"TEST alice", A, 250, P},
        Cell{"TEST bob", P, 503, P}, Cell{"TEST nobody-here", A, 551, A},
        Cell{"TEST root", A, 530, A}, Cell{"TEST alice", R, 355, R},
        // DATA
        Cell{"DATA", C, 503, C}, Cell{"DATA", G, 503, G}, Cell{"DATA", A, 503, A},
        Cell{"DATA", P, 354, R}, Cell{"DATA", R, 355, R},
        // RSET
        Cell{"RSET", C, 250, C}, Cell{"RSET", G, 250, C}, Cell{"RSET", A, 250, C},
        Cell{"RSET", P, 250, C}, Cell{"RSET", R, 355, R},
        // NOOP
        Cell{"NOOP", C, 250, C}, Cell{"NOOP", G, 250, G}, Cell{"NOOP", A, 250, A},
        Cell{"NOOP", P, 250, P}, Cell{"NOOP", R, 355, R},
        // QUIT
        Cell{"QUIT", C, 221, X}, Cell{"QUIT", G, 221, X}, Cell{"QUIT", A, 221, X},
        Cell{"QUIT", P, 221, X}, Cell{"QUIT", R, 355, R},
        // HELP
        Cell{"HELP", C, 250, C}, Cell{"HELP", G, 250, G}, Cell{"HELP", A, 250, A},
        Cell{"HELP", P, 250, P}, Cell{"HELP", R, 355, R},
        // unknown verb
        Cell{"XYZZ", C, 500, C}, Cell{"XYZZ", G, 500, G}, Cell{"XYZZ", A, 500, A},
        Cell{"XYZZ", P, 500, P}, Cell{"XYZZ", R, 355, R},
        // end of data
        Cell{".", R, 501, A}));

TEST(Session, OutOfSequenceRepliesSayWhy) {
    const struct {
        State from;
        const char* command;
        const char* text;
    } cases[] = {
        {C, "AUTH good-secret-1", "send HELO first"},
        {A, "AUTH good-secret-1", "already authenticated"},
        {G, "HELO ctl", "already greeted; RSET first"},
        {G, "VRFY alice", "authenticate first"},
        {C, "CHPW alice", "authenticate first"},
        {P, "CHPW bob", "a change or test is already pending; send DATA or RSET"},
        {A, "DATA", "no pending change; send CHPW, TEST or CHCK first"},
    };
    for (const auto& c : cases) {
        Wire w;
        reach(w, c.from);
        EXPECT_EQ(w.line(c.command), 503) << c.command;
        EXPECT_EQ(w.last().text, c.text) << c.command << " in " << mctp::to_string(c.from);
    }
}

TEST(Session, BannerAndRefusals) {
    test::FakeHost host;
    mctp::SessionSettings s;
    s.host_name = "t1";
    mctp::Session ok(s, host, "local");
    auto r = ok.start(mctp::PeerVerdict::accepted);
    EXPECT_EQ(r.code, mctp::Code::ready);
    EXPECT_EQ(r.text, "t1 MCTP ready");
    EXPECT_FALSE(r.close);

    mctp::Session rejected(s, host, "198.51.100.1");
    r = rejected.start(mctp::PeerVerdict::rejected);
    EXPECT_EQ(r.code, mctp::Code::controller_rejected);
    EXPECT_TRUE(r.close);
    EXPECT_TRUE(rejected.closed());

    mctp::Session disabled(s, host, "local");
    r = disabled.start(mctp::PeerVerdict::disabled);
    EXPECT_EQ(r.code, mctp::Code::unavailable);
    EXPECT_TRUE(r.close);
}

TEST(Session, HeloReplyNamesHostControllerAndPeer) {
    Wire w;
    EXPECT_EQ(w.line("HELO ctl.example"), 250);
    EXPECT_EQ(w.last().text, "target hello ctl.example [192.0.2.7]");
}

TEST(Session, FullChangeAppliesPasswordOnceAndReturnsToAuthed) {
    Wire w;
    w.login();
    EXPECT_EQ(w.line("CHPW alice"), 250);
    EXPECT_EQ(w.line("DATA"), 354);
    EXPECT_EQ(w.line("N3w-Passw0rd!"), 355);
    EXPECT_EQ(w.line("."), 250);
    ASSERT_EQ(w.host.changes.size(), 1U);
    EXPECT_EQ(w.host.changes[0].user, "alice");
    EXPECT_EQ(w.host.changes[0].helo, "ctl");
    EXPECT_EQ(w.host.changes[0].password, "N3w-Passw0rd!");
    EXPECT_EQ(w.session.state(), State::authed);
    // One session may change many users.
    EXPECT_EQ(w.line("CHPW bob"), 250);
    EXPECT_EQ(w.line("DATA"), 354);
    EXPECT_EQ(w.line("other-Passw0rd"), 355);
    EXPECT_EQ(w.line("."), 250);
    EXPECT_EQ(w.host.changes.size(), 2U);
}

TEST(Session, TestChecksThePasswordAndChangesNothing) {
    Wire w;
    w.login();
    EXPECT_EQ(w.line("TEST alice"), 250);
    EXPECT_EQ(w.last().text, "test for alice pending; send DATA");
    EXPECT_EQ(w.line("DATA"), 354);
    EXPECT_EQ(w.line("..N3w-Passw0rd!"), 355);
    EXPECT_EQ(w.line("."), 250);
    EXPECT_EQ(w.last().text, "password acceptable for alice; nothing changed");
    ASSERT_EQ(w.host.tests.size(), 1U);
    EXPECT_EQ(w.host.tests[0].user, "alice");
    EXPECT_EQ(w.host.tests[0].helo, "ctl");
    EXPECT_EQ(w.host.tests[0].password, ".N3w-Passw0rd!");
    EXPECT_TRUE(w.host.changes.empty());
    EXPECT_EQ(w.session.state(), State::authed);
    // A CHPW after a TEST is a change again, not a test.
    w.send("CHPW alice\r\nDATA\r\nN3w-Passw0rd!\r\n");
    EXPECT_EQ(w.line("."), 250);
    EXPECT_EQ(w.last().text, "password changed for alice");
    EXPECT_EQ(w.host.tests.size(), 1U);
    EXPECT_EQ(w.host.changes.size(), 1U);
    // RSET in the middle of a TEST forgets it: the next DATA has no test.
    w.login();
    EXPECT_EQ(w.line("TEST alice"), 250);
    EXPECT_EQ(w.line("RSET"), 250);
    w.login();
    EXPECT_EQ(w.line("DATA"), 503);
}

TEST(Session, TestResultsMapToReplyCodes) {
    const std::pair<mctp::ChangeResult::Kind, int> cases[] = {
        {mctp::ChangeResult::Kind::changed, 250},   {mctp::ChangeResult::Kind::refused, 554},
        {mctp::ChangeResult::Kind::failed, 451},    {mctp::ChangeResult::Kind::unknown, 551},
        {mctp::ChangeResult::Kind::forbidden, 530},
    };
    for (const auto& [kind, code] : cases) {
        Wire w;
        w.login();
        w.host.next_result = {mctp::ChangeResult::Kind::failed, "the change must not be asked"};
        w.host.next_test = {kind, "BAD PASSWORD: it is based on a dictionary word"};
        w.send("TEST alice\r\nDATA\r\nabc\r\n");
        EXPECT_EQ(w.line("."), code);
        EXPECT_EQ(w.session.state(), State::authed);
        EXPECT_TRUE(w.host.changes.empty());
        if (code == 554) {
            EXPECT_EQ(w.last().text, "BAD PASSWORD: it is based on a dictionary word");
        }
        if (code == 451) {
            EXPECT_EQ(w.last().text,
                      "test aborted: BAD PASSWORD: it is based on a dictionary word");
        }
    }
}

TEST(Session, TestRefusesBadDataLikeChpwAndAsksNothing) {
    for (const char* data : {"", "one\r\ntwo\r\n", "bad\x01pw\r\n"}) {
        Wire w;
        w.login();
        w.send(std::string("TEST alice\r\nDATA\r\n") + data);
        EXPECT_EQ(w.line("."), 501);
        EXPECT_NE(w.last().text.find("nothing changed"), std::string::npos);
        EXPECT_TRUE(w.host.tests.empty());
        EXPECT_TRUE(w.host.changes.empty());
    }
}

TEST(Session, PamResultsMapToReplyCodes) {
    const std::pair<mctp::ChangeResult::Kind, int> cases[] = {
        {mctp::ChangeResult::Kind::changed, 250},   {mctp::ChangeResult::Kind::refused, 554},
        {mctp::ChangeResult::Kind::failed, 451},    {mctp::ChangeResult::Kind::unknown, 551},
        {mctp::ChangeResult::Kind::forbidden, 530},
    };
    for (const auto& [kind, code] : cases) {
        Wire w;
        w.login();
        w.host.next_result = {kind, "BAD PASSWORD: The password is shorter than 8 characters"};
        w.send("CHPW alice\r\nDATA\r\nabc\r\n");
        EXPECT_EQ(w.line("."), code);
        EXPECT_EQ(w.session.state(), State::authed);
        if (code == 554) {
            EXPECT_EQ(w.last().text, "BAD PASSWORD: The password is shorter than 8 characters");
        }
    }
}

TEST(Session, PamMessageIsMadePrintableAscii) {
    Wire w;
    w.login();
    w.host.next_result = {mctp::ChangeResult::Kind::refused, "Das Passwort ist zu kurz\n\x01 \xc3\xa4"};
    w.send("CHPW alice\r\nDATA\r\nabc\r\n");
    EXPECT_EQ(w.line("."), 554);
    EXPECT_EQ(w.last().text, "Das Passwort ist zu kurz ?");
}

TEST(Session, DotStuffedPasswordIsUnstuffed) {
    Wire w;
    w.login();
    w.send("CHPW alice\r\nDATA\r\n..hidden.pw\r\n.\r\n");
    ASSERT_EQ(w.host.changes.size(), 1U);
    EXPECT_EQ(w.host.changes[0].password, ".hidden.pw");
}

TEST(Session, QuitInsideDataIsAPasswordLine) {
    Wire w;
    w.login();
    EXPECT_EQ(w.send("CHPW alice\r\nDATA\r\nQUIT\r\n.\r\n"),
              (std::vector<int>{250, 354, 355, 250}));
    ASSERT_EQ(w.host.changes.size(), 1U);
    EXPECT_EQ(w.host.changes[0].password, "QUIT");
    EXPECT_FALSE(w.session.closed());
}

TEST(Session, EmptyAndMultiLinePasswordsAreRefusedAndChangeNothing) {
    for (const char* data : {"\r\n.\r\n", ".\r\n", "one\r\ntwo\r\n.\r\n", "\r\nsecond\r\n.\r\n"}) {
        Wire w;
        w.login();
        w.send("CHPW alice\r\nDATA\r\n");
        auto codes = w.send(data);
        EXPECT_EQ(codes.back(), 501) << data;
        EXPECT_TRUE(w.host.changes.empty()) << data;
        EXPECT_EQ(w.session.state(), State::authed);
        // Back in AUTHED: DATA without CHPW is out of sequence.
        EXPECT_EQ(w.line("DATA"), 503);
    }
}

TEST(Session, PasswordWithControlCharacterOrBadUtf8IsRefused) {
    for (std::string pw : {std::string("tab\there", 8), std::string("nul\0x", 5),
                           std::string("bad\xff\xfe"), std::string("over\xc0\xaflong"),
                           std::string("c1\xc2\x85")}) {
        Wire w;
        w.login();
        w.send("CHPW alice\r\nDATA\r\n");
        w.send(pw + "\r\n");
        EXPECT_EQ(w.line("."), 501);
        EXPECT_TRUE(w.host.changes.empty());
    }
    Wire w;
    w.login();
    w.send("CHPW alice\r\nDATA\r\nP\xc3\xa4sswort-\xe2\x82\xac\r\n");
    EXPECT_EQ(w.line("."), 250);
    ASSERT_EQ(w.host.changes.size(), 1U);
}

TEST(Session, EndOfInputDuringDataChangesNothing) {
    Wire w;
    w.login();
    w.send("CHPW alice\r\nDATA\r\nN3w-Passw0rd!\r\n");
    w.session.on_end_of_input();
    EXPECT_TRUE(w.session.closed());
    EXPECT_TRUE(w.host.changes.empty());
    EXPECT_NE(w.host.all_log().find("nothing changed"), std::string::npos);
}

TEST(Session, TimeoutAnswers421AndCloses) {
    Wire w;
    w.login();
    w.send("CHPW alice\r\nDATA\r\nN3w-Passw0rd!\r\n");
    const auto r = w.session.on_timeout();
    EXPECT_EQ(r.code, mctp::Code::unavailable);
    EXPECT_EQ(r.text, "target timeout");
    EXPECT_TRUE(r.close);
    EXPECT_TRUE(w.host.changes.empty());
}

TEST(Session, AuthFailuresAreDelayedAndLimited) {
    Wire w(128, 3);
    w.line("HELO ctl");
    EXPECT_EQ(w.line("AUTH wrong-1"), 530);
    EXPECT_EQ(w.last().delay, std::chrono::milliseconds(1500));
    EXPECT_FALSE(w.last().close);
    // RSET does not reset the count.
    EXPECT_EQ(w.line("RSET"), 250);
    w.line("HELO ctl");
    EXPECT_EQ(w.line("AUTH wrong-2"), 530);
    EXPECT_EQ(w.line("AUTH wrong-3"), 421);
    EXPECT_TRUE(w.last().close);
    EXPECT_EQ(w.last().delay, std::chrono::milliseconds(1500));
    EXPECT_TRUE(w.session.closed());
    // A closed session accepts nothing, not even the right secret.
    EXPECT_EQ(w.session.on_line("AUTH good-secret-1").code, mctp::Code::bad_sequence);
    EXPECT_TRUE(w.session.closed());
}

TEST(Session, SuccessfulAuthHasNoDelay) {
    Wire w;
    w.line("HELO ctl");
    EXPECT_EQ(w.line("AUTH good-secret-1"), 250);
    EXPECT_EQ(w.last().delay.count(), 0);
}

TEST(Session, RsetRequiresHeloAndAuthAgain) {
    Wire w;
    w.login();
    w.line("CHPW alice");
    EXPECT_EQ(w.line("RSET"), 250);
    EXPECT_EQ(w.line("VRFY alice"), 503);
    EXPECT_EQ(w.line("AUTH good-secret-1"), 503);
    EXPECT_EQ(w.line("HELO ctl"), 250);
    EXPECT_EQ(w.line("AUTH good-secret-1"), 250);
    EXPECT_EQ(w.line("DATA"), 503);  // the pending change went with RSET
}

TEST(Session, SecretsAndPasswordsNeverReachLogOrReplies) {
    Wire w(128, 5);
    w.line("HELO ctl");
    w.line("AUTH Wr0ng-S3cret-zz");
    w.line("AUTH good-secret-1");
    w.send("CHPW alice\r\nDATA\r\nN3w-Passw0rd!\r\n.\r\n");
    w.host.next_result = {mctp::ChangeResult::Kind::refused, "too simple"};
    w.send("CHPW bob\r\nDATA\r\nS3cond-Pw!\r\n.\r\n");
    w.send("CHPW bob\r\nDATA\r\nQUIT\r\nline2\r\n.\r\n");
    w.send("TEST bob\r\nDATA\r\nT3st-Pw-One!\r\n.\r\n");
    w.host.next_test = {mctp::ChangeResult::Kind::refused, "too simple to test"};
    w.send("TEST bob\r\nDATA\r\nT3st-Pw-Two!\r\n.\r\n");
    std::string replies;
    for (const auto& r : w.replies) {
        replies += r.text + "\n";
    }
    const std::string log = w.host.all_log();
    for (const char* secret : {"Wr0ng-S3cret-zz", "good-secret-1", "N3w-Passw0rd!", "S3cond-Pw!",
                               "line2", "T3st-Pw-One!", "T3st-Pw-Two!"}) {
        EXPECT_EQ(log.find(secret), std::string::npos) << secret;
        EXPECT_EQ(replies.find(secret), std::string::npos) << secret;
    }
    EXPECT_NE(log.find("password changed for alice"), std::string::npos);
    EXPECT_NE(log.find("refused by PAM: too simple"), std::string::npos);
    EXPECT_NE(log.find("test for bob: password acceptable"), std::string::npos);
    EXPECT_NE(log.find("test for bob refused by PAM: too simple to test"), std::string::npos);
}

// --- the wire: framing, verbs, arguments -------------------------------

TEST(Wire, CrLfAndBareLfBothEndALine) {
    Wire w;
    EXPECT_EQ(w.send("NOOP\r\nNOOP\nHELP\r\n"), (std::vector<int>{250, 250, 250}));
}

TEST(Wire, LowerCaseVerbsAreAccepted) {
    Wire w;
    EXPECT_EQ(w.line("helo ctl"), 250);
    EXPECT_EQ(w.line("aUtH good-secret-1"), 250);
    EXPECT_EQ(w.line("vrfy alice"), 250);
}

TEST(Wire, PipelinedCommandsAreAnsweredInOrder) {
    Wire w;
    EXPECT_EQ(w.send("HELO ctl\r\nAUTH good-secret-1\r\nCHPW alice\r\nDATA\r\nPw-1234567\r\n"
                     ".\r\nQUIT\r\nNOOP\r\n"),
              (std::vector<int>{250, 250, 250, 354, 355, 250, 221}));
    EXPECT_EQ(w.host.changes.size(), 1U);
}

TEST(Wire, CommandSplitAcrossReads) {
    Wire w;
    EXPECT_TRUE(w.send("HE").empty());
    EXPECT_TRUE(w.send("LO c").empty());
    EXPECT_EQ(w.send("tl\r"), std::vector<int>{});
    EXPECT_EQ(w.send("\n"), std::vector<int>{250});
}

TEST(Wire, LineOfExactlyLineMaxIsAcceptedOneOverIsNot) {
    // 128 octets with CRLF: "VRFY " + 121 + CRLF.
    const std::string name121(121, 'a');
    Wire w;
    w.login();
    EXPECT_EQ(w.send("VRFY " + name121 + "\r\n"), std::vector<int>{501});  // too long a name, but read
    EXPECT_EQ(w.last().text, "not a valid user name");
    EXPECT_EQ(w.send("VRFY " + name121 + "a\r\n"), std::vector<int>{501});
    EXPECT_NE(w.last().text.find("line too long"), std::string::npos);
    // With a bare LF the terminator is one octet: 127 + LF fits.
    EXPECT_EQ(w.send("NOOP" + std::string(123, ' ') + "\n"), std::vector<int>{501});
    EXPECT_EQ(w.last().text, "NOOP takes no argument");
    EXPECT_EQ(w.send("NOOP" + std::string(124, ' ') + "\n"), std::vector<int>{501});
    EXPECT_NE(w.last().text.find("line too long"), std::string::npos);
}

TEST(Wire, OverLongLineGets501OnceAndItsRestIsNeverACommand) {
    Wire w;
    // The tail of the long line spells a command; it must not run.
    const std::string tail = "QUIT";
    const auto codes = w.send(std::string(300, 'x') + tail + "\r\nNOOP\r\n");
    EXPECT_EQ(codes, (std::vector<int>{501, 250}));
    EXPECT_FALSE(w.session.closed());
}

TEST(Wire, LongerLineMaxIsHonoured) {
    Wire w(512);
    EXPECT_EQ(w.line("NOOP" + std::string(300, ' ')), 501);
    EXPECT_EQ(w.last().text, "NOOP takes no argument");
}

TEST(Wire, NulAndHighBitBytesInCommandsAre501) {
    Wire w;
    EXPECT_EQ(w.send(std::string("NO\0OP\r\n", 7)), std::vector<int>{501});
    EXPECT_EQ(w.send("HELO caf\xc3\xa9\r\n"), std::vector<int>{501});
    EXPECT_EQ(w.send("HELO\tctl\r\n"), std::vector<int>{501});
    EXPECT_EQ(w.session.state(), State::connected);
}

TEST(Wire, MissingAndExtraArguments) {
    Wire w;
    EXPECT_EQ(w.line("HELO"), 501);
    EXPECT_EQ(w.line("HELO "), 501);
    EXPECT_EQ(w.line("HELO  ctl"), 501);      // two spaces
    EXPECT_EQ(w.line("HELO ctl extra"), 501);  // a second argument
    EXPECT_EQ(w.line("HELO bad/name"), 501);
    EXPECT_EQ(w.line("NOOP now"), 501);
    EXPECT_EQ(w.line("QUIT now"), 501);
    EXPECT_FALSE(w.session.closed());
    EXPECT_EQ(w.line("HELO ctl"), 250);
    EXPECT_EQ(w.line("AUTH"), 501);
    EXPECT_EQ(w.line("AUTH good-secret-1"), 250);
    EXPECT_EQ(w.line("VRFY"), 501);
    EXPECT_EQ(w.line("CHPW"), 501);
    EXPECT_EQ(w.line("CHPW alice bob"), 501);
    EXPECT_EQ(w.line("VRFY -alice"), 501);
    EXPECT_EQ(w.line("VRFY " + std::string(33, 'a')), 501);
    EXPECT_EQ(w.line("CHPW alice"), 250);
    EXPECT_EQ(w.line("DATA now"), 501);
    EXPECT_EQ(w.session.state(), State::pending);
}

TEST(Wire, UnknownAndMalformedVerbs) {
    Wire w;
    EXPECT_EQ(w.line(""), 500);
    EXPECT_EQ(w.line("HELOX ctl"), 500);
    EXPECT_EQ(w.line("HEL"), 500);
    EXPECT_EQ(w.line("MAIL FROM:<x>"), 500);
}

TEST(Wire, OverLongDataLineFailsTheChangeAtTheDot) {
    Wire w;
    w.login();
    w.send("CHPW alice\r\nDATA\r\n");
    EXPECT_EQ(w.send(std::string(200, 'p') + "\r\n"), std::vector<int>{501});
    EXPECT_EQ(w.session.state(), State::receiving);
    EXPECT_EQ(w.line("."), 501);
    EXPECT_TRUE(w.host.changes.empty());
    EXPECT_EQ(w.session.state(), State::authed);
}

TEST(Wire, CrOnlyBeforeLfIsDropped) {
    Wire w;
    w.login();
    w.send("CHPW alice\r\nDATA\r\npass\rword-1\r\n.\r\n");
    // A CR inside the line is a control character: refused.
    EXPECT_EQ(w.last().code, mctp::Code::syntax_error);
    EXPECT_TRUE(w.host.changes.empty());
}

}  // namespace

// EHLO and AUTH SCRAM-SHA-256 (mpasswd-protocol(7)).
namespace {

std::string b64(std::string_view s) { return mctp::scram::base64(s); }
std::string unb64(std::string_view s) { return mctp::scram::unbase64(s).value_or(""); }

// The text of a 334 reply, decoded.
std::string challenge(const Wire& w) {
    EXPECT_EQ(mctp::number(w.last().code), 334);
    EXPECT_TRUE(w.last().long_line);
    return unb64(w.last().text);
}

}  // namespace

TEST(Ehlo, ListsTheMechanismsAndLineMax) {
    Wire w;
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    EXPECT_EQ(w.session.state(), State::greeted);
    EXPECT_EQ(w.last().text, "target hello ctl [192.0.2.7]");
    EXPECT_EQ(w.last().more,
              (std::vector<std::string>{"AUTH SCRAM-SHA-256", "TEST", "PIPELINING",
                                        "LINEMAX 128"}));
    EXPECT_EQ(mctp::format_reply(w.last(), 128),
              "250-target hello ctl [192.0.2.7]\r\n250-AUTH SCRAM-SHA-256\r\n250-TEST\r\n"
              "250-PIPELINING\r\n250 LINEMAX 128\r\n");
    EXPECT_EQ(w.line("EHLO ctl"), 503);
    EXPECT_EQ(w.line("HELP"), 250);
    EXPECT_NE(w.last().text.find("EHLO"), std::string::npos);
}

TEST(Ehlo, OffersPlusOnlyWithAChannelBinding) {
    Wire w(128, 3, std::string(32, 'e'));
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    EXPECT_EQ(w.last().more[0], "AUTH SCRAM-SHA-256 SCRAM-SHA-256-PLUS");
}

TEST(Scram, AFullExchangeAuthenticatesOnlyAfterTheEmptyLine) {
    Wire w;
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    mctp::scram::Client c("ctl");
    ASSERT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 334);
    std::string why;
    const auto final = c.final(challenge(w), w.host.secret, &why);
    ASSERT_TRUE(final) << why;
    ASSERT_EQ(w.line(b64(*final)), 334);
    EXPECT_TRUE(c.verify(challenge(w), &why)) << why;
    EXPECT_EQ(w.session.state(), State::greeted);
    ASSERT_EQ(w.line(""), 250);
    EXPECT_EQ(w.last().text, "authenticated as ctl");
    EXPECT_EQ(w.session.state(), State::authed);
    EXPECT_EQ(w.line("VRFY alice"), 250);
    // The log names the controller and the mechanism, and no hidden part.
    const std::string log = w.host.all_log();
    EXPECT_NE(log.find("AUTH ok: controller ctl (SCRAM-SHA-256)"), std::string::npos) << log;
    for (const auto& part : {c.first(), *final, unb64(w.replies[2].text)}) {
        EXPECT_EQ(log.find(part.substr(part.find("r="), 30)), std::string::npos) << log;
    }
    EXPECT_EQ(log.find(final->substr(final->find("p="))), std::string::npos);
}

TEST(Scram, AWrongProofIs530WithTheDelayAndCounts) {
    Wire w(128, 2);
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    for (int i = 0; i < 2; ++i) {
        mctp::scram::Client c("ctl");
        ASSERT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 334);
        std::string why;
        const auto final = c.final(challenge(w), "wrong-secret", &why);
        const int code = w.line(b64(*final));
        EXPECT_EQ(w.last().delay, std::chrono::milliseconds(1500));
        if (i == 0) {
            EXPECT_EQ(code, 530);
            EXPECT_EQ(w.session.state(), State::greeted);
        } else {
            EXPECT_EQ(code, 421);  // max_auth_failures
            EXPECT_TRUE(w.session.closed());
        }
    }
}

TEST(Scram, AnUnknownControllerIs530) {
    Wire w;
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    mctp::scram::Client c("other");
    EXPECT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 530);
    EXPECT_EQ(w.last().delay, std::chrono::milliseconds(1500));
}

TEST(Scram, StarCancelsAndACommandAbandonsWith503) {
    Wire w;
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    mctp::scram::Client c("ctl");
    ASSERT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 334);
    EXPECT_EQ(w.line("*"), 501);
    EXPECT_EQ(w.last().text, "AUTH cancelled");
    EXPECT_FALSE(w.session.long_lines());
    // Back to GREETED: commands work again, AUTH may start over.
    EXPECT_EQ(w.line("NOOP"), 250);
    ASSERT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 334);
    EXPECT_EQ(w.line("QUIT"), 503);  // not a QUIT: the exchange is abandoned
    EXPECT_FALSE(w.session.closed());
    EXPECT_EQ(w.session.state(), State::greeted);
    ASSERT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 334);
    EXPECT_EQ(w.line("vrfy alice"), 503);
    EXPECT_EQ(w.line("VRFY alice"), 503);  // now out of sequence: not authenticated
    EXPECT_EQ(w.host.scram_finals, 0U);
    // After server-final only an empty line completes it.
    ASSERT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 334);
    std::string why;
    ASSERT_EQ(w.line(b64(*c.final(challenge(w), w.host.secret, &why))), 334);
    EXPECT_EQ(w.line("Zm9v"), 501);
    EXPECT_EQ(w.session.state(), State::greeted);
}

TEST(Scram, LongLinesUpTo1024OnlyForAuth) {
    Wire w;
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    // A 1024-octet AUTH line is read (and refused for its content, not
    // its length); one octet more is 501 and its rest never a command.
    const std::string pad = "AUTH SCRAM-SHA-256 ";
    EXPECT_EQ(w.line(pad + std::string(1022 - pad.size(), 'A')), 501);
    EXPECT_EQ(w.last().text, "the initial response is not base64");
    EXPECT_EQ(w.send(pad + std::string(1023 - pad.size(), 'A') + "\r\n"),
              (std::vector<int>{501}));
    EXPECT_NE(w.last().text.find("line too long"), std::string::npos);
    EXPECT_EQ(w.send(pad + std::string(1100, 'A') + "QUIT\r\n"), (std::vector<int>{501}));
    EXPECT_NE(w.last().text.find("line too long"), std::string::npos);
    EXPECT_FALSE(w.session.closed());
    // Other lines keep line_max, and so does the old AUTH <secret>.
    EXPECT_EQ(w.line("NOOP " + std::string(200, 'x')), 501);
    EXPECT_EQ(w.line("AUTH " + std::string(200, 'x')), 501);
    EXPECT_NE(w.last().text.find("at most 128"), std::string::npos);
    EXPECT_EQ(w.host.auth_checks, 0U);
    // During the exchange every line may be long; an over-long one is 501
    // and abandons it, and its rest is never a command.
    mctp::scram::Client c("ctl");
    ASSERT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(c.first())), 334);
    EXPECT_TRUE(w.session.long_lines());
    EXPECT_EQ(w.send(std::string(2000, 'B') + "QUIT\r\n"), (std::vector<int>{501}));
    EXPECT_NE(w.last().text.find("AUTH abandoned"), std::string::npos);
    EXPECT_FALSE(w.session.closed());
    EXPECT_EQ(w.host.scram_finals, 0U);
}

TEST(Scram, MechanismAndBindingMustAgree) {
    Wire w;
    ASSERT_EQ(w.line("EHLO ctl"), 250);
    mctp::scram::Client plain("ctl");
    // PLUS is not offered without a channel binding.
    EXPECT_EQ(w.line("AUTH SCRAM-SHA-256-PLUS " + b64(plain.first())), 501);
    mctp::scram::Client bound("ctl", mctp::scram::Binding::tls_exporter, std::string(32, 'x'));
    EXPECT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(bound.first())), 501);
    EXPECT_EQ(w.line("AUTH SCRAM-SHA-256"), 501);
    EXPECT_EQ(w.line("AUTH FOO-BAR " + b64(plain.first())), 501);
    EXPECT_EQ(w.line("AUTH SCRAM-SHA-256 !!!"), 501);
    // None of these was a failed authentication.
    EXPECT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(plain.first())), 334);
}

TEST(Scram, PlusBindsTheExchangeToTheChannel) {
    const std::string exporter(32, 'e');
    for (const bool same : {true, false}) {
        Wire w(128, 3, exporter);
        ASSERT_EQ(w.line("EHLO ctl"), 250);
        // A relay has its own TLS connection, so its own exporter.
        mctp::scram::Client c("ctl", mctp::scram::Binding::tls_exporter,
                              same ? exporter : std::string(32, 'r'));
        ASSERT_EQ(w.line("AUTH SCRAM-SHA-256-PLUS " + b64(c.first())), 334);
        std::string why;
        const auto final = c.final(challenge(w), w.host.secret, &why);
        EXPECT_EQ(w.line(b64(*final)), same ? 334 : 530);
        // "y" (could bind, but thinks the server cannot) is refused here.
        mctp::scram::Client y("ctl", mctp::scram::Binding::client_only);
        if (!same) {
            EXPECT_EQ(w.line("AUTH SCRAM-SHA-256 " + b64(y.first())), 530);
        }
    }
}
