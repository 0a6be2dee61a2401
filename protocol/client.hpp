// The client half of MCTP (mpasswd-protocol(7)): a controller's side of one
// session, beside Session and as free of I/O. Reply lines in; the bytes to
// send next and the outcome out. No sockets, no clocks: the caller frames
// the lines, keeps the deadlines and reports the outcome its own way.
//
// A session is a list of steps, each a line to send (none for the banner)
// and the reply code that lets the next step go:
//   verify: banner 220, EHLO 250, AUTH, VRFY 250
//   change: banner 220, EHLO 250, AUTH, CHPW 250, DATA 354,
//           the password 355, "." 250
//   test:   as change with TEST for CHPW; the target must announce TEST
//           in EHLO, or it is `unsupported` (nothing secret sent)
//   check:  as change with CHCK for CHPW; 554 to the end of data is
//           `different` (not the user's current password)
//   expire, lock, unlock: EXPR, LOCK or UNLK user, 250
// A change may be followed by EXPR user in the same item (then_expire).
// Every verb but VRFY and CHPW must be announced in EHLO, or the target is
// `unsupported` and is sent nothing after EHLO but QUIT.
// A session may serve several users (a batch): the job's user, then each
// of `more`, one after the other, each with its own outcome (items()). A
// refusal of one user's command (4xx/5xx that does not close the session)
// decides that user only; the next user follows in the same session.
// where AUTH is, by default, SCRAM-SHA-256 (-PLUS with a channel
// binding the target offers it for): "AUTH SCRAM-SHA-256 <client-first>"
// 334, <client-final> 334, then, only once the server's signature is
// right, an empty line 250. A target whose EHLO does not offer SCRAM is
// `unsupported`; one that cannot prove it holds this controller's
// verifier (a wrong or missing signature, an answer out of turn, 530 to
// the proof) is `untrusted`, and gets nothing more but QUIT. With
// Auth::plain (a hosts line that says auth=plain) the old AUTH <secret>
// 250, after EHLO, or after HELO when the target does not know EHLO.
// Any other code ends the session: 4xx and 5xx as a refusal, the rest as
// a protocol error; so does a line that is not a reply. One exception: a
// refused password line does not end the data, so "." still goes out and
// its reply decides (a refusal there reports the password line's). Once the outcome
// is known the client says QUIT as a courtesy and reads one line, unless
// the outcome is a protocol error or a reply that closes the session
// (421, 521).
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "reply.hpp"
#include "scram.hpp"
#include "secret.hpp"

namespace mctp {

// The lines of one reply a client reads ("NNN-" continuations and the
// final "NNN " line): EHLO's list is at most this long.
inline constexpr std::size_t reply_lines_max = 16;

// Replies after which the target has closed the session: no QUIT.
constexpr bool closes(Code c) noexcept {
    return c == Code::unavailable || c == Code::controller_rejected;
}

class Client {
public:
    enum class Action {
        verify,  // HELO, AUTH, VRFY user
        change,  // HELO, AUTH, CHPW user, DATA, the password, "."
        test,    // EHLO, AUTH, TEST user, DATA, the password, "."; a target
                 // whose EHLO does not announce TEST is `unsupported`
        expire,  // EXPR user (announced in EHLO)
        lock,    // LOCK user (announced in EHLO)
        unlock,  // UNLK user (announced in EHLO)
        check,   // CHCK user, DATA, the password, "." (announced in EHLO)
    };

    // How the controller proves itself (and the target).
    enum class Auth { scram, plain };

    // Where the session is; the names are those of reports and JSON.
    enum class Step {
        banner, helo, auth, vrfy, chpw, data, password, end_of_data, quit,
        ehlo, scram_first, scram_final, scram_done, test,
        expr, lock, unlk, chck,
    };

    struct Outcome {
        enum class Kind {
            pending,         // not decided yet
            ok,              // every step got its code
            refused,         // a 4xx or 5xx reply
            protocol_error,  // a reply not due at this step, or not MCTP
            untrusted,       // the target did not prove it holds our verifier
            unsupported,     // the target does not offer what is needed (SCRAM, a verb)
            different,       // CHCK: 554, not the user's current password
        } kind = Kind::pending;
        std::optional<Code> code;  // the reply that decided it, if one did
        std::string text;          // its text, or what was wrong; printable ASCII
        Step step = Step::banner;  // where it was decided
    };

    // The lines that carry secrets, built once by the caller and shared by
    // every session of a job (no copy per session); they wipe themselves.
    // "AUTH <secret>\r\n":
    static Secret auth_line(const Secret& secret);
    // The password as one data line, dot-stuffed, with CRLF:
    static Secret data_line(const Secret& password);

    // One more user served in the same session (a batch).
    struct Item {
        Action action = Action::verify;
        std::string user;                   // a valid user name
        const Secret* data_line = nullptr;  // from data_line(), for change, test, check
        // change: EXPR user after the CHPW's 250. test: the change that
        // follows will send EXPR, so the target must announce EXPR too.
        bool then_expire = false;
    };

    // What became of one user of the session, in the job's order (the
    // job's own user first).
    struct ItemResult {
        Outcome outcome;       // Kind::pending until the target answered for this user
        bool started = false;  // its first command went out
        // A line after which the target may change something went out
        // (CHPW's end of data, EXPR, LOCK, UNLK): without its reply, the
        // change may or may not have been made.
        bool acted = false;
        bool changed = false;  // then_expire: the CHPW got its 250 (before EXPR)
    };

    struct Job {
        Action action = Action::verify;
        std::string user;       // a valid user name (is_user_name)
        std::string helo_name;  // a valid HELO name (is_helo_name); also SCRAM's n=
        const Secret* auth_line = nullptr;  // from auth_line(), for Auth::plain
        const Secret* data_line = nullptr;  // from data_line(), for change
        Auth auth = Auth::scram;
        const Secret* secret = nullptr;     // the controller's secret, for Auth::scram
        scram::KeyCache* keys = nullptr;    // shared PBKDF2 results (optional)
        bool then_expire = false;           // as Item::then_expire
        std::vector<Item> more{};           // further users, in this order (a batch)
        // Pipeline (mpasswd-protocol(7), PIPELINING) when the target
        // announces it in EHLO.
        bool pipelining = true;
    };

    // Throws std::invalid_argument for a bad name or a missing line: a
    // client never sends a line it has not checked.
    explicit Client(Job job);

    // The bytes to send now (a whole line with CRLF), valid until the next
    // call of any member; empty when the client waits for a reply line, or
    // is done(). Call it until it is empty before each on_line(). To a
    // target that announces PIPELINING it hands out, without waiting for
    // the reply due, DATA behind its CHPW, TEST or CHCK, "." behind the
    // password, and the next user's command behind the last one's "."
    // (never the password before its 354, never EXPR, LOCK or UNLK); the
    // replies still due for a user already decided are read and dropped
    // (refusals only; anything else ends the session), and EXPR, LOCK,
    // UNLK and QUIT wait for them.
    std::string_view next();
    // This connection's tls-exporter channel binding (TLS 1.3, 32 octets),
    // before the first next(): SCRAM-SHA-256-PLUS when the target offers it.
    void set_channel_binding(std::string binding);
    // The mechanism used: "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "plain",
    // or empty before AUTH.
    [[nodiscard]] const std::string& mechanism() const noexcept { return mechanism_; }
    // One line from the target, terminator removed.
    void on_line(std::string_view line);

    // Every user of the session, in the job's order. When the session ends
    // early, the user under way may be pending (started) and later users
    // pending (not started); a refusal that closed the session decides the
    // user under way.
    [[nodiscard]] const std::vector<ItemResult>& items() const noexcept { return results_; }
    // The user whose reply is due, while that user is still pending (the
    // session ended under it without the client deciding: a timeout, a
    // broken connection). Users after it whose command went out ahead are
    // not under way: nothing was done for them.
    [[nodiscard]] std::optional<std::size_t> user_under_way() const noexcept;
    // How many users have their outcome so far.
    [[nodiscard]] std::size_t decided() const noexcept { return decided_; }

    // The outcome is known (a courtesy QUIT may still be due). When every
    // user got an answer, the session's outcome is the last user's.
    [[nodiscard]] bool finished() const noexcept { return outcome_.kind != Outcome::Kind::pending; }
    // Nothing more to send or to read.
    [[nodiscard]] bool done() const noexcept { return done_; }
    [[nodiscard]] const Outcome& outcome() const noexcept { return outcome_; }
    // The step now: the one whose line goes out next or whose reply is due.
    [[nodiscard]] Step step() const noexcept;
    // The end of the password's data went out: from then on the target
    // may change the password at any moment.
    [[nodiscard]] bool end_of_data_sent() const noexcept { return end_sent_; }

private:
    enum class Send {
        nothing, helo, auth, vrfy, chpw, data, password, end,
        ehlo, scram_first, scram_final, scram_done, test,
        expr, lock, unlk, chck,
    };
    static constexpr std::size_t no_item = static_cast<std::size_t>(-1);
    struct StepSpec {
        Step step;
        Send send;
        Code want;
        std::size_t item = no_item;  // the user it serves; no_item before them
    };

    void add_item(const Item& item, std::size_t index);
    // The line of steps_[index], marking its user started (and acted).
    std::string_view send_step(std::size_t index);
    // Whether steps_[index] may go before the replies to the lines ahead
    // of it (PIPELINING).
    [[nodiscard]] bool may_send_ahead(std::size_t index) const;
    // steps_[index] is the one whose reply is due next, or whose line
    // goes out next when it has not gone out ahead.
    void advance_to(std::size_t index);
    // The user under way got its answer; the next one starts, or the
    // session ends with this outcome.
    void decide_item(Outcome::Kind kind, Code code, std::string text,
                     std::optional<Step> step = std::nullopt);
    // steps_[index] is a user's first command (CHPW, TEST, CHCK, VRFY).
    [[nodiscard]] bool opens_a_user(std::size_t index) const;

    void on_reply(Code code);
    // The verbs the users need announced in EHLO (TEST, EXPR, ...).
    [[nodiscard]] std::vector<std::string_view> needed_verbs() const;
    // The special replies: EHLO's, and the SCRAM challenges. False when
    // they ended the session.
    bool on_ehlo(Code code);
    bool on_scram(Code code, const std::string& text);
    void finish(Outcome::Kind kind, std::optional<Code> code, std::string text,
                std::optional<Step> step = std::nullopt);

    Job job_;
    std::vector<Item> items_;
    std::vector<ItemResult> results_;
    std::vector<std::size_t> first_step_;  // per item: its first step in steps_
    std::size_t decided_ = 0;
    std::vector<StepSpec> steps_;
    std::size_t at_ = 0;       // index into steps_
    bool waiting_ = true;      // for the reply of steps_[at_] (the banner first)
    bool quit_due_ = false;    // QUIT not yet handed out
    bool quit_sent_ = false;   // QUIT out, its reply due
    bool done_ = false;
    bool end_sent_ = false;
    bool pipelining_ = false;        // the target announced PIPELINING
    std::size_t last_sent_ = 0;      // the step handed out last
    std::deque<std::size_t> ahead_;  // steps out after at_, their replies due in order
    std::size_t skip_ = 0;           // replies due for a user already decided
    // A refused password line: the "." went (or goes) out to end the data;
    // if it is refused too, this is what the user is told.
    std::optional<Outcome> data_refusal_;
    std::string out_;          // the line handed out last, when not a secret
    // The reply being read: its lines' texts and code.
    std::vector<std::string> lines_;
    Code reply_code_ = Code::ok;
    Outcome outcome_;
    std::string binding_;
    std::string mechanism_;
    std::unique_ptr<scram::Client> scram_;
    std::string scram_out_;  // the next SCRAM line (base64 with CRLF)
};

// "banner", "HELO", "AUTH", "VRFY", "CHPW", "DATA", "password",
// "end of data", "QUIT", "TEST", "EXPR", "LOCK", "UNLK", "CHCK".
std::string_view to_string(Client::Step s) noexcept;

}  // namespace mctp
