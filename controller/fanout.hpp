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
};

std::string_view outcome_name(Outcome o) noexcept;

enum class Action {
    verify,  // EHLO, AUTH, VRFY user
    change,  // without best_effort: first TEST on every target, then, only
             // when every target accepted, EHLO, AUTH, CHPW user, DATA, the
             // password, "." on every target
    test,    // EHLO, AUTH, TEST user, DATA, the password, "."
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
    // A change went out (its data was sent in full) and no final reply
    // came: the target may have applied it. Never for TEST or VRFY.
    bool maybe_applied = false;
    std::chrono::milliseconds elapsed{0};
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
    // For a change: called once just before the first CHPW goes out (after
    // TEST passed everywhere); what it throws ends the run with nothing
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
