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
// a protocol error; so does a line that is not a reply. Once the outcome
// is known the client says QUIT as a courtesy and reads one line, unless
// the outcome is a protocol error or a reply that closes the session
// (421, 521).
#pragma once

#include <cstddef>
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
    };

    // How the controller proves itself (and the target).
    enum class Auth { scram, plain };

    // Where the session is; the names are those of reports and JSON.
    enum class Step {
        banner, helo, auth, vrfy, chpw, data, password, end_of_data, quit,
        ehlo, scram_first, scram_final, scram_done, test,
    };

    struct Outcome {
        enum class Kind {
            pending,         // not decided yet
            ok,              // every step got its code
            refused,         // a 4xx or 5xx reply
            protocol_error,  // a reply not due at this step, or not MCTP
            untrusted,       // the target did not prove it holds our verifier
            unsupported,     // the target does not offer what is needed (SCRAM)
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

    struct Job {
        Action action = Action::verify;
        std::string user;       // a valid user name (is_user_name)
        std::string helo_name;  // a valid HELO name (is_helo_name); also SCRAM's n=
        const Secret* auth_line = nullptr;  // from auth_line(), for Auth::plain
        const Secret* data_line = nullptr;  // from data_line(), for change
        Auth auth = Auth::scram;
        const Secret* secret = nullptr;     // the controller's secret, for Auth::scram
        scram::KeyCache* keys = nullptr;    // shared PBKDF2 results (optional)
    };

    // Throws std::invalid_argument for a bad name or a missing line: a
    // client never sends a line it has not checked.
    explicit Client(Job job);

    // The bytes to send now (a whole line with CRLF), valid until the next
    // call of any member; empty when the client waits for a reply line, or
    // is done(). Call it until it is empty before each on_line().
    std::string_view next();
    // This connection's tls-exporter channel binding (TLS 1.3, 32 octets),
    // before the first next(): SCRAM-SHA-256-PLUS when the target offers it.
    void set_channel_binding(std::string binding);
    // The mechanism used: "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "plain",
    // or empty before AUTH.
    [[nodiscard]] const std::string& mechanism() const noexcept { return mechanism_; }
    // One line from the target, terminator removed.
    void on_line(std::string_view line);

    // The outcome is known (a courtesy QUIT may still be due).
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
    };
    struct StepSpec {
        Step step;
        Send send;
        Code want;
    };

    void on_reply(Code code);
    // The special replies: EHLO's, and the SCRAM challenges. False when
    // they ended the session.
    bool on_ehlo(Code code);
    bool on_scram(Code code, const std::string& text);
    void finish(Outcome::Kind kind, std::optional<Code> code, std::string text);

    Job job_;
    std::vector<StepSpec> steps_;
    std::size_t at_ = 0;       // index into steps_
    bool waiting_ = true;      // for the reply of steps_[at_] (the banner first)
    bool quit_due_ = false;    // QUIT not yet handed out
    bool quit_sent_ = false;   // QUIT out, its reply due
    bool done_ = false;
    bool end_sent_ = false;
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
// "end of data", "QUIT".
std::string_view to_string(Client::Step s) noexcept;

}  // namespace mctp
