#include "runs.hpp"

#include <syslog.h>

#include <algorithm>
#include <ctime>
#include <iostream>
#include <set>

#include "text.hpp"

namespace mpasswd {
namespace {

using journal::JournalError;
using journal::Record;
using journal::State;

constexpr std::size_t list_max = 50;

// What --resume can finish: what changes an account. A check changes
// nothing (run it again), a verify neither; a batch's records are changes.
bool resumable_action(std::string_view action) {
    return action == "change" || action == "expire" || action == "lock" || action == "unlock";
}

// Runs that decide the same thing: the password, or the lock.
std::string kind_of(std::string_view action) {
    return action == "lock" || action == "unlock" ? "lock" : "password";
}

std::size_t done_count(const Record& r) {
    return static_cast<std::size_t>(
        std::count_if(r.targets.begin(), r.targets.end(),
                      [](const journal::TargetEntry& t) { return journal::is_done(t.result); }));
}

std::string when(std::int64_t ms) {
    if (ms == 0) {
        return "-";
    }
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

std::string who(const journal::Who& w) {
    std::string out = w.name.empty() ? "uid " + std::to_string(w.uid) : w.name;
    if (!w.sudo_user.empty()) {
        out += " (sudo " + w.sudo_user + ")";
    }
    return out;
}

std::string state_text(const Record& r) {
    const State s = journal::state_of(r);
    std::string out(journal::state_name(s));
    if (s == State::resumed) {
        out += " (by " + r.resumed_by + ")";
    } else if (!r.resumes.empty()) {
        out += " (resumes " + r.resumes + ")";
    }
    return out;
}

std::string pad(std::string s, std::size_t w) {
    s.resize(std::max(s.size(), w), ' ');
    return s;
}

void show_run(const Record& r) {
    const std::size_t ok = done_count(r);
    std::cout << "run " << r.id << "\n"
              << "state " << state_text(r) << "\n"
              << "program " << r.program << " (pid " << r.pid << ")\n"
              << "started " << when(r.started_ms) << "\n"
              << "ended " << when(r.ended_ms) << "\n"
              << "by uid " << r.who.uid << (r.who.name.empty() ? "" : " (" + r.who.name + ")")
              << (r.who.sudo_user.empty() ? "" : ", SUDO_USER " + r.who.sudo_user)
              << (r.who.login_uid ? ", login uid " + std::to_string(*r.who.login_uid) : "")
              << "\n"
              << "user " << r.user << "\n"
              << "action " << r.action << (r.if_different ? " (if different)" : "")
              << (r.best_effort ? " (best effort)" : "") << "\n"
              << "targets " << ok << " of " << r.targets.size() << " ok\n";
    for (const auto& t : r.targets) {
        std::cout << "  " << mctp::printable(t.label, 320) << ": " << t.result << ", applied "
                  << journal::applied_name(t.applied)
                  << (t.phase.empty() ? "" : ", phase " + t.phase)
                  << (t.step.empty() ? "" : ", step " + mctp::printable(t.step, 64))
                  << (t.code != 0 ? ", code " + std::to_string(t.code) : "")
                  << (t.text.empty() ? "" : ": " + mctp::printable(t.text, journal::text_max))
                  << "\n";
    }
}

}  // namespace

int list_runs(const journal::Settings& settings, const std::optional<std::string>& id) {
    if (settings.directory.empty()) {
        throw JournalError("no journal: journal_directory is none");
    }
    journal::Journal j(settings);
    if (id) {
        show_run(j.read(*id));
        return journal::exit_status::ok;
    }
    auto ids = j.ids();
    if (ids.size() > list_max) {
        ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(list_max));
    }
    std::cout << pad("RUN", 29) << "  " << pad("STATE", 11) << "  " << pad("ACTION", 7) << "  "
              << pad("USER", 12) << "  " << pad("BY", 16) << "  " << pad("OK", 11)
              << "  PROGRAM  NOTE\n";
    for (const auto& run : ids) {
        try {
            const Record r = j.read(run);
            const std::size_t ok = done_count(r);
            const State s = journal::state_of(r);
            std::string note = s == State::resumed ? "resumed by " + r.resumed_by
                               : !r.resumes.empty() ? "resumes " + r.resumes
                                                    : "";
            std::string row =
                r.id + "  " + pad(std::string(journal::state_name(s)), 11) + "  " +
                pad(r.action, 7) + "  " + pad(r.user, 12) + "  " + pad(who(r.who), 16) + "  " +
                pad(std::to_string(ok) + "/" + std::to_string(r.targets.size()), 11) + "  " +
                pad(r.program, 7) + "  " + note;
            row.erase(row.find_last_not_of(' ') + 1);
            std::cout << row << "\n";
        } catch (const JournalError& e) {
            std::cout << run << "  bad record: " << mctp::printable(e.what(), 200) << "\n";
        }
    }
    return journal::exit_status::ok;
}

Record run_to_resume(const journal::Settings& settings, const std::optional<std::string>& id) {
    if (settings.directory.empty()) {
        throw JournalError("no journal: journal_directory is none");
    }
    journal::Journal j(settings);
    const auto resumable = [](const Record& r) {
        const State s = journal::state_of(r);
        return s == State::unfinished || s == State::interrupted;
    };
    if (id) {
        Record r = j.read(*id);
        const State s = journal::state_of(r);
        if (s == State::resumed) {
            throw JournalError("run " + r.id + " was resumed already by run " + r.resumed_by +
                               " (resume that one)");
        }
        if (s == State::running) {
            throw JournalError("run " + r.id + " is still running (pid " +
                               std::to_string(r.pid) + ")");
        }
        if (journal::unfinished_targets(r).empty()) {
            throw JournalError("run " + r.id + " is done: nothing to finish");
        }
        if (!resumable_action(r.action)) {
            throw JournalError("run " + r.id + " is a " + r.action +
                               "; only a change, expire, lock or unlock can be resumed");
        }
        return r;
    }
    // Newest first. A run is passed over when a later run did the same
    // kind of thing to the same user: a later change or expire set the
    // password (resuming would set an older one again), a later lock or
    // unlock decided the lock (resuming an old lock would undo an unlock).
    auto ids = j.ids();
    std::set<std::string> superseded;
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
        Record r;
        try {
            r = j.read(*it);
        } catch (const JournalError&) {
            continue;
        }
        if (!resumable_action(r.action)) {
            continue;
        }
        const std::string key = kind_of(r.action) + " " + r.user;
        if (!superseded.count(key) && resumable(r)) {
            return r;
        }
        if (std::any_of(r.targets.begin(), r.targets.end(), [](const journal::TargetEntry& t) {
                return t.applied != journal::Applied::no;
            })) {
            superseded.insert(key);
        }
    }
    throw JournalError("no unfinished or interrupted run to resume in " + settings.directory);
}

void log_run(const Record& r) {
    const bool all_ok = journal::exit_status_of(r) == journal::exit_status::ok;
    openlog("mpasswd", LOG_PID, LOG_AUTHPRIV);
    syslog(LOG_AUTHPRIV | (all_ok ? LOG_NOTICE : LOG_WARNING), "%s",
           mctp::printable(journal::log_line(r), 2000).c_str());
    closelog();
}

}  // namespace mpasswd
