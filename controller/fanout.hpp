// The fan-out engine: one MCTP session per target, all at once up to a
// parallelism limit, every step bounded by a timeout.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "secret.hpp"
#include "target.hpp"
#include "transport.hpp"

namespace mpasswd {

enum class Outcome {
    ok,              // verified, or the password was changed
    refused,         // the target answered with a 4xx/5xx reply
    unreachable,     // no connection: refused, no route, unknown name
    untrusted,       // not authenticated, or not secure: nothing secret sent
    timeout,         // a step took longer than its timeout
    protocol_error,  // closed early, or a reply that is not MCTP
    unsupported,     // the target does not offer AUTH SCRAM-SHA-256 (or TEST, for a
                     // change): nothing secret sent
    skipped,         // a change: this target accepted the password in TEST, but
                     // another did not, so no target was sent CHPW
    different,       // check: the password is not the user's current one here
    unchanged,       // if_different: already the user's password here, not changed
};

std::string_view outcome_name(Outcome o) noexcept;

enum class Action {
    verify,  // EHLO, AUTH, VRFY user
    change,  // without best_effort: first TEST on every target, then, only
             // when every target accepted, EHLO, AUTH, CHPW user, DATA, the
             // password, "." on every target
    test,    // EHLO, AUTH, TEST user, DATA, the password, "."
    // Account operations (controller/operations.hpp):
    expire,  // as change, with EXPR user after the CHPW: a one-time password
    lock,    // LOCK user
    unlock,  // UNLK user
    check,   // CHCK user, DATA, the password, ".": ok or `different`
};

// "verify", "change", "test", "expire", "lock", "unlock", "check": the
// action's name in JSON, journal records and logs.
std::string_view action_name(Action a) noexcept;

// Whether the target's account may have been changed by this result
// (the run journal's own enum: the same name and values).
enum class Applied {
    no,     // nothing was changed (or the action changes nothing)
    yes,    // the target said it was done (for expire: at least the CHPW)
    maybe,  // the line that changes it went out, and no final reply came
};

struct Result {
    Outcome outcome = Outcome::protocol_error;
    int code = 0;      // the reply code that decided it, 0 when none
    std::string text;  // the reply's text or what went wrong; no secrets
    std::string step;  // where it ended: connect, banner, EHLO, AUTH, ...
    // How the controller authenticated: "SCRAM-SHA-256",
    // "SCRAM-SHA-256-PLUS", "plain", or empty when it did not get as far.
    std::string auth;
    // For a change: the phase it ended in, "test" (TEST on every target
    // first) or "change" (CHPW); empty for verify.
    std::string phase;
    // applied == Applied::maybe: the change (its data in full, or an
    // operation's verb) went out and no final reply came. Never for TEST,
    // CHCK or VRFY. The JSON's maybe_applied.
    bool maybe_applied = false;
    std::chrono::milliseconds elapsed{0};
    // What the journal records per target (journal::set_result).
    Applied applied = Applied::no;
};

struct EngineSettings {
    std::string helo_name;
    const mctp::Secret* secret = nullptr;  // the controller's shared secret
    std::chrono::milliseconds connect_timeout{5'000};
    std::chrono::milliseconds reply_timeout{15'000};
    std::chrono::milliseconds target_timeout{60'000};
    unsigned parallel = 64;
};

struct Job {
    Action action = Action::verify;
    std::string user;
    const mctp::Secret* password = nullptr;  // for change and test
    // For a change: no TEST first; CHPW goes to every target whatever the
    // others' policies say (mpasswd --best-effort, pam_mctp best_effort).
    bool best_effort = false;
    // For a change: CHCK on every target first, then the change (TEST
    // first) only where the password differs; the others `unchanged`.
    bool if_different = false;
    // Called once just before the first line that changes an account goes
    // out: for a change and --expire after TEST passed everywhere (at once
    // with best_effort), for --if-different before the CHPW on the
    // differing targets, for lock and unlock before their one phase; never
    // for verify, test or check. What it throws ends the run with nothing
    // changed (the journal records the change as going out here).
    std::function<void()> before_change{};
};

// Why a job cannot start: a bad user name, password or setting. Nothing
// has been sent anywhere when this is thrown.
struct JobError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Checks what run() would refuse, without running.
void check_job(const EngineSettings& settings, const Job& job);

// One user's work in a session, for run_sessions().
struct SessionItem {
    Action action = Action::verify;  // verify, change, test, expire (EXPR only), lock,
                                     // unlock or check
    std::string user;
    const mctp::Secret* password = nullptr;  // for change, test and check
    // change: EXPR user after the CHPW; test: the target must announce
    // EXPR too (the TEST before such a change).
    bool then_expire = false;
};

// One session per target of `which` (indexes into targets), each serving
// `items` in order. Returns, per target, one result per item (empty for
// a target not in `which`). When a session ends early, the user under way
// gets its failure (Applied::maybe if its change went out) and later
// users a protocol error "not tried"; a session that failed before the
// first user gives every user its failure. on_session is called as each
// target's session ends (on this thread).
std::vector<std::vector<Result>> run_sessions(
    const std::vector<Target>& targets, const std::vector<std::size_t>& which,
    const EngineSettings& settings, const std::vector<SessionItem>& items, Transport& transport,
    const std::function<void(std::size_t index, const std::vector<Result>&)>& on_session);

// Runs the job on every target and returns one result per target, in the
// targets' order. on_result is called as each target finishes (on this
// thread), once per target. A change without best_effort runs in two
// phases: TEST everywhere (on_result is not called yet), then CHPW
// everywhere if every target's TEST was ok; otherwise nothing is changed
// and every target's result is its TEST's (phase "test"), an accepted one
// `skipped`. Each target ends within its connect timeout plus one reply
// timeout per step, and never later than target_timeout.
std::vector<Result> run(const std::vector<Target>& targets, const EngineSettings& settings,
                        const Job& job, Transport& transport,
                        const std::function<void(std::size_t index, const Result&)>& on_result);

}  // namespace mpasswd
