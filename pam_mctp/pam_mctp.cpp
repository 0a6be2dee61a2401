// pam_mctp: a `password` module that checks every target before a change
// (PAM_PRELIM_CHECK) and then pushes the new password to all of them at
// once (PAM_UPDATE_AUTHTOK). C++ inside; the one exported entry point
// catches everything.
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include <syslog.h>

#include <cstdarg>
#include <new>
#include <string>
#include <vector>

#include "controller_config.hpp"
#include "fanout.hpp"
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

int chauthtok(Module& m) {
    const char* user = nullptr;
    int rc = pam_get_user(m.pamh, &user, nullptr);
    if (rc != PAM_SUCCESS || user == nullptr) {
        pam_syslog(m.pamh, LOG_ERR, "cannot get the user name: %s", pam_strerror(m.pamh, rc));
        return rc == PAM_SUCCESS ? PAM_USER_UNKNOWN : rc;
    }
    const bool prelim = (m.flags & PAM_PRELIM_CHECK) != 0;
    const bool update = (m.flags & PAM_UPDATE_AUTHTOK) != 0;
    if (prelim == update) {
        return PAM_SERVICE_ERR;
    }

    ControllerConfig config;
    std::vector<Target> targets;
    try {
        config = load_controller_config(m.options.config);
        targets = load_hosts_file(m.options.hosts.value_or(config.hosts_file),
                                  config.target_defaults());
    } catch (const ConfigError& e) {
        return setup_failure(m, e.what());
    }
    if (targets.empty()) {
        m.debug("no targets listed; nothing to do");
        return PAM_IGNORE;
    }

    EngineSettings settings;
    settings.helo_name = config.name.empty() ? default_helo_name() : config.name;
    settings.secret = &config.secret;
    settings.connect_timeout = config.connect_timeout;
    settings.reply_timeout = config.reply_timeout;
    settings.target_timeout = config.target_timeout;
    // The calling user's RLIMIT_NOFILE (passwd cannot raise it to
    // unlimited) must not fail the targets: room for them, for this call.
    const DescriptorRoom room(config.parallel);
    settings.parallel = room.parallel();

    Job job;
    job.user = user;
    std::optional<mctp::Secret> password;
    if (prelim) {
        job.action = Action::verify;
    } else {
        const char* tok = nullptr;
        // Honours use_authtok (and use_first_pass) itself: with it, an unset
        // PAM_AUTHTOK is an error; without it, asks for the new password.
        rc = pam_get_authtok(m.pamh, PAM_AUTHTOK, &tok, nullptr);
        if (rc != PAM_SUCCESS || tok == nullptr) {
            pam_syslog(m.pamh, LOG_ERR, "no new password: %s", pam_strerror(m.pamh, rc));
            return rc == PAM_SUCCESS ? PAM_AUTHTOK_ERR : rc;
        }
        job.action = Action::change;
        password.emplace(tok);
        job.password = &*password;
    }
    try {
        check_job(settings, job);
    } catch (const JobError& e) {
        return setup_failure(m, e.what());
    }

    m.debug(std::string(prelim ? "checking " : "changing ") + job.user + " on " +
            std::to_string(targets.size()) + " targets");
    std::unique_ptr<Transport> transport;
    try {
        transport = make_transport(config.ssh_settings(), config.tls_settings(), targets);
    } catch (const TransportError& e) {
        return setup_failure(m, config.path + ": " + e.what());
    }
    const auto results = run(targets, settings, job, *transport,
                             [&](std::size_t i, const Result& r) {
                                 const bool ok = r.outcome == Outcome::ok;
                                 const std::string code =
                                     r.code != 0 ? std::to_string(r.code) + " " : "";
                                 if (!prelim || !ok || m.options.debug) {
                                     log(m.pamh, ok ? LOG_INFO : LOG_WARNING,
                                         std::string(prelim ? "check of " : "change of ") +
                                             job.user + " on " + targets[i].label() + ": " +
                                             std::string(outcome_name(r.outcome)) + " (" +
                                             code + r.text + ") in " +
                                             std::to_string(r.elapsed.count()) + " ms");
                                 }
                             });
    password.reset();

    std::size_t failed = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        if (r.outcome == Outcome::ok) {
            continue;
        }
        ++failed;
        m.error(targets[i].label() + ": " + std::string(outcome_name(r.outcome)) + ": " +
                (r.code != 0 ? std::to_string(r.code) + " " : "") + r.text);
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
    m.error("Password not changed on " + count + " other hosts.");
    return m.options.require_all ? PAM_AUTHTOK_ERR : PAM_SUCCESS;
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
