// pam_mctp: a `password` module that checks every target before a change
// (PAM_PRELIM_CHECK) and then pushes the new password to all of them at
// once (PAM_UPDATE_AUTHTOK). C++ inside; the one exported entry point
// catches everything.
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include <syslog.h>

#include <cstdarg>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "controller_config.hpp"
#include "fanout.hpp"
#include "journal.hpp"
#include "inventory.hpp"
#include "options.hpp"
#include "report.hpp"
#include "resources.hpp"
#include "text.hpp"

namespace pam_mctp {
namespace {

using namespace mpasswd;

// Every text this module gives the user (pam_error, pam_info: they reach
// the terminal of passwd) or syslog goes through here: what it quotes (a
// target's reply, ssh's words, a file's line, a user name) is shown
// escaped, so it carries no control character and no line break.
std::string shown(std::string_view text) {
    return mctp::printable(text, mctp::limits::shown_text_max);
}

void log(pam_handle_t* pamh, int priority, std::string_view text) {
    pam_syslog(pamh, priority, "%s", shown(text).c_str());
}

struct Module {
    pam_handle_t* pamh;
    int flags;
    Options options;

    [[nodiscard]] bool silent() const { return (flags & PAM_SILENT) != 0; }

    void error(const std::string& text) const {
        if (!silent()) {
            pam_error(pamh, "%s", shown(text).c_str());
        }
    }
    void info(const std::string& text) const {
        if (!silent()) {
            pam_info(pamh, "%s", shown(text).c_str());
        }
    }
    void debug(const std::string& text) const {
        if (options.debug) {
            log(pamh, LOG_DEBUG, text);
        }
    }
};

// A failure that is not about one target (configuration, user name):
// require_all refuses the change; best_effort lets the local change go on.
int setup_failure(const Module& m, const std::string& why) {
    log(m.pamh, LOG_ERR, why);
    if (m.options.require_all) {
        m.error("Cannot reach the other hosts (" + why + "); password not changed.");
        return PAM_SERVICE_ERR;
    }
    m.error("The other hosts will not get this password (" + why + ").");
    return PAM_IGNORE;
}

// libpam's answer for a conversation that will go on later (an
// event-driven application): PAM_INCOMPLETE, as pam_pwhistory and
// pam_faillock say it; the call is repeated then.
int conversation_failure(const Module& m, int rc, const char* what) {
    if (rc == PAM_CONV_AGAIN) {
        m.debug(std::string(what) + ": the conversation will go on later");
        return PAM_INCOMPLETE;
    }
    pam_syslog(m.pamh, LOG_ERR, "%s: %s", what, pam_strerror(m.pamh, rc));
    return rc;
}

int get_user(const Module& m, std::string* out) {
    const char* user = nullptr;
    const int rc = pam_get_user(m.pamh, &user, nullptr);
    if (rc != PAM_SUCCESS) {
        return conversation_failure(m, rc, "cannot get the user name");
    }
    if (user == nullptr) {
        pam_syslog(m.pamh, LOG_ERR, "cannot get the user name: none");
        return PAM_USER_UNKNOWN;
    }
    *out = user;
    return PAM_SUCCESS;
}

// The new password, from PAM_AUTHTOK. pam_get_authtok honours use_authtok
// (and use_first_pass) itself: with it, an unset PAM_AUTHTOK is an error;
// without it, it asks for the new password.
int get_new_password(const Module& m, std::optional<mctp::Secret>* out) {
    const char* tok = nullptr;
    const int rc = pam_get_authtok(m.pamh, PAM_AUTHTOK, &tok, nullptr);
    if (rc != PAM_SUCCESS) {
        return conversation_failure(m, rc, "no new password");
    }
    if (tok == nullptr) {
        pam_syslog(m.pamh, LOG_ERR, "no new password: none");
        return PAM_AUTHTOK_ERR;
    }
    out->emplace(tok);
    return PAM_SUCCESS;
}

// The configuration and its targets.
struct Fleet {
    ControllerConfig config;
    std::vector<Target> targets;
};

// PAM_SUCCESS with targets to talk to, or what the call returns.
int load(const Module& m, Fleet* fleet) {
    try {
        fleet->config = load_controller_config(m.options.config);
        TargetChoice choice;
        choice.hosts_file = m.options.hosts;
        choice.limit = m.options.limit;
        choice.limit_name = "limit=";
        fleet->targets = choose_targets(fleet->config, choice);
    } catch (const ConfigError& e) {
        return setup_failure(m, e.what());
    }
    if (fleet->targets.empty()) {
        m.debug("no targets listed; nothing to do");
        return PAM_IGNORE;
    }
    return PAM_SUCCESS;
}

std::string code_text(const Result& r) {
    return r.code != 0 ? std::to_string(r.code) + " " : "";
}

// One syslog line per target of a change, and per failed target of a
// check (every target's with debug).
void log_result(const Module& m, const Job& job, const Target& target, const Result& r) {
    const bool ok = r.outcome == Outcome::ok;
    const bool check = job.action == Action::verify;
    if (check && ok && !m.options.debug) {
        return;
    }
    const bool tested = r.phase == "test";
    log(m.pamh, ok ? LOG_INFO : LOG_WARNING,
        std::string(check ? "check of " : tested ? "TEST of " : "change of ") + job.user +
            " on " + target.label() +
            ": " + std::string(outcome_name(r.outcome)) + " (" + code_text(r) + r.text +
            ") in " + std::to_string(r.elapsed.count()) + " ms");
}

// Tells the user which targets failed, and decides the call's result.
// `run`: the change's run id in the journal (empty for the check, or
// without a journal) and its exit status (mpasswd(1)).
int report(const Module& m, bool prelim, const std::vector<Target>& targets,
           const std::vector<Result>& results, const std::string& run_id = {}, int status = 0) {
    std::size_t failed = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        if (r.outcome == Outcome::ok) {
            continue;
        }
        ++failed;
        m.error(targets[i].label() + ": " + std::string(outcome_name(r.outcome)) +
                (r.phase == "test" ? " in TEST: " : ": ") + code_text(r) + r.text);
    }
    const std::string count = std::to_string(failed) + " of " + std::to_string(results.size());
    if (prelim) {
        if (failed == 0) {
            return PAM_SUCCESS;
        }
        if (m.options.require_all) {
            m.error("Password not changed: " + count + " hosts cannot take it.");
            return PAM_TRY_AGAIN;
        }
        m.info(count + " hosts cannot take the new password; the others will get it.");
        return PAM_SUCCESS;
    }
    if (failed == 0) {
        m.info("Password changed on " + std::to_string(results.size()) + " other hosts.");
        return PAM_SUCCESS;
    }
    if (!run_id.empty()) {
        // Only where a later try can finish it: a host that could not be
        // reached, or did not answer after it got the password.
        if (status >= journal::exit_status::unreachable) {
            m.error("Run " + run_id + " is unfinished; an administrator can finish it with "
                    "mpasswd --resume " + run_id + ".");
        } else {
            m.error("Run " + run_id + " is recorded in the journal of runs (mpasswd --runs " +
                    run_id + ").");
        }
    }
    if (!results.empty() && results.front().phase == "test") {
        // Nothing was sent CHPW: the error stops the modules below this
        // one (the local store, when the module stands above it).
        m.error("Password not changed: not every host accepts it (TEST).");
        return PAM_AUTHTOK_ERR;
    }
    m.error("Password not changed on " + count + " other hosts.");
    return m.options.require_all ? PAM_AUTHTOK_ERR : PAM_SUCCESS;
}

int chauthtok(const Module& m) {
    Job job;
    if (const int rc = get_user(m, &job.user); rc != PAM_SUCCESS) {
        return rc;
    }
    const bool prelim = (m.flags & PAM_PRELIM_CHECK) != 0;
    const bool update = (m.flags & PAM_UPDATE_AUTHTOK) != 0;
    if (prelim == update) {
        return PAM_SERVICE_ERR;
    }
    Fleet fleet;
    if (const int rc = load(m, &fleet); rc != PAM_SUCCESS) {
        return rc;
    }
    EngineSettings settings = fleet.config.engine_settings();
    // The calling user's RLIMIT_NOFILE (passwd cannot raise it to
    // unlimited) must not fail the targets: room for them, for this call.
    const DescriptorRoom room(m.options.parallel.value_or(fleet.config.parallel));
    settings.parallel = room.parallel();

    std::optional<mctp::Secret> password;
    job.action = prelim ? Action::verify : Action::change;
    if (update) {
        if (const int rc = get_new_password(m, &password); rc != PAM_SUCCESS) {
            return rc;
        }
        job.password = &*password;
        // require_all: TEST on every target first, CHPW to none unless
        // every one accepted (best_effort: CHPW wherever it goes).
        job.best_effort = !m.options.require_all;
    }
    std::unique_ptr<Transport> transport;
    try {
        check_job(settings, job);
        m.debug(std::string(prelim ? "checking " : "changing ") + job.user + " on " +
                std::to_string(fleet.targets.size()) + " targets");
        transport = fleet.config.transport_for(fleet.targets);
    } catch (const JobError& e) {
        return setup_failure(m, e.what());
    } catch (const ConfigError& e) {
        return setup_failure(m, e.what());
    }
    if (prelim) {
        const auto results = run(fleet.targets, settings, job, *transport,
                                 [&](std::size_t i, const Result& r) {
                                     log_result(m, job, fleet.targets[i], r);
                                 });
        return report(m, prelim, fleet.targets, results);
    }
    // A change is a run in the journal, recorded before anything is sent;
    // without that record nothing is sent.
    journal::Run record(fleet.config.journal, "pam_mctp", "change", job, fleet.targets);
    try {
        record.start();
    } catch (const journal::JournalError& e) {
        return setup_failure(m, e.what());
    }
    job.before_change = [&record] { record.sending(); };
    const auto results = run(fleet.targets, settings, job, *transport,
                             [&](std::size_t i, const Result& r) {
                                 record.result(i, r);
                                 log_result(m, job, fleet.targets[i], r);
                             });
    password.reset();
    for (std::size_t i = 0; i < results.size(); ++i) {
        record.result(i, results[i]);
    }
    try {
        record.finish();
    } catch (const journal::JournalError& e) {
        log(m.pamh, LOG_ERR, std::string("the run's last record was not written: ") + e.what());
    }
    const int status = journal::exit_status_of(record.record());
    log(m.pamh, status == journal::exit_status::ok ? LOG_NOTICE : LOG_WARNING,
        journal::log_line(record.record()));
    return report(m, prelim, fleet.targets, results,
                  record.journal() != nullptr ? record.id() : std::string(), status);
}

}  // namespace
}  // namespace pam_mctp

extern "C" int pam_sm_chauthtok(pam_handle_t* pamh, int flags, int argc,
                                const char** argv) {
    try {
        std::vector<std::string> ignored;
        pam_mctp::Module m{pamh, flags, pam_mctp::parse_options(argc, argv, &ignored)};
        for (const auto& arg : ignored) {
            pam_mctp::log(pamh, LOG_ERR, "ignoring module argument " + arg);
        }
        return pam_mctp::chauthtok(m);
    } catch (const std::bad_alloc&) {
        pam_syslog(pamh, LOG_CRIT, "out of memory");
        return PAM_BUF_ERR;
    } catch (const std::exception& e) {
        try {
            pam_mctp::log(pamh, LOG_ERR, std::string("internal error: ") + e.what());
        } catch (...) {
            pam_syslog(pamh, LOG_ERR, "internal error");
        }
        return PAM_SERVICE_ERR;
    } catch (...) {
        pam_syslog(pamh, LOG_ERR, "internal error");
        return PAM_SERVICE_ERR;
    }
}
