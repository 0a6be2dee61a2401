// Account operations over the fan-out engine (issue 14): the phases of
// --expire, --lock, --unlock, --check and --if-different for one user,
// and a batch of users served in one session per target per phase.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "fanout.hpp"

namespace mpasswd {

// A batch is at most this many users, and this many user x target pairs.
inline constexpr std::size_t batch_users_max = 10'000;
inline constexpr std::size_t batch_pairs_max = 200'000;

// Whether the action sends a password (change, test, expire, check).
bool needs_password(Action a) noexcept;

// expire, lock, unlock, check, or a change with if_different: what
// run() hands to run_operation().
bool is_account_operation(const Job& job) noexcept;

// One user on every target (run() calls it; the job is checked):
// - lock, unlock: LOCK/UNLK user, phase "change";
// - check: CHCK, phase "check", each target `ok` or `different`;
// - expire: TEST everywhere first (unless best_effort), then CHPW and EXPR
//   in one session per target; an EXPR refused after the CHPW is
//   `refused` with "password changed, but not made one-time", applied yes;
// - change with if_different: CHCK everywhere; where the password is
//   already the user's, `unchanged` (phase "check"); where it differs, the
//   change (TEST first unless best_effort). All or nothing: when a CHCK
//   fails anywhere, nothing is changed (the differing targets `skipped`)
//   unless best_effort, which changes the differing ones and leaves the
//   failed ones as they are.
// on_result is called once per target when its result is final;
// job.before_change as fanout.hpp says (never for check).
std::vector<Result> run_operation(const std::vector<Target>& targets,
                                  const EngineSettings& settings, const Job& job,
                                  Transport& transport,
                                  const std::function<void(std::size_t, const Result&)>& on_result);

struct BatchUser {
    std::string user;
    const mctp::Secret* password = nullptr;
};

// What run_batch() would refuse: no users, more than batch_users_max, more
// than batch_pairs_max pairs, a bad or repeated user name, a bad password.
// The message names the user by its place in the batch (1-based), never
// by a name or password.
void check_batch(const EngineSettings& settings, const std::vector<BatchUser>& users,
                 std::size_t targets);

// A batch of password changes: TEST of every user in one session per
// target, then, only when every user passed on every target, CHPW of
// every user in one session per target (best_effort: no TEST, CHPW for
// all). Returns results[user][target]. When TEST did not pass for all,
// nothing is changed: every pair has its TEST result, an accepted one
// `skipped`. on_result(user, target, result) once per pair when final.
// before_change (the journal's, as Job::before_change) is called once
// TEST has passed for every user on every target (at once with
// best_effort), before the CHPW sessions; never when TEST stopped it.
std::vector<std::vector<Result>> run_batch(
    const std::vector<Target>& targets, const EngineSettings& settings,
    const std::vector<BatchUser>& users, bool best_effort, Transport& transport,
    const std::function<void(std::size_t user, std::size_t target, const Result&)>& on_result,
    const std::function<void()>& before_change = {});

}  // namespace mpasswd
