// pam_mctp.so's module arguments.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pam_mctp {

struct Options {
    std::string config;                 // config=FILE (default /etc/mpasswd/mpasswd.conf)
    std::optional<std::string> hosts;   // hosts=FILE (default: the config's)
    std::optional<std::string> limit;   // limit=PATTERN: only these groups and hosts
    // parallel=N|auto (default: the config's `parallel`)
    std::optional<unsigned> parallel;
    bool require_all = true;            // require_all | best_effort
    bool debug = false;
    // use_authtok is accepted and changes nothing here: pam_get_authtok
    // reads it from the arguments itself (as in pam_pwhistory).
};

// Fills Options from the arguments. Arguments it does not know, and bad
// values, go to *ignored with why, for the caller to log; they change
// nothing.
Options parse_options(int argc, const char** argv, std::vector<std::string>* ignored);

}  // namespace pam_mctp
