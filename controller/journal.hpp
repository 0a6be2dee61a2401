// The journal of runs on the control host: one record per run of mpasswd
// or pam_mctp, in a folder only its owner (root) may write, written
// atomically, bounded in count, age and size, never holding a password or
// secret. mpasswd --runs lists it and mpasswd --resume finishes a run from
// it (mpasswd(1), RUN JOURNAL).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fanout.hpp"
#include "target.hpp"

namespace mpasswd::journal {

inline constexpr const char* default_directory = "/var/lib/mpasswd";
inline constexpr unsigned keep_runs_default = 1000;
inline constexpr unsigned keep_runs_max = 1'000'000;
inline constexpr unsigned keep_days_default = 90;
inline constexpr unsigned keep_days_max = 36'500;
// All records together; the oldest go first beyond it.
inline constexpr std::uint64_t total_max = 256ULL << 20;
// One record: 10,000 targets with their texts fit.
inline constexpr std::size_t record_max = 32U << 20;
// A target's reason as recorded (the table and JSON show it whole).
inline constexpr std::size_t text_max = 512;

// What cannot be done with the journal: an unsafe or unwritable folder, a
// bad run id, a record that is not one. Nothing has been sent anywhere
// when it is thrown before a run starts.
struct JournalError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Whether a target may have applied the run's change: `maybe` once the
// password (or the change) went out with no final reply. The engine's
// enum (fanout.hpp): the engine decides it per target and user.
using mpasswd::Applied;
std::string_view applied_name(Applied a) noexcept;

struct TargetEntry {
    // The target as a hosts-file line ("HOST:PORT TRANSPORT [OPTION...]"):
    // what --resume connects to.
    std::string spec;
    std::string label;                // "host:port", as the table shows it
    std::string result = "pending";   // an outcome name, or "pending"
    int code = 0;
    std::string phase;                // "test", "change" or empty
    std::string step;
    Applied applied = Applied::no;
    std::string text;                 // the reason, at most text_max
};

// Who ran it: the real uid and its name, SUDO_USER as claimed (only when it
// is a user name) and the kernel's login uid (none when unset).
struct Who {
    unsigned uid = 0;
    std::string name;
    std::string sudo_user;
    std::optional<unsigned> login_uid;
};

// This process's caller.
Who who_am_i();

struct Record {
    std::string id;
    std::string program;  // "mpasswd" or "pam_mctp"
    long pid = 0;
    std::int64_t started_ms = 0;  // Unix time in milliseconds
    std::int64_t ended_ms = 0;    // 0 while under way (or when killed)
    Who who;
    std::string user;
    // A word: change, verify, test, or another operation's name.
    std::string action;
    bool best_effort = false;
    bool if_different = false;
    std::string resumes;     // the run this one finishes, or empty
    std::string resumed_by;  // the run that finishes this one, or empty
    std::vector<TargetEntry> targets;
};

// The record for a run about to start: who, when, this pid, every target
// `pending`.
Record new_record(std::string_view program, std::string_view action, std::string_view user,
                  const std::vector<Target>& targets);

// A target's hosts-file line, and the targets of such lines.
std::string target_spec(const Target& t);
std::vector<Target> targets_of(const Record& r, const std::vector<std::size_t>& which);

// Records a target's result, with the engine's r.applied (so an --expire
// whose EXPR was refused after the CHPW is `refused`, applied `yes`).
void set_result(TargetEntry& entry, const Result& r);

// Every target still `pending` that a change went out to becomes `maybe`
// (written before the change phase, so a killed run shows it).
void mark_sent(Record& r);

std::string format(const Record& r);
// Throws JournalError for anything that is not a whole record.
Record parse(std::string_view text);

// "20261206T154247.123Z-0a1b2c3d": UTC start to the millisecond and 32
// random bits; ids sort in start order.
bool is_run_id(std::string_view id) noexcept;

enum class State { running, interrupted, done, refused, unfinished, resumed };
std::string_view state_name(State s) noexcept;
// `running` and `interrupted` (no end) are told apart by whether the pid
// is alive.
State state_of(const Record& r);

// Exit statuses (mpasswd(1), EXIT STATUS): the most serious applies.
namespace exit_status {
inline constexpr int ok = 0;
inline constexpr int refused = 1;
inline constexpr int usage = 2;
inline constexpr int unreachable = 3;
inline constexpr int unknown = 4;
}  // namespace exit_status
// ok and unchanged (--if-different) are 0; refused, skipped and
// different (--check) 1; maybe applied 4; anything else (pending: a target
// or batch user never reached) 3.
int exit_status_of(std::string_view result, Applied applied) noexcept;
int exit_status_of(const Record& r) noexcept;
// Whether a target's result is a success (ok, unchanged) that --resume
// leaves alone and the log line does not count as failed.
bool is_done(std::string_view result) noexcept;
// The targets --resume runs again: every one not done, or maybe applied.
std::vector<std::size_t> unfinished_targets(const Record& r);

// One line for authpriv: the run, who, the action, the user, the counts,
// at most 10 failed targets; never a secret.
std::string log_line(const Record& r);

struct Settings {
    std::string directory = default_directory;  // empty: no journal
    unsigned keep_runs = keep_runs_default;
    unsigned keep_days = keep_days_default;
};

class Journal {
public:
    // Opens the folder, making it (0700) when it does not exist. It must be
    // a directory owned by the effective user, writable by nobody else and
    // not a symlink.
    explicit Journal(const Settings& settings);
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    [[nodiscard]] const std::string& directory() const { return dir_; }

    // A new run's first record: draws r.id, and never replaces a record
    // (another id is drawn then). Prunes old runs first.
    void create(Record& r);
    // Rewrites a run's own record; takes no lock.
    void write(const Record& r);
    // create() and write() for many records (a --batch: one per user) with
    // one sync of the file system for them all, not one fsync per record:
    // every temporary file is written, then synced at once (syncfs), then
    // renamed into place, then the folder synced once.
    void create_all(std::vector<Record>& records);
    void write_all(const std::vector<Record>& records);
    // Throws JournalError for a bad id, a missing or bad record.
    [[nodiscard]] Record read(std::string_view id) const;
    // Every run id, oldest first.
    [[nodiscard]] std::vector<std::string> ids() const;
    // --resume: under the lock, re-reads `old_id` and marks it resumed by
    // `new_id`; refuses one already resumed, under way or with nothing to
    // finish.
    void claim(std::string_view old_id, std::string_view new_id);
    // Removes runs beyond keep_runs, older than keep_days, and the oldest
    // beyond total_max; never `keep` or a run under way. Only tries the
    // lock.
    void prune(std::string_view keep);
    // Removes a record (a new run that could not claim what it resumes).
    void remove(std::string_view id);

private:
    void write_file(const Record& r, bool first);
    // The temporary file with r's text, unsynced; returns its name.
    std::string write_temp(const Record& r);
    // Returns, for first records, those whose id was taken meanwhile.
    std::vector<std::size_t> write_batch(const std::vector<Record>& records, bool first);
    void create_one(Record& r);
    std::string dir_;
    Settings settings_;
    int dirfd_ = -1;
};

// One run's record as the run goes: the journal (when there is one) gets
// it before anything is sent, again when a change goes out, and at the
// end. Without a journal it is kept in memory only (for the exit status
// and the log line).
class Run {
public:
    Run(const Settings& settings, std::string_view program, std::string_view action,
        const Job& job, const std::vector<Target>& targets);
    // Opens the journal and writes the first record; throws JournalError.
    void start(std::string_view resumes = {});
    // For Job::before_change: every pending target becomes `maybe`.
    void sending();
    void result(std::size_t i, const Result& r);
    // Writes the last record; throws JournalError (the run is over).
    void finish();
    [[nodiscard]] Record& record() { return record_; }
    [[nodiscard]] Journal* journal() { return journal_ ? &*journal_ : nullptr; }
    [[nodiscard]] const std::string& id() const { return record_.id; }

private:
    Settings settings_;
    Record record_;
    std::optional<Journal> journal_;
};

// A --batch: one record per user (action change), each with that user's
// results on every target, written together with one sync per round
// (start, sending, finish) however many users.
class BatchRun {
public:
    BatchRun(const Settings& settings, std::string_view program,
             const std::vector<std::string>& users, bool best_effort,
             const std::vector<Target>& targets);
    // Opens the journal and writes every user's first record; throws
    // JournalError (nothing was sent).
    void start();
    // For run_batch()'s before_change: every pending pair becomes `maybe`.
    void sending();
    void result(std::size_t user, std::size_t target, const Result& r);
    // Writes the last records; throws JournalError (the run is over).
    void finish();
    [[nodiscard]] std::vector<Record>& records() { return records_; }
    [[nodiscard]] Journal* journal() { return journal_ ? &*journal_ : nullptr; }

private:
    Settings settings_;
    std::vector<Record> records_;
    std::optional<Journal> journal_;
};

}  // namespace mpasswd::journal
