// The client half of MCTP (protocol/client.hpp) without Asio: every step's
// success and failure, multi-line replies and their bound, lines that are
// not MCTP, the QUIT courtesy, dot-stuffing; then client and server
// (mctp::Session with the FakeHost) talking to each other in memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "client.hpp"
#include "dot.hpp"
#include "fake_host.hpp"
#include "fanout.hpp"
#include "memory_transport.hpp"

namespace {

using mctp::Client;
using mctp::Code;
using Kind = mctp::Client::Outcome::Kind;
using Step = mctp::Client::Step;
using namespace std::chrono_literals;

struct Lines {
    mctp::Secret secret{"test-secret-1"};
    mctp::Secret password{"New-Pw-1"};
    mctp::Secret auth = Client::auth_line(secret);
    mctp::Secret data = Client::data_line(password);

    // The old AUTH <secret> (auth=plain): fixed lines, so the scripts
    // below can say every reply. SCRAM has its own tests further down.
    Client make(Client::Action action, std::string user = "alice") {
        return Client({action, std::move(user), "ctl", &auth,
                       action == Client::Action::change ? &data : nullptr, Client::Auth::plain});
    }
};

// Everything the client says now, one string per line handed out.
std::vector<std::string> drain(Client& c) {
    std::vector<std::string> out;
    for (auto bytes = c.next(); !bytes.empty(); bytes = c.next()) {
        out.emplace_back(bytes);
        if (out.size() > 20) {
            ADD_FAILURE() << "the client does not stop talking";
            break;
        }
    }
    return out;
}

// The happy replies, one per step, for a verify or a change.
const std::vector<std::string> verify_replies{"220 t MCTP ready", "250 t hello ctl", "250 authed",
                                              "250 alice may be managed"};
const std::vector<std::string> change_replies{
    "220 t MCTP ready", "250 t hello ctl", "250 authed",        "250 change pending",
    "354 send it",      "355 go on",       "250 password changed"};
const std::vector<Step> change_steps{Step::banner, Step::ehlo,     Step::auth,       Step::chpw,
                                     Step::data,   Step::password, Step::end_of_data};

// Feeds `replies` one by one, after the client has said all it would
// before each; returns every line it sent.
std::vector<std::string> converse(Client& c, const std::vector<std::string>& replies) {
    std::vector<std::string> sent;
    for (const auto& r : replies) {
        for (auto& s : drain(c)) {
            sent.push_back(std::move(s));
        }
        c.on_line(r);
    }
    for (auto& s : drain(c)) {
        sent.push_back(std::move(s));
    }
    return sent;
}

TEST(Client, VerifyScript) {
    Lines l;
    Client c = l.make(Client::Action::verify);
    EXPECT_EQ(c.step(), Step::banner);
    EXPECT_TRUE(c.next().empty());  // nothing before the banner
    const auto sent = converse(c, verify_replies);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n",
                                              "VRFY alice\r\n", "QUIT\r\n"}));
    ASSERT_TRUE(c.finished());
    EXPECT_EQ(c.outcome().kind, Kind::ok);
    EXPECT_EQ(c.outcome().code, Code::ok);
    EXPECT_EQ(c.outcome().text, "alice may be managed");
    EXPECT_EQ(c.outcome().step, Step::vrfy);
    EXPECT_EQ(c.step(), Step::quit);
    EXPECT_FALSE(c.done());  // the reply to QUIT is due
    EXPECT_FALSE(c.end_of_data_sent());
    c.on_line("221 bye");
    EXPECT_TRUE(c.done());
    EXPECT_TRUE(c.next().empty());
}

TEST(Client, ChangeScript) {
    Lines l;
    Client c = l.make(Client::Action::change);
    std::vector<std::string> sent;
    for (std::size_t i = 0; i < change_replies.size(); ++i) {
        EXPECT_EQ(c.step(), change_steps[i]) << i;
        // The end of data not yet out: nothing can have changed.
        EXPECT_EQ(c.end_of_data_sent(), false) << i;
        for (auto& s : drain(c)) {
            sent.push_back(std::move(s));
        }
        EXPECT_EQ(c.end_of_data_sent(), i + 1 == change_replies.size()) << i;
        c.on_line(change_replies[i]);
    }
    EXPECT_EQ(drain(c), std::vector<std::string>{"QUIT\r\n"});
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n",
                                              "CHPW alice\r\n", "DATA\r\n", "New-Pw-1\r\n",
                                              ".\r\n"}));
    EXPECT_EQ(c.outcome().kind, Kind::ok);
    EXPECT_EQ(c.outcome().text, "password changed");
    EXPECT_EQ(c.outcome().step, Step::end_of_data);
}

TEST(Client, TestScriptNeedsTestInEhlo) {
    Lines l;
    const auto run = [&](const std::vector<std::string>& replies) {
        Client c({Client::Action::test, "alice", "ctl", &l.auth, &l.data, Client::Auth::plain});
        std::vector<std::string> sent;
        for (const auto& r : replies) {
            for (auto& s : drain(c)) {
                sent.push_back(std::move(s));
            }
            c.on_line(r);
        }
        for (auto& s : drain(c)) {
            sent.push_back(std::move(s));
        }
        return std::make_pair(c.outcome(), sent);
    };
    auto [o, sent] = run({"220 t MCTP ready", "250-t hello ctl", "250 TEST", "250 authed",
                          "250 test pending", "354 send it", "355 go on",
                          "554 BAD PASSWORD: too short"});
    EXPECT_EQ(o.kind, Kind::refused);
    EXPECT_EQ(o.text, "BAD PASSWORD: too short");
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n",
                                              "TEST alice\r\n", "DATA\r\n", "New-Pw-1\r\n",
                                              ".\r\n", "QUIT\r\n"}));
    // No TEST in EHLO: unsupported, and nothing but QUIT after EHLO.
    std::tie(o, sent) = run({"220 t MCTP ready", "250-t hello ctl", "250 LINEMAX 128"});
    EXPECT_EQ(o.kind, Kind::unsupported);
    EXPECT_EQ(o.step, Step::ehlo);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"}));
    // No EHLO at all (an old responder): unsupported too, no HELO fallback.
    std::tie(o, sent) = run({"220 t MCTP ready", "500 unknown command"});
    EXPECT_EQ(o.kind, Kind::unsupported);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"}));
}

TEST(Client, StepNamesAreTheReportsOnes) {
    EXPECT_EQ(mctp::to_string(Step::banner), "banner");
    EXPECT_EQ(mctp::to_string(Step::helo), "HELO");
    EXPECT_EQ(mctp::to_string(Step::auth), "AUTH");
    EXPECT_EQ(mctp::to_string(Step::vrfy), "VRFY");
    EXPECT_EQ(mctp::to_string(Step::chpw), "CHPW");
    EXPECT_EQ(mctp::to_string(Step::data), "DATA");
    EXPECT_EQ(mctp::to_string(Step::password), "password");
    EXPECT_EQ(mctp::to_string(Step::end_of_data), "end of data");
    EXPECT_EQ(mctp::to_string(Step::quit), "QUIT");
}

TEST(Client, ClosingCodes) {
    EXPECT_TRUE(mctp::closes(Code::unavailable));
    EXPECT_TRUE(mctp::closes(Code::controller_rejected));
    for (const Code c : {Code::ready, Code::ok, Code::closing, Code::start_data,
                         Code::local_error, Code::syntax_error, Code::bad_sequence,
                         Code::access_denied, Code::user_unknown, Code::transaction_failed}) {
        EXPECT_FALSE(mctp::closes(c)) << mctp::number(c);
    }
}

// Every failure code at every step of a change: a refusal, with a QUIT
// after it unless the reply closed the session.
TEST(Client, EveryRefusalAtEveryStep) {
    Lines l;
    for (std::size_t at = 0; at < change_replies.size(); ++at) {
        for (const int code : {421, 451, 500, 501, 503, 521, 530, 551, 554, 499, 599}) {
            if (at == 1 && code == 500) {
                continue;  // EHLO unknown: HELO instead (ScramClient.PlainFallsBackToHelo)
            }
            Client c = l.make(Client::Action::change);
            std::vector<std::string> replies(change_replies.begin(),
                                             change_replies.begin() + static_cast<long>(at));
            replies.push_back(std::to_string(code) + " no \x1b[2J way");
            auto sent = converse(c, replies);
            if (change_steps[at] == Step::password && code != 421 && code != 521) {
                // The target may still be reading data: "." ends it, and
                // its refusal leaves the password line's reported.
                ASSERT_FALSE(c.finished()) << code;
                ASSERT_EQ(sent.back(), ".\r\n") << code;
                c.on_line("501 a data line was refused");
                sent.pop_back();
                for (auto& line : drain(c)) {
                    sent.push_back(std::move(line));
                }
            }
            ASSERT_TRUE(c.finished()) << at << " " << code;
            EXPECT_EQ(c.outcome().kind, Kind::refused);
            EXPECT_EQ(mctp::number(*c.outcome().code), code);
            EXPECT_EQ(c.outcome().text, "no [2J way");  // printable ASCII only
            EXPECT_EQ(c.outcome().step, change_steps[at]);
            EXPECT_EQ(sent.size(), at + (code == 421 || code == 521 ? 0 : 1)) << at << " " << code;
            if (code == 421 || code == 521) {
                EXPECT_TRUE(c.done());
                EXPECT_TRUE(sent.empty() || sent.back() != "QUIT\r\n");
            } else {
                EXPECT_EQ(sent.back(), "QUIT\r\n");
                EXPECT_EQ(c.step(), Step::quit);
                EXPECT_FALSE(c.done());
                // Whatever the answer to QUIT, the client is done.
                c.on_line("\x01 not even MCTP");
                EXPECT_TRUE(c.done());
                EXPECT_EQ(c.outcome().kind, Kind::refused);
            }
            EXPECT_TRUE(c.next().empty());
        }
    }
    // And at VRFY.
    Client c = l.make(Client::Action::verify, "nobody");
    const auto sent = converse(c, {"220 t", "250 hi", "250 ok", "551 nobody unknown"});
    EXPECT_EQ(c.outcome().kind, Kind::refused);
    EXPECT_EQ(c.outcome().code, Code::user_unknown);
    EXPECT_EQ(c.outcome().step, Step::vrfy);
    EXPECT_EQ(sent.back(), "QUIT\r\n");
}

// A success code that is not the one due: a protocol error, and no QUIT
// to a peer whose state is unknown.
TEST(Client, UnexpectedCodeAtEveryStep) {
    Lines l;
    const std::vector<std::string> wrong{"250 not a banner", "220 again", "354 what",
                                         "355 eh",           "250 no data", "250 skipped",
                                         "354 hm"};
    for (std::size_t at = 0; at < change_replies.size(); ++at) {
        Client c = l.make(Client::Action::change);
        std::vector<std::string> replies(change_replies.begin(),
                                         change_replies.begin() + static_cast<long>(at));
        replies.push_back(wrong[at]);
        const auto sent = converse(c, replies);
        EXPECT_EQ(c.outcome().kind, Kind::protocol_error) << at;
        EXPECT_EQ(c.outcome().step, change_steps[at]);
        EXPECT_EQ(mctp::number(*c.outcome().code), std::stoi(wrong[at].substr(0, 3)));
        EXPECT_EQ(c.outcome().text, "unexpected reply " + wrong[at]);
        EXPECT_EQ(sent.size(), at) << "no QUIT";
        EXPECT_TRUE(c.done());
    }
}

TEST(Client, LinesThatAreNotReplies) {
    Lines l;
    const std::string esc = "\x1b]0;pwned\x07";
    for (const auto& [line, shown] : std::vector<std::pair<std::string, std::string>>{
             {"SSH-2.0-OpenSSH_9.2", "'SSH-2.0-OpenSSH_9.2'"},
             {"", "''"},
             {"25", "'25'"},
             {"199 low", "'199 low'"},
             {"600 high", "'600 high'"},
             {"250x", "'250x'"},
             {"250\t tab", "'250\\x09 tab'"},
             {esc + "220 x", "'\\x1b]0;pwned\\x07220 x'"},
             {std::string(100, 'a'), "'" + std::string(61, 'a') + "...'"},
         }) {
        for (std::size_t at : {0U, 3U}) {
            Client c = l.make(Client::Action::verify);
            std::vector<std::string> replies(verify_replies.begin(),
                                             verify_replies.begin() + static_cast<long>(at));
            replies.push_back(line);
            const auto sent = converse(c, replies);
            EXPECT_EQ(c.outcome().kind, Kind::protocol_error) << line;
            EXPECT_FALSE(c.outcome().code);
            EXPECT_EQ(c.outcome().text, "not an MCTP reply: " + shown);
            EXPECT_EQ(sent.size(), at) << "no QUIT to a peer that is not MCTP";
            EXPECT_TRUE(c.done());
        }
    }
}

TEST(Client, MultiLineReplies) {
    Lines l;
    // Continuations, then the final line, at HELO (as EHLO will be).
    Client c = l.make(Client::Action::verify);
    std::vector<std::string> replies{"220 t", "250-t hello ctl", "250-TEST", "250-", "250 LINEMAX 128",
                                     "250 ok", "250-alice", "250 may be managed"};
    const auto sent = converse(c, replies);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n",
                                              "VRFY alice\r\n", "QUIT\r\n"}));
    EXPECT_EQ(c.outcome().kind, Kind::ok);
    EXPECT_EQ(c.outcome().text, "alice may be managed");

    // A refusal over several lines keeps them all, one space between.
    Client r = l.make(Client::Action::change);
    converse(r, {"220 t", "250 hi", "250 ok", "250 ok", "354 go", "355 ok", "554-BAD PASSWORD:",
                 "554 it is too short"});
    EXPECT_EQ(r.outcome().kind, Kind::refused);
    EXPECT_EQ(r.outcome().code, Code::transaction_failed);
    EXPECT_EQ(r.outcome().text, "BAD PASSWORD: it is too short");

    // A code that changes within one reply is not MCTP.
    Client m = l.make(Client::Action::verify);
    const auto m_sent = converse(m, {"220 t", "250-hello", "554 no"});
    EXPECT_EQ(m.outcome().kind, Kind::protocol_error);
    EXPECT_EQ(m.outcome().text, "a multi-line reply that changes its code: '554 no'");
    EXPECT_EQ(m.outcome().step, Step::ehlo);
    EXPECT_EQ(m_sent.size(), 1U);
}

TEST(Client, MultiLineRepliesAreBounded) {
    Lines l;
    // reply_lines_max lines in all: accepted.
    Client c = l.make(Client::Action::verify);
    std::vector<std::string> replies{"220 t"};
    for (std::size_t i = 1; i < mctp::reply_lines_max; ++i) {
        replies.push_back("250-line " + std::to_string(i));
    }
    replies.emplace_back("250 last");
    converse(c, replies);
    EXPECT_FALSE(c.finished());
    EXPECT_EQ(c.step(), Step::auth);
    // One continuation more: a protocol error at once, before any final line.
    Client d = l.make(Client::Action::verify);
    replies.pop_back();
    replies.emplace_back("250-one too many");
    const auto sent = converse(d, replies);
    EXPECT_EQ(d.outcome().kind, Kind::protocol_error);
    EXPECT_EQ(d.outcome().text, "reply longer than 16 lines");
    EXPECT_EQ(d.outcome().step, Step::ehlo);
    EXPECT_EQ(sent, std::vector<std::string>{"EHLO ctl\r\n"});
    EXPECT_TRUE(d.done());
}

TEST(Client, PasswordOnlyAfter354AndDotStuffed) {
    Lines l;
    l.password = mctp::Secret(".dot-first");
    l.data = Client::data_line(l.password);
    EXPECT_EQ(l.data.view(), "..dot-first\r\n");
    Client c = l.make(Client::Action::change);
    std::vector<std::string> all;
    for (std::size_t i = 0; i < 5; ++i) {
        for (auto& s : drain(c)) {
            EXPECT_EQ(s.find("dot-first"), std::string::npos) << "before 354: " << s;
            all.push_back(std::move(s));
        }
        c.on_line(change_replies[i]);
    }
    EXPECT_EQ(drain(c), std::vector<std::string>{"..dot-first\r\n"});
    // A refused data line: "." ends the data (the target may still be
    // reading it); its refusal keeps the first one's code and step.
    c.on_line("555 .dot-first");
    EXPECT_FALSE(c.finished());
    EXPECT_EQ(drain(c), std::vector<std::string>{".\r\n"});
    c.on_line("501 no");
    EXPECT_EQ(c.outcome().step, Step::password);
    EXPECT_EQ(c.outcome().code, Code(555));
    EXPECT_EQ(Client::data_line(mctp::Secret("plain")).view(), "plain\r\n");
    EXPECT_EQ(Client::auth_line(l.secret).view(), "AUTH test-secret-1\r\n");
}

TEST(Client, DotStuffingRoundTrips) {
    for (const std::string_view pw : {".", "..", ".a", "a.", "...x", "x"}) {
        const std::string wire = std::string(mctp::dot::stuffing(pw)) + std::string(pw);
        EXPECT_FALSE(mctp::dot::is_end(wire)) << pw;
        EXPECT_EQ(mctp::dot::unstuff(wire), pw);
    }
    EXPECT_TRUE(mctp::dot::is_end("."));
    EXPECT_EQ(mctp::dot::stuffing("x"), "");
}

TEST(Client, AReplyBeforeTheCommandAndLinesAfterTheEnd) {
    Lines l;
    Client c = l.make(Client::Action::verify);
    c.on_line("220 t");
    // HELO is due but was not asked for: a reply now is not to it.
    c.on_line("250 pipelined?");
    EXPECT_EQ(c.outcome().kind, Kind::protocol_error);
    EXPECT_EQ(c.outcome().text, "a reply before the command: '250 pipelined?'");
    EXPECT_TRUE(c.done());
    EXPECT_TRUE(c.next().empty());
    c.on_line("250 more");
    EXPECT_EQ(c.outcome().text, "a reply before the command: '250 pipelined?'");

    // A refusal decided: lines before QUIT went out change nothing.
    Client r = l.make(Client::Action::verify);
    r.on_line("530 no");
    r.on_line("250 now yes");
    EXPECT_EQ(r.outcome().kind, Kind::refused);
    EXPECT_EQ(drain(r), std::vector<std::string>{"QUIT\r\n"});
    EXPECT_FALSE(r.done());
    r.on_line("221 bye");
    EXPECT_TRUE(r.done());
}

TEST(Client, BadJobsAreRefusedBeforeAnything) {
    Lines l;
    const auto make = [&](Client::Action a, std::string user, std::string helo,
                          const mctp::Secret* auth, const mctp::Secret* data) {
        try {
            Client c({a, std::move(user), std::move(helo), auth, data, Client::Auth::plain});
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("(made)");
    };
    const mctp::Secret empty;
    EXPECT_EQ(make(Client::Action::verify, "alice", "ctl", &l.auth, nullptr), "(made)");
    EXPECT_EQ(make(Client::Action::verify, "al ice", "ctl", &l.auth, nullptr),
              "MCTP client: not a valid user name");
    EXPECT_EQ(make(Client::Action::verify, "alice\r\nRSET", "ctl", &l.auth, nullptr),
              "MCTP client: not a valid user name");
    EXPECT_EQ(make(Client::Action::verify, "alice", "c tl", &l.auth, nullptr),
              "MCTP client: not a valid HELO name");
    EXPECT_EQ(make(Client::Action::verify, "alice", "ctl", nullptr, nullptr),
              "MCTP client: no AUTH line");
    EXPECT_EQ(make(Client::Action::verify, "alice", "ctl", &empty, nullptr),
              "MCTP client: no AUTH line");
    EXPECT_EQ(make(Client::Action::change, "alice", "ctl", &l.auth, nullptr),
              "MCTP client: no password line");
    EXPECT_EQ(make(Client::Action::change, "alice", "ctl", &l.auth, &empty),
              "MCTP client: no password line");
    // SCRAM needs the secret itself.
    for (const mctp::Secret* secret : {static_cast<const mctp::Secret*>(nullptr), &empty}) {
        EXPECT_THROW(Client({Client::Action::verify, "alice", "ctl", nullptr, nullptr,
                             Client::Auth::scram, secret}),
                     std::invalid_argument);
    }
}

// ---- account operations and batches (EXPR, LOCK, UNLK, CHCK) ----

// An EHLO reply announcing the account verbs (or only `announced`).
std::vector<std::string> ehlo_with(const std::vector<std::string>& announced) {
    std::vector<std::string> lines{"250-t hello ctl"};
    for (const auto& v : announced) {
        lines.push_back("250-" + v);
    }
    lines.emplace_back("250 LINEMAX 128");
    return lines;
}

// Runs a client on plain AUTH: the banner, EHLO's lines, then `replies`.
std::pair<Client, std::vector<std::string>> account_run(
    Lines& l, Client::Job job, const std::vector<std::string>& announced,
    const std::vector<std::string>& replies) {
    job.auth_line = &l.auth;
    job.auth = Client::Auth::plain;
    Client c(std::move(job));
    std::vector<std::string> all{"220 t MCTP ready"};
    for (auto& e : ehlo_with(announced)) {
        all.push_back(std::move(e));
    }
    all.insert(all.end(), replies.begin(), replies.end());
    auto sent = converse(c, all);
    return {std::move(c), std::move(sent)};
}

const std::vector<std::string> all_verbs{"TEST", "EXPR", "LOCK", "UNLK", "CHCK"};

TEST(AccountClient, ExprLockUnlkSendOneLineEach) {
    Lines l;
    const std::vector<std::tuple<Client::Action, std::string, Step>> cases{
        {Client::Action::expire, "EXPR", Step::expr},
        {Client::Action::lock, "LOCK", Step::lock},
        {Client::Action::unlock, "UNLK", Step::unlk}};
    for (const auto& [action, verb, step] : cases) {
        auto [c, sent] = account_run(l, {action, "alice", "ctl"}, all_verbs,
                                     {"250 authed", "250 done for alice"});
        EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n",
                                                  verb + " alice\r\n", "QUIT\r\n"}))
            << verb;
        EXPECT_EQ(c.outcome().kind, Kind::ok) << verb;
        EXPECT_EQ(c.outcome().step, step);
        EXPECT_EQ(mctp::to_string(step), verb);
        ASSERT_EQ(c.items().size(), 1U);
        EXPECT_EQ(c.items()[0].outcome.kind, Kind::ok);
        EXPECT_TRUE(c.items()[0].acted);  // the verb itself may change the account
        // A refusal of the verb: refused with its code and text.
        auto [r, rsent] = account_run(l, {action, "alice", "ctl"}, all_verbs,
                                      {"250 authed", "550 alice is not in /etc/shadow"});
        EXPECT_EQ(r.outcome().kind, Kind::refused) << verb;
        EXPECT_EQ(r.outcome().code, Code(550));
        EXPECT_EQ(r.outcome().text, "alice is not in /etc/shadow");
        EXPECT_EQ(r.outcome().step, step);
    }
}

TEST(AccountClient, CheckIsOkOrDifferent) {
    Lines l;
    const auto check = [&](const std::string& last) {
        return account_run(l, {Client::Action::check, "alice", "ctl", nullptr, &l.data},
                           all_verbs,
                           {"250 authed", "250 check pending", "354 send it", "355 go on", last});
    };
    auto [ok, sent] = check("250 alice's current password");
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n",
                                              "CHCK alice\r\n", "DATA\r\n", "New-Pw-1\r\n",
                                              ".\r\n", "QUIT\r\n"}));
    EXPECT_EQ(ok.outcome().kind, Kind::ok);
    EXPECT_FALSE(ok.items()[0].acted);  // CHCK changes nothing
    auto [diff, dsent] = check("554 not alice's current password");
    EXPECT_EQ(diff.outcome().kind, Kind::different);
    EXPECT_EQ(diff.outcome().code, Code::transaction_failed);
    EXPECT_EQ(diff.outcome().step, Step::end_of_data);
    EXPECT_EQ(diff.items()[0].outcome.kind, Kind::different);
    EXPECT_EQ(dsent.back(), "QUIT\r\n");
    // 554 anywhere else, or another code at the end, is a refusal.
    auto [other, osent] = check("451 cannot read the shadow file");
    EXPECT_EQ(other.outcome().kind, Kind::refused);
    auto [early, esent] = account_run(l, {Client::Action::check, "alice", "ctl", nullptr, &l.data},
                                      all_verbs, {"250 authed", "554 no"});
    EXPECT_EQ(early.outcome().kind, Kind::refused);
    EXPECT_EQ(early.outcome().step, Step::chck);
    // A check without a password line is refused before anything.
    EXPECT_THROW(Client({Client::Action::check, "alice", "ctl", &l.auth, nullptr,
                         Client::Auth::plain}),
                 std::invalid_argument);
}

// A target that does not announce the verb is unsupported and gets
// nothing after EHLO but QUIT: no AUTH, no verb, no password.
TEST(AccountClient, AVerbNotAnnouncedIsUnsupportedAndNothingIsSent) {
    Lines l;
    const std::vector<std::pair<Client::Action, std::string>> cases{
        {Client::Action::expire, "EXPR"}, {Client::Action::lock, "LOCK"},
        {Client::Action::unlock, "UNLK"}, {Client::Action::check, "CHCK"}};
    for (const auto& [action, verb] : cases) {
        std::vector<std::string> others;
        for (const auto& v : all_verbs) {
            if (v != verb) {
                others.push_back(v);
            }
        }
        const mctp::Secret* data = action == Client::Action::check ? &l.data : nullptr;
        auto [c, sent] = account_run(l, {action, "alice", "ctl", nullptr, data}, others, {});
        EXPECT_EQ(c.outcome().kind, Kind::unsupported) << verb;
        EXPECT_EQ(c.outcome().step, Step::ehlo);
        EXPECT_NE(c.outcome().text.find("does not announce " + verb), std::string::npos)
            << c.outcome().text;
        EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"})) << verb;
        EXPECT_EQ(c.items()[0].outcome.kind, Kind::pending);
        EXPECT_FALSE(c.items()[0].started);
        // An old target that does not know EHLO: no HELO fallback either.
        Client old({action, "alice", "ctl", &l.auth, data, Client::Auth::plain});
        const auto osent = converse(old, {"220 t MCTP ready", "500 unknown command"});
        EXPECT_EQ(old.outcome().kind, Kind::unsupported) << verb;
        EXPECT_EQ(osent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"}));
    }
    // EXPR after a change needs EXPR announced too.
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.then_expire = true;
    auto [c, sent] = account_run(l, job, {"TEST"}, {});
    EXPECT_EQ(c.outcome().kind, Kind::unsupported);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"}));
}

TEST(AccountClient, ChangeThenExpireInOneItem) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.then_expire = true;
    const std::vector<std::string> to_chpw{"250 authed", "250 change pending", "354 send it",
                                           "355 go on"};
    auto replies = to_chpw;
    replies.emplace_back("250 password changed");
    replies.emplace_back("250 alice must change it at the next login");
    auto [c, sent] = account_run(l, job, all_verbs, replies);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n",
                                              "CHPW alice\r\n", "DATA\r\n", "New-Pw-1\r\n",
                                              ".\r\n", "EXPR alice\r\n", "QUIT\r\n"}));
    EXPECT_EQ(c.outcome().kind, Kind::ok);
    EXPECT_EQ(c.outcome().step, Step::expr);
    EXPECT_TRUE(c.items()[0].changed);
    // EXPR refused after the change: refused at EXPR, the password changed.
    replies = to_chpw;
    replies.emplace_back("250 password changed");
    replies.emplace_back("530 EXPR not allowed for this controller");
    auto [r, rsent] = account_run(l, job, all_verbs, replies);
    EXPECT_EQ(r.outcome().kind, Kind::refused);
    EXPECT_EQ(r.outcome().step, Step::expr);
    EXPECT_TRUE(r.items()[0].changed);
    // The CHPW refused: no EXPR at all.
    replies = to_chpw;
    replies.emplace_back("554 BAD PASSWORD: too short");
    auto [n, nsent] = account_run(l, job, all_verbs, replies);
    EXPECT_EQ(n.outcome().kind, Kind::refused);
    EXPECT_EQ(n.outcome().step, Step::end_of_data);
    EXPECT_FALSE(n.items()[0].changed);
    EXPECT_EQ(nsent.back(), "QUIT\r\n");
    EXPECT_EQ(std::count(nsent.begin(), nsent.end(), "EXPR alice\r\n"), 0);
    // EXPR after anything but a change is refused before anything.
    Client::Job bad{Client::Action::check, "alice", "ctl", &l.auth, &l.data, Client::Auth::plain};
    bad.then_expire = true;
    EXPECT_THROW(Client{bad}, std::invalid_argument);
    // A TEST before such a change needs EXPR announced, and sends none.
    Client::Job test{Client::Action::test, "alice", "ctl", nullptr, &l.data};
    test.then_expire = true;
    auto [u, usent] = account_run(l, test, {"TEST"}, {});
    EXPECT_EQ(u.outcome().kind, Kind::unsupported);
    EXPECT_NE(u.outcome().text.find("does not announce EXPR"), std::string::npos);
    EXPECT_EQ(usent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"}));
    auto [t, tsent] = account_run(l, test, all_verbs,
                                  {"250 authed", "250 test pending", "354 send it", "355 go on",
                                   "250 acceptable"});
    EXPECT_EQ(t.outcome().kind, Kind::ok);
    EXPECT_EQ(std::count(tsent.begin(), tsent.end(), "EXPR alice\r\n"), 0);
}

// Several users in one session: each gets its own outcome; a refusal
// of one does not stop the next.
TEST(AccountClient, ABatchServesEveryUserInOneSession) {
    Lines l;
    mctp::Secret bob_pw{".dotted"};
    const mctp::Secret bob_data = Client::data_line(bob_pw);
    Client::Job job{Client::Action::test, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::test, "bob", &bob_data}, {Client::Action::test, "carol", &l.data}};
    const std::vector<std::string> pass{"250 test pending", "354 send it", "355 go on",
                                        "250 acceptable"};
    std::vector<std::string> replies{"250 authed"};
    replies.insert(replies.end(), pass.begin(), pass.end());
    replies.insert(replies.end(), pass.begin(), pass.end() - 1);
    replies.emplace_back("554 BAD PASSWORD: too short");
    replies.insert(replies.end(), pass.begin(), pass.end());
    auto [c, sent] = account_run(l, job, all_verbs, replies);
    EXPECT_EQ(sent, (std::vector<std::string>{
                        "EHLO ctl\r\n", "AUTH test-secret-1\r\n", "TEST alice\r\n", "DATA\r\n",
                        "New-Pw-1\r\n", ".\r\n", "TEST bob\r\n", "DATA\r\n", "..dotted\r\n",
                        ".\r\n", "TEST carol\r\n", "DATA\r\n", "New-Pw-1\r\n", ".\r\n",
                        "QUIT\r\n"}));
    ASSERT_EQ(c.items().size(), 3U);
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::ok);
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::refused);
    EXPECT_EQ(c.items()[1].outcome.text, "BAD PASSWORD: too short");
    EXPECT_EQ(c.items()[1].outcome.step, Step::end_of_data);
    EXPECT_EQ(c.items()[2].outcome.kind, Kind::ok);
    EXPECT_EQ(c.outcome().kind, Kind::ok);  // the last user's
    for (const auto& item : c.items()) {
        EXPECT_FALSE(item.acted);  // TEST changes nothing
    }
}

TEST(AccountClient, ABatchCutShortDecidesTheUserUnderWayOnly) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::change, "bob", &l.data}, {Client::Action::change, "carol", &l.data}};
    const std::vector<std::string> pass{"250 change pending", "354 send it", "355 go on",
                                        "250 changed"};
    // 421 to bob's CHPW closes the session: bob refused, carol not started.
    std::vector<std::string> replies{"250 authed"};
    replies.insert(replies.end(), pass.begin(), pass.end());
    replies.emplace_back("421 shutting down");
    auto [c, sent] = account_run(l, job, all_verbs, replies);
    EXPECT_TRUE(c.done());
    EXPECT_EQ(sent.back(), "CHPW bob\r\n");  // no QUIT after 421
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::ok);
    EXPECT_TRUE(c.items()[0].changed);
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::refused);
    EXPECT_EQ(c.items()[1].outcome.code, Code::unavailable);
    EXPECT_FALSE(c.items()[1].acted);
    EXPECT_EQ(c.items()[2].outcome.kind, Kind::pending);
    EXPECT_FALSE(c.items()[2].started);
    // Not a reply after bob's end of data: a protocol error for bob, whose
    // password went out (acted); carol pending.
    replies.assign({"250 authed"});
    replies.insert(replies.end(), pass.begin(), pass.end());
    replies.insert(replies.end(), pass.begin(), pass.end() - 1);
    replies.emplace_back("garbage");
    auto [p, psent] = account_run(l, job, all_verbs, replies);
    EXPECT_EQ(p.outcome().kind, Kind::protocol_error);
    EXPECT_EQ(p.items()[1].outcome.kind, Kind::protocol_error);
    EXPECT_TRUE(p.items()[1].acted);
    EXPECT_FALSE(p.items()[1].changed);
    EXPECT_EQ(p.items()[2].outcome.kind, Kind::pending);
    EXPECT_FALSE(p.items()[2].started);
    // A bad user anywhere in the batch: refused before anything.
    job.more.push_back({Client::Action::change, "bad user", &l.data});
    job.auth_line = &l.auth;
    job.auth = Client::Auth::plain;
    EXPECT_THROW(Client{job}, std::invalid_argument);
}

// ---- PIPELINING ----

// A batch client that has read the banner, an EHLO announcing `announced`
// and the AUTH's 250: what it sent since the AUTH is next in line.
Client pipelined(Lines& l, Client::Job job,
                 const std::vector<std::string>& announced = {"PIPELINING", "EXPR"}) {
    job.auth_line = &l.auth;
    job.auth = Client::Auth::plain;
    Client c(std::move(job));
    std::vector<std::string> before{"220 t MCTP ready"};
    for (auto& e : ehlo_with(announced)) {
        before.push_back(std::move(e));
    }
    const auto sent = converse(c, before);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH test-secret-1\r\n"}))
        << "nothing goes ahead of EHLO and AUTH";
    c.on_line("250 authed");
    return c;
}

// Feeds one reply and returns what the client hands out after it.
std::vector<std::string> after(Client& c, const std::string& reply) {
    c.on_line(reply);
    return drain(c);
}

using Sent = std::vector<std::string>;

TEST(Pipelining, OneRoundTripPerUserAndThePasswordOnlyAfter354) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::change, "bob", &l.data}};
    Client c = pipelined(l, job);
    EXPECT_EQ(drain(c), (Sent{"CHPW alice\r\n", "DATA\r\n"}));
    EXPECT_EQ(after(c, "250 change pending"), Sent{});  // the password waits for 354
    EXPECT_EQ(after(c, "354 send it"),
              (Sent{"New-Pw-1\r\n", ".\r\n", "CHPW bob\r\n", "DATA\r\n"}));
    EXPECT_TRUE(c.end_of_data_sent());
    EXPECT_TRUE(c.items()[0].acted);
    EXPECT_TRUE(c.items()[1].started);
    EXPECT_EQ(after(c, "355 go on"), Sent{});
    EXPECT_EQ(after(c, "250 password changed"), Sent{});
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::ok);
    EXPECT_TRUE(c.items()[0].changed);
    EXPECT_EQ(c.step(), Step::chpw);  // bob's CHPW, sent ahead: its reply is due
    EXPECT_EQ(after(c, "250 change pending"), Sent{});
    EXPECT_EQ(after(c, "354 send it"), (Sent{"New-Pw-1\r\n", ".\r\n"}));
    EXPECT_EQ(after(c, "355 go on"), Sent{});
    EXPECT_EQ(after(c, "250 password changed"), Sent{"QUIT\r\n"});
    EXPECT_EQ(c.outcome().kind, Kind::ok);
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::ok);
    EXPECT_EQ(c.decided(), 2U);
}

TEST(Pipelining, NothingAheadWithoutTheKeywordOrWhenTurnedOff) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::change, "bob", &l.data}};
    Client plain = pipelined(l, job, {"EXPR"});
    EXPECT_EQ(drain(plain), Sent{"CHPW alice\r\n"});
    EXPECT_EQ(after(plain, "250 change pending"), Sent{"DATA\r\n"});
    job.pipelining = false;
    Client off = pipelined(l, job);
    EXPECT_EQ(drain(off), Sent{"CHPW alice\r\n"});
    EXPECT_EQ(after(off, "250 change pending"), Sent{"DATA\r\n"});
    EXPECT_EQ(after(off, "354 send it"), Sent{"New-Pw-1\r\n"});
    EXPECT_EQ(after(off, "355 go on"), Sent{".\r\n"});
}

// A refused CHPW: the reply to the DATA behind it is read and dropped, the
// password never goes out for that user, the next user follows.
TEST(Pipelining, ARefusedCommandDropsTheReplyToItsDataAndTheNextUserFollows) {
    Lines l;
    mctp::Secret bob_pw{"Bobs-Pw-2"};
    const mctp::Secret bob_data = Client::data_line(bob_pw);
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::change, "bob", &bob_data}};
    Client c = pipelined(l, job);
    Sent all = drain(c);
    EXPECT_EQ(all, (Sent{"CHPW alice\r\n", "DATA\r\n"}));
    EXPECT_EQ(after(c, "530 alice may not be managed here"), (Sent{"CHPW bob\r\n", "DATA\r\n"}));
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::refused);
    EXPECT_EQ(c.items()[0].outcome.step, Step::chpw);
    EXPECT_FALSE(c.items()[0].acted);
    EXPECT_EQ(after(c, "503 no change pending"), Sent{});  // alice's DATA: dropped
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::pending);
    EXPECT_EQ(after(c, "250 change pending"), Sent{});
    EXPECT_EQ(after(c, "354 send it"), (Sent{"Bobs-Pw-2\r\n", ".\r\n"}));
    EXPECT_EQ(after(c, "355 go on"), Sent{});
    EXPECT_EQ(after(c, "250 password changed"), Sent{"QUIT\r\n"});
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::ok);
    // Alice's password never went out.
    EXPECT_EQ(c.items()[0].outcome.text, "alice may not be managed here");
}

// A policy refusal at the end of data: the next user's command, sent
// behind the ".", is the next reply; a 421 that closes the session while
// a line is out decides the user it was for.
TEST(Pipelining, RefusalsAtTheEndOfDataAndClosingReplies) {
    Lines l;
    Client::Job job{Client::Action::test, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::test, "bob", &l.data}, {Client::Action::test, "carol", &l.data}};
    Client c = pipelined(l, job, {"PIPELINING", "TEST"});
    EXPECT_EQ(drain(c), (Sent{"TEST alice\r\n", "DATA\r\n"}));
    after(c, "250 test pending");
    EXPECT_EQ(after(c, "354 send it"),
              (Sent{"New-Pw-1\r\n", ".\r\n", "TEST bob\r\n", "DATA\r\n"}));
    after(c, "355 go on");
    EXPECT_EQ(after(c, "554 BAD PASSWORD: too short"), Sent{});
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::refused);
    EXPECT_EQ(c.items()[0].outcome.step, Step::end_of_data);
    after(c, "250 test pending");
    EXPECT_EQ(after(c, "354 send it"),
              (Sent{"New-Pw-1\r\n", ".\r\n", "TEST carol\r\n", "DATA\r\n"}));
    // The session closes at bob's password line: bob is decided by it,
    // and carol, whose TEST went out, by what closed the session.
    EXPECT_EQ(after(c, "421 t shutting down"), Sent{});
    EXPECT_TRUE(c.done());
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::refused);
    EXPECT_EQ(c.items()[1].outcome.code, Code::unavailable);
    EXPECT_EQ(c.items()[2].outcome.kind, Kind::pending);
    // A 421 to a line that was being dropped ends the session too.
    Client d = pipelined(l, job, {"PIPELINING", "TEST"});
    drain(d);
    EXPECT_EQ(after(d, "530 no"), (Sent{"TEST bob\r\n", "DATA\r\n"}));
    EXPECT_EQ(after(d, "421 t going away"), Sent{});  // the reply to alice's DATA
    EXPECT_TRUE(d.done());
    EXPECT_EQ(d.outcome().kind, Kind::refused);
    EXPECT_EQ(d.items()[1].outcome.code, Code::unavailable);  // bob's TEST was out
    EXPECT_EQ(d.items()[2].outcome.kind, Kind::pending);
    EXPECT_FALSE(d.items()[2].started);
    // And a line that is not a reply, where a dropped one was due.
    Client e = pipelined(l, job, {"PIPELINING", "TEST"});
    drain(e);
    after(e, "530 no");
    after(e, "garbage");
    EXPECT_EQ(e.outcome().kind, Kind::protocol_error);
}

// A refused password line with its "." already out: the "."'s reply
// decides (the target's last word), and nothing of that user is dropped.
TEST(Pipelining, ARefusedPasswordLineLetsTheDotDecide) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::change, "bob", &l.data}};
    Client c = pipelined(l, job);
    drain(c);
    after(c, "250 change pending");
    EXPECT_EQ(after(c, "354 send it"),
              (Sent{"New-Pw-1\r\n", ".\r\n", "CHPW bob\r\n", "DATA\r\n"}));
    EXPECT_EQ(after(c, "451 try again"), Sent{});
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::pending);  // the "." is due
    EXPECT_EQ(after(c, "250 password changed"), Sent{});
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::ok);
    EXPECT_TRUE(c.items()[0].changed);
    after(c, "250 change pending");
    after(c, "354 send it");
    after(c, "501 line too long");
    EXPECT_EQ(after(c, "501 a data line was too long"), Sent{"QUIT\r\n"});
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::refused);
    EXPECT_EQ(c.items()[1].outcome.step, Step::password);
    EXPECT_EQ(c.items()[1].outcome.text, "line too long");
    EXPECT_TRUE(c.items()[1].acted);  // its "." went out; refused: nothing applied
    EXPECT_FALSE(c.items()[1].changed);
}

// Replies to lines sent ahead for a decided user must be refusals: a 354
// there means the target took the DATA, and the session ends before
// anything else (a password, the next command) could be misread.
TEST(Pipelining, ADroppedReplyThatIsNotARefusalEndsTheSession) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::change, "bob", &l.data}};
    Client c = pipelined(l, job);
    drain(c);
    EXPECT_EQ(after(c, "530 no"), (Sent{"CHPW bob\r\n", "DATA\r\n"}));
    EXPECT_EQ(after(c, "354 send it"), Sent{});
    EXPECT_TRUE(c.done());
    EXPECT_EQ(c.outcome().kind, Kind::protocol_error);
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::protocol_error);  // bob's CHPW was out
}

// LOCK, UNLK, EXPR are never sent while a dropped reply is still due, and
// QUIT waits for the dropped replies too.
TEST(Pipelining, LockAndQuitWaitForTheDroppedReplies) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.more = {{Client::Action::lock, "bob"}, {Client::Action::change, "carol", &l.data}};
    Client c = pipelined(l, job, {"PIPELINING", "LOCK"});
    EXPECT_EQ(drain(c), (Sent{"CHPW alice\r\n", "DATA\r\n"}));
    EXPECT_EQ(after(c, "530 no"), Sent{});  // not LOCK bob: alice's DATA reply is due
    EXPECT_EQ(after(c, "503 no change pending"), Sent{"LOCK bob\r\n"});
    EXPECT_EQ(after(c, "250 locked"), (Sent{"CHPW carol\r\n", "DATA\r\n"}));
    EXPECT_EQ(after(c, "530 no"), Sent{});  // the last user: QUIT after the 503
    EXPECT_TRUE(c.finished());
    EXPECT_EQ(after(c, "503 no change pending"), Sent{"QUIT\r\n"});
    EXPECT_FALSE(c.done());
    c.on_line("221 bye");
    EXPECT_TRUE(c.done());
    EXPECT_EQ(c.items()[1].outcome.kind, Kind::ok);
}

// EXPR after a change waits for the change's 250, and so does the next
// user: nothing is sent ahead of a command that acts on its own.
TEST(Pipelining, ExprAndTheUserAfterItWaitForTheChange) {
    Lines l;
    Client::Job job{Client::Action::change, "alice", "ctl", nullptr, &l.data};
    job.then_expire = true;
    job.more = {{Client::Action::lock, "bob"}, {Client::Action::lock, "carol"}};
    Client c = pipelined(l, job, {"PIPELINING", "EXPR", "LOCK"});
    EXPECT_EQ(drain(c), (Sent{"CHPW alice\r\n", "DATA\r\n"}));
    after(c, "250 change pending");
    EXPECT_EQ(after(c, "354 send it"), (Sent{"New-Pw-1\r\n", ".\r\n"}));
    after(c, "355 go on");
    EXPECT_EQ(after(c, "554 refused"), Sent{"LOCK bob\r\n"});  // no EXPR after a refusal
    EXPECT_EQ(after(c, "250 locked"), Sent{"LOCK carol\r\n"});  // one at a time
    EXPECT_EQ(after(c, "250 locked"), Sent{"QUIT\r\n"});
    EXPECT_EQ(c.items()[0].outcome.kind, Kind::refused);
    EXPECT_EQ(c.items()[2].outcome.kind, Kind::ok);
}

// ---- client and server against each other, in memory ----

// A Session with the FakeHost as mpasswdd runs it (framer, line_max), and
// a Client; each one's lines go to the other until the client is done or
// the session has closed.
struct Pair {
    test::FakeHost host;
    mctp::SessionSettings settings;
    mctp::Session session;
    mctp::LineFramer framer;
    Lines lines;
    std::vector<std::string> sent;     // by the client
    std::vector<std::string> replies;  // by the session, as on the wire

    explicit Pair(unsigned max_failures = 3)
        : settings{"target", 128, max_failures, 0ms}, session(settings, host, "192.0.2.7"),
          framer(128) {
        lines.secret = mctp::Secret(host.secret);
        lines.auth = Client::auth_line(lines.secret);
    }

    void deliver(Client& c, const mctp::Reply& r) {
        std::string wire = mctp::format_reply(r, settings.line_max);
        replies.push_back(wire);
        for (std::size_t at = 0; at < wire.size();) {
            const auto crlf = wire.find("\r\n", at);
            c.on_line(std::string_view(wire).substr(at, crlf - at));
            at = crlf + 2;
        }
    }

    Client::Outcome run(Client::Action action, std::string user,
                        mctp::PeerVerdict verdict = mctp::PeerVerdict::accepted) {
        Client c = lines.make(action, std::move(user));
        deliver(c, session.start(verdict));
        while (!c.done() && !session.closed()) {
            const auto bytes = c.next();
            if (bytes.empty()) {
                ADD_FAILURE() << "the client waits for a reply that does not come";
                break;
            }
            sent.emplace_back(bytes);
            framer.feed(std::span<const char>(bytes.data(), bytes.size()),
                        [&](mctp::FrameEvent ev, std::string_view line) {
                            deliver(c, ev == mctp::FrameEvent::line ? session.on_line(line)
                                                                    : session.on_overflow());
                            return !session.closed();
                        });
        }
        EXPECT_TRUE(c.done());
        EXPECT_TRUE(c.next().empty());
        return c.outcome();
    }
};

TEST(ClientAndServer, Verify) {
    Pair p;
    const auto o = p.run(Client::Action::verify, "alice");
    EXPECT_EQ(o.kind, Kind::ok);
    EXPECT_EQ(o.code, Code::ok);
    EXPECT_EQ(o.text, "alice may be managed");
    EXPECT_EQ(p.sent, (std::vector<std::string>{"EHLO ctl\r\n", "AUTH good-secret-1\r\n",
                                                "VRFY alice\r\n", "QUIT\r\n"}));
    EXPECT_EQ(p.replies.back(), "221 target closing\r\n");
    EXPECT_TRUE(p.session.closed());
    EXPECT_TRUE(p.host.changes.empty());
}

TEST(ClientAndServer, ChangeAndADotFirstPassword) {
    for (const std::string pw : {"New-Pw-1", ".dot-first", "..two", "Pässwörd"}) {
        Pair p;
        p.lines.password = mctp::Secret(pw);
        p.lines.data = Client::data_line(p.lines.password);
        const auto o = p.run(Client::Action::change, "bob");
        EXPECT_EQ(o.kind, Kind::ok) << pw << ": " << o.text;
        EXPECT_EQ(o.text, "password changed for bob");
        EXPECT_EQ(o.step, Step::end_of_data);
        ASSERT_EQ(p.host.changes.size(), 1U);
        EXPECT_EQ(p.host.changes[0].user, "bob");
        EXPECT_EQ(p.host.changes[0].helo, "ctl");
        EXPECT_EQ(p.host.changes[0].password, pw);  // stuffed, then unstuffed
        EXPECT_EQ(p.sent.size(), 7U);
        EXPECT_EQ(p.sent.back(), "QUIT\r\n");
        EXPECT_TRUE(p.session.closed());
    }
}

TEST(ClientAndServer, RefusalsFromTheSession) {
    struct Case {
        Client::Action action;
        std::string user;
        mctp::ChangeResult::Kind change;
        Code code;
        Step step;
        std::string text;
    };
    using CR = mctp::ChangeResult::Kind;
    const auto change = Client::Action::change;
    const auto verify = Client::Action::verify;
    for (const auto& k : {
             Case{verify, "nobody", CR::changed, Code::user_unknown, Step::vrfy, "nobody unknown"},
             Case{change, "nobody", CR::changed, Code::user_unknown, Step::chpw, "nobody unknown"},
             Case{verify, "root", CR::changed, Code::access_denied, Step::vrfy,
                  "root may not be managed from here"},
             Case{change, "root", CR::changed, Code::access_denied, Step::chpw,
                  "root may not be managed from here"},
             Case{change, "alice", CR::refused, Code::transaction_failed, Step::end_of_data,
                  "BAD PASSWORD: it is too short"},
             Case{change, "alice", CR::failed, Code::local_error, Step::end_of_data,
                  "change aborted: BAD PASSWORD: it is too short"},
             Case{change, "alice", CR::unknown, Code::user_unknown, Step::end_of_data,
                  "alice unknown"},
             Case{change, "alice", CR::forbidden, Code::access_denied, Step::end_of_data,
                  "BAD PASSWORD: it is too short"},
         }) {
        Pair p;
        p.host.next_result = {k.change, "BAD PASSWORD: it is too short"};
        const auto o = p.run(k.action, k.user);
        EXPECT_EQ(o.kind, Kind::refused) << k.user << " " << mctp::number(k.code);
        EXPECT_EQ(o.code, k.code);
        EXPECT_EQ(o.step, k.step);
        EXPECT_EQ(o.text, k.text);
        // The session was still open: ended with QUIT, 221.
        EXPECT_EQ(p.sent.back(), "QUIT\r\n");
        EXPECT_EQ(p.replies.back(), "221 target closing\r\n");
    }
}

TEST(ClientAndServer, WrongSecretAndLockOut) {
    Pair p;
    p.lines.secret = mctp::Secret("wrong-secret");
    p.lines.auth = Client::auth_line(p.lines.secret);
    auto o = p.run(Client::Action::change, "alice");
    EXPECT_EQ(o.kind, Kind::refused);
    EXPECT_EQ(o.code, Code::access_denied);
    EXPECT_EQ(o.step, Step::auth);
    EXPECT_EQ(p.sent.back(), "QUIT\r\n");
    EXPECT_TRUE(p.host.changes.empty());
    // The last failure allowed closes the session with 421: no QUIT.
    Pair last(1);
    last.lines.secret = mctp::Secret("wrong-secret");
    last.lines.auth = Client::auth_line(last.lines.secret);
    o = last.run(Client::Action::change, "alice");
    EXPECT_EQ(o.code, Code::unavailable);
    EXPECT_EQ(o.step, Step::auth);
    EXPECT_EQ(last.sent.back(), "AUTH wrong-secret\r\n");
    // So does a locked-out address.
    Pair locked;
    locked.host.locked = true;
    o = locked.run(Client::Action::verify, "alice");
    EXPECT_EQ(o.code, Code::unavailable);
    EXPECT_EQ(locked.sent.back(), "AUTH good-secret-1\r\n");
}

TEST(ClientAndServer, BannerRefusals) {
    for (const auto& [verdict, code] :
         {std::pair{mctp::PeerVerdict::rejected, Code::controller_rejected},
          std::pair{mctp::PeerVerdict::disabled, Code::unavailable},
          std::pair{mctp::PeerVerdict::locked, Code::unavailable}}) {
        Pair p;
        const auto o = p.run(Client::Action::change, "alice", verdict);
        EXPECT_EQ(o.kind, Kind::refused);
        EXPECT_EQ(o.code, code);
        EXPECT_EQ(o.step, Step::banner);
        EXPECT_TRUE(p.sent.empty());
    }
}

TEST(ClientAndServer, APasswordLineTooLongForTheTarget) {
    // 200 octets against line_max 128: 501 at once, and the session is
    // still reading data. The client ends the data with "." (refused too:
    // a data line was too long), so its QUIT is a command again, not a
    // data line; nothing changes.
    Pair p;
    p.lines.password = mctp::Secret(std::string(200, 'p'));
    p.lines.data = Client::data_line(p.lines.password);
    const auto o = p.run(Client::Action::change, "alice");
    EXPECT_EQ(o.kind, Kind::refused);
    EXPECT_EQ(o.code, Code::syntax_error);
    EXPECT_EQ(o.step, Step::password);
    ASSERT_GE(p.sent.size(), 2U);
    EXPECT_EQ(p.sent[p.sent.size() - 2], ".\r\n");
    EXPECT_EQ(p.sent.back(), "QUIT\r\n");
    EXPECT_EQ(p.replies.back(), "221 target closing\r\n");
    EXPECT_TRUE(p.session.closed());
    EXPECT_TRUE(p.host.changes.empty());
}

// ---- the engine speaking through the client, over an in-memory stream ----

mpasswd::Result engine_run(const std::string& bytes, mpasswd::Action action, std::string* written) {
    const mctp::Secret secret("test-secret-1");
    const mctp::Secret password(".New-Pw-1");
    mpasswd::EngineSettings s;
    s.helo_name = "ctl";
    s.secret = &secret;
    mpasswd::fake::MemoryScript script;
    script.bytes = bytes;
    mpasswd::fake::MemoryTransport transport(script);
    const mpasswd::Job job{action, "alice", action == mpasswd::Action::change ? &password : nullptr,
                           true};  // best effort: the one-phase dialogue
    mpasswd::Target t{"h", 1, "test"};
    t.auth_plain = true;  // fixed replies: the old AUTH <secret>
    auto r = mpasswd::run({t}, s, job, transport, nullptr).at(0);
    *written = transport.written();
    return r;
}

TEST(ClientInTheEngine, MultiLineRepliesAndQuit) {
    std::string written;
    auto r = engine_run("220-t MCTP\r\n220 ready\r\n250-t hello\r\n250-TEST\r\n250 LINEMAX 128\r\n"
                        "250 ok\r\n250 ok\r\n354 go\r\n355 ok\r\n250-password\r\n250 changed\r\n"
                        "221 bye\r\n",
                        mpasswd::Action::change, &written);
    EXPECT_EQ(r.outcome, mpasswd::Outcome::ok) << r.text;
    EXPECT_EQ(r.code, 250);
    EXPECT_EQ(r.step, "end of data");
    EXPECT_EQ(r.text, "password changed");
    EXPECT_EQ(written, "EHLO ctl\r\nAUTH test-secret-1\r\nCHPW alice\r\nDATA\r\n..New-Pw-1\r\n.\r\n"
                       "QUIT\r\n");
    EXPECT_EQ(r.auth, "plain");
    // Seventeen lines in one reply: not MCTP, no QUIT.
    std::string many = "220 t\r\n";
    for (int i = 0; i < 16; ++i) {
        many += "250-x\r\n";
    }
    r = engine_run(many + "250 x\r\n", mpasswd::Action::verify, &written);
    EXPECT_EQ(r.outcome, mpasswd::Outcome::protocol_error);
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.step, "EHLO");
    EXPECT_EQ(r.text, "reply longer than 16 lines");
    EXPECT_EQ(written, "EHLO ctl\r\n");
}

TEST(ClientInTheEngine, ReplyLinesUpToTheLargestLineMax) {
    // 4096 octets with CRLF, as a responder with line_max 4096 may send.
    const std::string longest = "530 " + std::string(4090, 'x') + "\r\n";
    ASSERT_EQ(longest.size(), 4096U);
    std::string written;
    auto r = engine_run("220 t\r\n250 hi\r\n" + longest, mpasswd::Action::verify, &written);
    EXPECT_EQ(r.outcome, mpasswd::Outcome::refused);
    EXPECT_EQ(r.code, 530);
    EXPECT_EQ(r.text.size(), 4090U);
    EXPECT_TRUE(written.ends_with("AUTH test-secret-1\r\nQUIT\r\n"));
    // One octet more: not MCTP, even when its LF comes in the same read.
    r = engine_run("220 t\r\n250 hi\r\n530 x" + longest.substr(4), mpasswd::Action::verify,
                   &written);
    EXPECT_EQ(r.outcome, mpasswd::Outcome::protocol_error);
    EXPECT_EQ(r.text, "reply longer than 4096 octets");
    EXPECT_EQ(r.step, "AUTH");
    EXPECT_FALSE(written.ends_with("QUIT\r\n"));
}

}  // namespace

// ---- SCRAM-SHA-256: the client against the session, and fake targets ----

namespace {

// A client (SCRAM) and a session (FakeHost running scram::Server) in
// memory, as the responder frames lines. Returns the outcome; `sent`
// gets every line the client handed out.
struct ScramPair {
    test::FakeHost host;
    mctp::SessionSettings settings;
    mctp::Session session;
    mctp::LineFramer framer{128, mctp::sasl_line_max};
    mctp::Secret secret{"good-secret-1"};
    mctp::Secret password{"New-Pw-1"};
    mctp::Secret data = Client::data_line(password);
    mctp::scram::KeyCache keys;
    std::vector<std::string> sent;

    explicit ScramPair(std::string binding = {})
        : host(std::move(binding)),
          settings{"target", 128, 3, 0ms, !host.scram.binding.empty()},
          session(settings, host, "192.0.2.7") {}

    Client make(Client::Action action) {
        return Client({action, "alice", "ctl", nullptr,
                       action == Client::Action::change ? &data : nullptr, Client::Auth::scram,
                       &secret, &keys});
    }

    Client::Outcome run(Client& c) {
        const auto deliver = [&](const mctp::Reply& r) {
            const std::string wire = mctp::format_reply(r, settings.line_max);
            for (std::size_t at = 0; at < wire.size();) {
                const auto crlf = wire.find("\r\n", at);
                c.on_line(std::string_view(wire).substr(at, crlf - at));
                at = crlf + 2;
            }
        };
        deliver(session.start(mctp::PeerVerdict::accepted));
        while (!c.done() && !session.closed()) {
            const auto bytes = c.next();
            if (bytes.empty()) {
                ADD_FAILURE() << "the client waits for a reply that does not come";
                break;
            }
            sent.emplace_back(bytes);
            framer.feed(std::span<const char>(bytes.data(), bytes.size()),
                        [&](mctp::FrameEvent ev, std::string_view line) {
                            deliver(ev == mctp::FrameEvent::line ? session.on_line(line)
                                                                 : session.on_overflow());
                            framer.set_long_lines(session.long_lines());
                            return !session.closed();
                        });
        }
        return c.outcome();
    }
};

// Every reply the script gives, to whatever the client says; returns what
// the client sent.
std::vector<std::string> against(Client& c, const std::vector<std::string>& replies) {
    return converse(c, replies);
}

}  // namespace

TEST(ScramClient, ChangeAgainstTheSession) {
    ScramPair p;
    Client c = p.make(Client::Action::change);
    const auto o = p.run(c);
    EXPECT_EQ(o.kind, Kind::ok) << o.text;
    EXPECT_EQ(c.mechanism(), "SCRAM-SHA-256");
    ASSERT_EQ(p.host.changes.size(), 1U);
    EXPECT_EQ(p.host.changes[0].password, "New-Pw-1");
    ASSERT_GE(p.sent.size(), 5U);
    EXPECT_EQ(p.sent[0], "EHLO ctl\r\n");
    EXPECT_TRUE(p.sent[1].starts_with("AUTH SCRAM-SHA-256 "));
    EXPECT_EQ(p.sent[3], "\r\n");
    EXPECT_EQ(p.sent[4], "CHPW alice\r\n");
    // The secret itself never crosses.
    for (const auto& s : p.sent) {
        EXPECT_EQ(s.find("good-secret-1"), std::string::npos) << s;
    }
}

TEST(ScramClient, PlusWithTheSameChannelAndRefusedThroughARelay) {
    const std::string exporter(32, 'e');
    {
        ScramPair p(exporter);
        Client c = p.make(Client::Action::verify);
        c.set_channel_binding(exporter);
        EXPECT_EQ(p.run(c).kind, Kind::ok) << c.outcome().text;
        EXPECT_EQ(c.mechanism(), "SCRAM-SHA-256-PLUS");
    }
    {
        // A relay: its TLS connection to the target is not the client's.
        ScramPair p(exporter);
        Client c = p.make(Client::Action::change);
        c.set_channel_binding(std::string(32, 'r'));
        const auto o = p.run(c);
        EXPECT_EQ(o.kind, Kind::untrusted) << o.text;
        EXPECT_EQ(o.code, Code::access_denied);
        EXPECT_TRUE(p.host.changes.empty());
        EXPECT_EQ(p.sent.back(), "QUIT\r\n");
        for (const auto& s : p.sent) {
            EXPECT_EQ(s.find("New-Pw-1"), std::string::npos);
            EXPECT_NE(s.substr(0, 4), "CHPW");
        }
    }
}

TEST(ScramClient, AnotherSecretsVerifierIsUntrustedAndGetsNothingAfterTheProof) {
    ScramPair p;
    p.host.secret = "another-secret";
    Client c = p.make(Client::Action::change);
    const auto o = p.run(c);
    EXPECT_EQ(o.kind, Kind::untrusted);
    EXPECT_EQ(o.step, Step::scram_final);
    // EHLO, AUTH, the proof, QUIT: nothing else.
    ASSERT_EQ(p.sent.size(), 4U);
    EXPECT_EQ(p.sent[3], "QUIT\r\n");
}

TEST(ScramClient, AFakeTargetThatSays250GetsNoSecretNoProofNoPassword) {
    Lines l;
    mctp::Secret secret("good-secret-1");
    mctp::Secret data = Client::data_line(l.password);
    Client c({Client::Action::change, "alice", "ctl", nullptr, &data, Client::Auth::scram,
              &secret});
    const auto sent = against(c, {"220 fake", "250-fake\r\n", "250 AUTH SCRAM-SHA-256",
                                  "250 ok", "250 ok", "354 go", "355 ok", "250 ok"});
    EXPECT_EQ(c.outcome().kind, Kind::untrusted);
    EXPECT_EQ(c.outcome().step, Step::scram_first);
    ASSERT_EQ(sent.size(), 3U);  // EHLO, AUTH <client-first>, QUIT
    EXPECT_EQ(sent[2], "QUIT\r\n");
    for (const auto& s : sent) {
        EXPECT_EQ(s.find("good-secret-1"), std::string::npos);
        EXPECT_EQ(s.find("New-Pw-1"), std::string::npos);
        EXPECT_EQ(s.find("p="), std::string::npos);
    }
}

TEST(ScramClient, AFakeTargetWithAMadeUpSignatureIsUntrusted) {
    mctp::Secret secret("good-secret-1");
    for (const std::string& bad : {std::string("334 ") + mctp::scram::base64("v=AAAA"),
                                   std::string("334 !!notbase64"), std::string("250 welcome")}) {
        Client c({Client::Action::verify, "alice", "ctl", nullptr, nullptr, Client::Auth::scram,
                  &secret});
        c.on_line("220 fake");
        EXPECT_EQ(drain(c), std::vector<std::string>{"EHLO ctl\r\n"});
        c.on_line("250-fake");
        c.on_line("250 AUTH SCRAM-SHA-256");
        // A server-first that extends the client's nonce, as a relay of a
        // real target would give.
        const std::string first = std::string(c.next());
        ASSERT_TRUE(first.starts_with("AUTH SCRAM-SHA-256 "));
        const auto cf = *mctp::scram::unbase64(first.substr(19, first.size() - 21));
        const std::string nonce = cf.substr(cf.find("r=") + 2);
        c.on_line("334 " + mctp::scram::base64("r=" + nonce + "xyz,s=" +
                                                mctp::scram::base64("0123456789abcdef") +
                                                ",i=4096"));
        const std::string proof = std::string(c.next());
        c.on_line(bad);
        EXPECT_EQ(c.outcome().kind, Kind::untrusted) << bad;
        EXPECT_EQ(drain(c), std::vector<std::string>{"QUIT\r\n"}) << bad;
    }
}

TEST(ScramClient, NoScramInEhloIsUnsupportedUnlessPlain) {
    mctp::Secret secret("good-secret-1");
    Client c({Client::Action::verify, "alice", "ctl", nullptr, nullptr, Client::Auth::scram,
              &secret});
    auto sent = converse(c, {"220 old", "250-old hello", "250 LINEMAX 128"});
    EXPECT_EQ(c.outcome().kind, Kind::unsupported);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"}));
    // An old responder that does not know EHLO at all.
    Client d({Client::Action::verify, "alice", "ctl", nullptr, nullptr, Client::Auth::scram,
              &secret});
    sent = converse(d, {"220 old", "500 command unrecognized"});
    EXPECT_EQ(d.outcome().kind, Kind::unsupported);
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "QUIT\r\n"}));
}

TEST(ScramClient, PlainFallsBackToHelo) {
    Lines l;
    Client c = l.make(Client::Action::verify);
    const auto sent = converse(c, {"220 old", "500 command unrecognized", "250 hello", "250 ok",
                                   "250 alice may be managed"});
    EXPECT_EQ(c.outcome().kind, Kind::ok) << c.outcome().text;
    EXPECT_EQ(sent, (std::vector<std::string>{"EHLO ctl\r\n", "HELO ctl\r\n",
                                              "AUTH test-secret-1\r\n", "VRFY alice\r\n",
                                              "QUIT\r\n"}));
    EXPECT_EQ(c.mechanism(), "plain");
}

TEST(ScramClient, OneDerivationForManySessions) {
    ScramPair first;
    for (int i = 0; i < 5; ++i) {
        ScramPair p;
        Client c({Client::Action::verify, "alice", "ctl", nullptr, nullptr, Client::Auth::scram,
                  &p.secret, &first.keys});
        EXPECT_EQ(p.run(c).kind, Kind::ok);
    }
    EXPECT_EQ(first.keys.derivations(), 1U);
}
