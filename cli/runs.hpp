// mpasswd --runs and --resume: reading the journal of runs, choosing what
// to resume, and the one authpriv line per run.
#pragma once

#include <optional>
#include <string>

#include "journal.hpp"

namespace mpasswd {

// --runs: the newest 50 runs, or one run's detail. Returns the exit status.
int list_runs(const journal::Settings& settings, const std::optional<std::string>& id);

// --resume: the run named, or the newest unfinished or interrupted one not
// superseded by a later run of the same user and kind (change and expire
// set the password, lock and unlock the lock). Only change, expire, lock
// and unlock runs are resumed (a lock or unlock needs no password); a
// check or verify changes nothing and is simply run again. Throws
// journal::JournalError when there is none or it cannot be resumed.
journal::Record run_to_resume(const journal::Settings& settings,
                              const std::optional<std::string>& id);

// One line to syslog (LOG_AUTHPRIV; LOG_NOTICE when every target is ok,
// LOG_WARNING otherwise) for a finished run.
void log_run(const journal::Record& r);

}  // namespace mpasswd
