#include "options.hpp"

#include <string_view>

#include "controller_config.hpp"

namespace pam_mctp {
namespace {

struct Flag {
    std::string_view name;
    void (*set)(Options&);
};

struct Valued {
    std::string_view prefix;  // "config="
    void (*set)(Options&, std::string_view);
};

constexpr Flag flags[] = {
    {"require_all", [](Options& o) { o.require_all = true; }},
    {"best_effort", [](Options& o) { o.require_all = false; }},
    {"debug", [](Options& o) { o.debug = true; }},
    // Known, and nothing to do: pam_get_authtok honours it itself.
    {"use_authtok", [](Options&) {}},
};

constexpr Valued valued[] = {
    {"config=", [](Options& o, std::string_view v) { o.config = v; }},
    {"hosts=", [](Options& o, std::string_view v) { o.hosts = std::string(v); }},
};

}  // namespace

Options parse_options(int argc, const char** argv, std::vector<std::string>* ignored) {
    Options o;
    o.config = mpasswd::default_config_path;
    for (int i = 0; i < argc; ++i) {
        const std::string_view arg = argv[i] ? argv[i] : "";
        bool known = false;
        for (const auto& f : flags) {
            if (arg == f.name) {
                f.set(o);
                known = true;
            }
        }
        if (arg.starts_with("parallel=")) {
            unsigned n = 0;
            if (mpasswd::parse_parallel(arg.substr(9), &n)) {
                o.parallel = n;
            } else {
                ignored->push_back(std::string(arg) + " (" + mpasswd::parallel_range_text() + ")");
            }
            known = true;
        }
        for (const auto& v : valued) {
            if (arg.starts_with(v.prefix)) {
                const auto value = arg.substr(v.prefix.size());
                if (!value.starts_with('/')) {
                    ignored->push_back(std::string(arg) + " (not an absolute path)");
                } else {
                    v.set(o, value);
                }
                known = true;
            }
        }
        if (arg.starts_with("limit=")) {
            // Kept even when bad: choose_targets refuses it, and the call
            // fails rather than reach every target.
            o.limit = std::string(arg.substr(6));
            known = true;
        }
        if (!known) {
            ignored->push_back(std::string(arg) + " (unknown option)");
        }
    }
    return o;
}

}  // namespace pam_mctp
