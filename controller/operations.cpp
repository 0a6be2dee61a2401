#include "operations.hpp"

#include <algorithm>
#include <unordered_set>

#include "controller_limits.hpp"
#include "text.hpp"

namespace mpasswd {
namespace {

std::vector<std::size_t> every(std::size_t n) {
    std::vector<std::size_t> all(n);
    for (std::size_t i = 0; i < n; ++i) {
        all[i] = i;
    }
    return all;
}

// The phase a result ended in; in TEST and CHCK the data steps are the
// verb's, so the table says where.
void label(Result& r, std::string_view phase) {
    r.phase = phase;
    if ((phase == "test" || phase == "check") &&
        (r.step == "DATA" || r.step == "password" || r.step == "end of data")) {
        r.step = phase == "test" ? "TEST" : "CHCK";
    }
}

// One user, one phase, one session per target of `which`; the results
// indexed by target (default ones for the others).
std::vector<Result> one_phase(const std::vector<Target>& targets,
                              const std::vector<std::size_t>& which,
                              const EngineSettings& settings, const SessionItem& item,
                              Transport& transport, std::string_view phase,
                              const std::function<void(std::size_t, const Result&)>& on_result) {
    auto sessions = run_sessions(targets, which, settings, {item}, transport,
                                 [&](std::size_t i, const std::vector<Result>& r) {
                                     if (on_result) {
                                         Result x = r.at(0);
                                         label(x, phase);
                                         on_result(i, x);
                                     }
                                 });
    std::vector<Result> out(targets.size());
    for (const auto i : which) {
        out[i] = std::move(sessions[i].at(0));
        label(out[i], phase);
    }
    return out;
}

void tell(const std::function<void(std::size_t, const Result&)>& on_result, std::size_t i,
          const Result& r) {
    if (on_result) {
        on_result(i, r);
    }
}

// The journal's hook, just before the first line that changes anything.
void announce_change(const Job& job) {
    if (job.before_change) {
        job.before_change();
    }
}

const char* const not_everywhere =
    "password acceptable here, but not on every target: not changed";

// TEST on `which` before a change; false (and every result final, the
// accepted ones `skipped`) when some target did not accept.
bool tested_everywhere(const std::vector<Target>& targets, const std::vector<std::size_t>& which,
                       const EngineSettings& settings, const Job& job, Transport& transport,
                       std::vector<Result>& results,
                       const std::function<void(std::size_t, const Result&)>& on_result) {
    // Before --expire, a target that cannot EXPR stops the change too.
    auto tested = one_phase(targets, which, settings,
                            {Action::test, job.user, job.password, job.action == Action::expire},
                            transport, "test", {});
    const bool all_ok = std::all_of(which.begin(), which.end(),
                                    [&](std::size_t i) { return tested[i].outcome == Outcome::ok; });
    if (all_ok) {
        return true;
    }
    for (const auto i : which) {
        results[i] = std::move(tested[i]);
        if (results[i].outcome == Outcome::ok) {
            results[i].outcome = Outcome::skipped;
            results[i].text = not_everywhere;
        }
        tell(on_result, i, results[i]);
    }
    return false;
}

std::vector<Result> if_different(const std::vector<Target>& targets,
                                 const EngineSettings& settings, const Job& job,
                                 Transport& transport,
                                 const std::function<void(std::size_t, const Result&)>& on_result) {
    const auto all = every(targets.size());
    auto results = one_phase(targets, all, settings, {Action::check, job.user, job.password},
                             transport, "check", {});
    const bool failed = std::any_of(results.begin(), results.end(), [](const Result& r) {
        return r.outcome != Outcome::ok && r.outcome != Outcome::different;
    });
    std::vector<std::size_t> differ;
    for (const auto i : all) {
        Result& r = results[i];
        if (r.outcome == Outcome::ok) {
            r.outcome = Outcome::unchanged;
            r.text = "already this password: not changed";
        } else if (r.outcome == Outcome::different) {
            if (failed && !job.best_effort) {
                r.outcome = Outcome::skipped;
                r.text = "the password differs here, but CHCK failed on another target: not "
                         "changed";
            } else {
                differ.push_back(i);
                continue;  // its result comes with the change
            }
        }
        tell(on_result, i, r);
    }
    if (differ.empty()) {
        return results;
    }
    if (!job.best_effort &&
        !tested_everywhere(targets, differ, settings, job, transport, results, on_result)) {
        return results;
    }
    announce_change(job);
    auto changed = one_phase(targets, differ, settings, {Action::change, job.user, job.password},
                             transport, "change", on_result);
    for (const auto i : differ) {
        results[i] = std::move(changed[i]);
    }
    return results;
}

}  // namespace

bool needs_password(Action a) noexcept {
    return a == Action::change || a == Action::test || a == Action::expire ||
           a == Action::check;
}

bool is_account_operation(const Job& job) noexcept {
    return job.action == Action::expire || job.action == Action::lock ||
           job.action == Action::unlock || job.action == Action::check ||
           (job.action == Action::change && job.if_different);
}

std::vector<Result> run_operation(const std::vector<Target>& targets,
                                  const EngineSettings& settings, const Job& job,
                                  Transport& transport,
                                  const std::function<void(std::size_t, const Result&)>& on_result) {
    const auto all = every(targets.size());
    switch (job.action) {
    case Action::lock:
    case Action::unlock:
        announce_change(job);
        return one_phase(targets, all, settings, {job.action, job.user}, transport, "change",
                         on_result);
    case Action::check:
        return one_phase(targets, all, settings, {Action::check, job.user, job.password},
                         transport, "check", on_result);
    case Action::expire: {
        std::vector<Result> results(targets.size());
        if (!job.best_effort &&
            !tested_everywhere(targets, all, settings, job, transport, results, on_result)) {
            return results;
        }
        announce_change(job);
        return one_phase(targets, all, settings,
                         {Action::change, job.user, job.password, /*then_expire=*/true},
                         transport, "change", on_result);
    }
    case Action::change:
        if (job.if_different) {
            return if_different(targets, settings, job, transport, on_result);
        }
        break;
    case Action::verify:
    case Action::test: break;
    }
    throw JobError("not an account operation");
}

void check_batch(const EngineSettings& settings, const std::vector<BatchUser>& users,
                 std::size_t targets) {
    if (users.empty()) {
        throw JobError("the batch has no users");
    }
    if (users.size() > batch_users_max) {
        throw JobError("a batch is at most " + std::to_string(batch_users_max) + " users");
    }
    if (users.size() * targets > batch_pairs_max) {
        throw JobError("a batch is at most " + std::to_string(batch_pairs_max) +
                       " user x target pairs (" + std::to_string(users.size()) + " users x " +
                       std::to_string(targets) + " targets)");
    }
    std::unordered_set<std::string_view> seen;
    for (std::size_t i = 0; i < users.size(); ++i) {
        const auto& u = users[i];
        const std::string which = "batch user " + std::to_string(i + 1) + ": ";
        if (!mctp::is_user_name(u.user)) {
            throw JobError(which + "not a valid user name");
        }
        if (!seen.insert(u.user).second) {
            throw JobError(which + "the same user again");
        }
        try {
            check_job(settings, Job{Action::change, u.user, u.password});
        } catch (const JobError& e) {
            throw JobError(which + e.what());
        }
    }
}

std::vector<std::vector<Result>> run_batch(
    const std::vector<Target>& targets, const EngineSettings& settings,
    const std::vector<BatchUser>& users, bool best_effort, Transport& transport,
    const std::function<void(std::size_t, std::size_t, const Result&)>& on_result,
    const std::function<void()>& before_change) {
    check_batch(settings, users, targets.size());
    const auto all = every(targets.size());
    std::vector<std::vector<Result>> results(users.size(), std::vector<Result>(targets.size()));
    const auto items = [&](Action a) {
        std::vector<SessionItem> list;
        list.reserve(users.size());
        for (const auto& u : users) {
            list.push_back({a, u.user, u.password});
        }
        return list;
    };
    if (!best_effort) {
        auto tested = run_sessions(targets, all, settings, items(Action::test), transport, {});
        bool all_ok = true;
        for (const auto& session : tested) {
            all_ok = all_ok && std::all_of(session.begin(), session.end(), [](const Result& r) {
                         return r.outcome == Outcome::ok;
                     });
        }
        if (!all_ok) {
            for (std::size_t t = 0; t < targets.size(); ++t) {
                for (std::size_t u = 0; u < users.size(); ++u) {
                    Result& r = results[u][t];
                    r = std::move(tested[t].at(u));
                    label(r, "test");
                    if (r.outcome == Outcome::ok) {
                        r.outcome = Outcome::skipped;
                        r.text = "password acceptable here, but TEST did not pass for every "
                                 "user on every target: no one was changed";
                    }
                    if (on_result) {
                        on_result(u, t, r);
                    }
                }
            }
            return results;
        }
    }
    if (before_change) {
        before_change();
    }
    run_sessions(targets, all, settings, items(Action::change), transport,
                 [&](std::size_t t, const std::vector<Result>& session) {
                     for (std::size_t u = 0; u < users.size(); ++u) {
                         Result& r = results[u][t];
                         r = session.at(u);
                         label(r, "change");
                         if (on_result) {
                             on_result(u, t, r);
                         }
                     }
                 });
    return results;
}

}  // namespace mpasswd
