#include "config.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "config_file.hpp"
#include "config_keys.hpp"
#include "fingerprint.hpp"
#include "limits.hpp"
#include "scram.hpp"
#include "secret.hpp"
#include "secret_hash.hpp"
#include "text.hpp"

namespace mpasswdd {
namespace {

namespace limits = mctp::limits;
namespace cfg = mctp::cfg;

constexpr std::string_view controller_prefix = "controller ";
// The largest uid a key may name: (uid_t)-1 means "no uid".
constexpr uid_t uid_max = 4294967294U;

// ---- Kinds of keys only mpasswdd.conf has.

bool is_banner_name(std::string_view s) noexcept {
    return mctp::is_helo_name(s) && s.size() <= limits::host_name_max;
}

// Users or groups (group names follow the same portable rules as user
// names); shown as `unset` when there are none.
template <class T, class M>
cfg::Key<T> names(std::string_view name, M member, bool user_names,
                  std::string_view description, std::string_view unset = "(none)") {
    const std::string kind = user_names ? "user" : "group";
    return cfg::list<T>(
        name, member, limits::list_entries_max,
        [kind](const std::string& item) {
            return mctp::is_user_name(item)
                       ? std::string()
                       : "'" + item + "' is not a valid " + kind + " name";
        },
        description, unset);
}

// An absolute folder without spaces or '..', kept without trailing '/'.
cfg::Key<Config> directory(std::string_view name, std::string Config::*member,
                           std::string_view description) {
    return {name,
            [member](Config& c, std::string_view v, const std::string&, std::string* why) {
                if (!v.starts_with('/') || v.size() > 1024 || v.find("/../") != v.npos ||
                    v.ends_with("/..") || !mctp::is_printable_ascii(v) ||
                    v.find(' ') != v.npos) {
                    *why = "must be an absolute path without spaces or '..'";
                    return false;
                }
                std::string dir(v);
                while (dir.size() > 1 && dir.ends_with('/')) {
                    dir.pop_back();
                }
                c.*member = std::move(dir);
                return true;
            },
            [member](const Config& c) { return c.*member; }, description};
}

std::string text_or_none(const std::string& s) {
    return s.empty() ? std::string("(none)") : s;
}

// An absolute file name (the TLS files), shown as (none) while unset.
cfg::Key<Config> absolute_file(std::string_view name, std::string Config::*member,
                               std::string_view description) {
    return {name,
            [member](Config& c, std::string_view v, const std::string&, std::string* why) {
                if (!v.starts_with('/') || v.size() > 1024 || !mctp::is_printable_ascii(v)) {
                    *why = "must be an absolute path of at most 1024 characters";
                    return false;
                }
                c.*member = v;
                return true;
            },
            [member](const Config& c) { return text_or_none(c.*member); }, description};
}

bool set_failures_per_source(Config& c, std::string_view v, const std::string&,
                             std::string* why) {
    if (!cfg::parse_uint(v, 0U, limits::max_auth_failures_per_source_max,
                         &c.max_auth_failures_per_source)) {
        *why = "must be a number from 0 (not counted) to " +
               std::to_string(limits::max_auth_failures_per_source_max);
        return false;
    }
    return true;
}

std::string show_failures_per_source(const Config& c) {
    return std::to_string(c.max_auth_failures_per_source) +
           (c.max_auth_failures_per_source == 0 ? " (not counted)" : "");
}

// Every key before any header or in [mpasswdd], in the order of
// mpasswdd.conf(5).
const cfg::KeyTable<Config>& global_table() {
    using C = Config;
    const auto policy = [](auto member) {
        return [member](auto& c) -> auto& { return c.policy.*member; };
    };
    static const cfg::KeyTable<Config> table{
        cfg::flag<C>("enabled", &C::enabled, "no: answer every connection with 421"),
        cfg::word<C>("host_name", &C::host_name, is_banner_name,
                     "a host name of at most " + std::to_string(limits::host_name_max) +
                         " characters",
                     "the name in the banner and replies", "(system host name)"),
        cfg::word<C>("pam_service", &C::pam_service, mctp::is_user_name,
                     "a PAM service name (letters, digits, '.', '_', '-')",
                     "the PAM service that changes passwords"),
        cfg::word<C>("check_service", &C::check_service, mctp::is_user_name,
                     "a PAM service name (letters, digits, '.', '_', '-')",
                     "the PAM service that TEST runs: checks only, stores nothing"),
        cfg::number<C>("line_max", &C::line_max, limits::line_max_min, limits::line_max_max,
                       "octets of one input line, CRLF included", "a number of octets"),
        cfg::seconds<C>("idle_timeout", &C::idle_timeout, limits::timeout_min,
                        limits::timeout_max, "seconds allowed between two lines"),
        cfg::seconds<C>("session_timeout", &C::session_timeout, limits::timeout_min,
                        limits::timeout_max, "seconds allowed for the whole connection"),
        cfg::seconds<C>("auth_failure_delay", &C::auth_failure_delay,
                        limits::auth_failure_delay_min, limits::auth_failure_delay_max,
                        "the pause before the reply to a failed AUTH"),
        cfg::number<C>("max_auth_failures", &C::max_auth_failures,
                       limits::max_auth_failures_min, limits::max_auth_failures_max,
                       "failed AUTHs in one session before 421 and the close"),
        cfg::seconds<C>("login_grace_time", &C::login_grace_time, limits::login_grace_time_min,
                        limits::login_grace_time_max,
                        "seconds from connect until AUTH must have succeeded"),
        {"max_auth_failures_per_source", set_failures_per_source, show_failures_per_source,
         "failed AUTHs from one source within auth_failure_window before 421 (0: not "
         "counted)"},
        cfg::seconds<C>("auth_failure_window", &C::auth_failure_window,
                        limits::auth_failure_window_min, limits::auth_failure_window_max,
                        "how long a source's failed AUTHs are counted"),
        directory("state_directory", &C::state_directory,
                  "where the count of failed AUTHs per source is kept"),
        cfg::word<C>("privsep_user", &C::privsep_user, mctp::is_user_name, "a user name",
                     "the network child's user"),
        directory("privsep_directory", &C::privsep_directory,
                  "the network child's (empty, root-owned) root folder"),
        cfg::number<C>("min_uid", policy(&UserPolicy::min_uid), uid_t{0}, uid_max,
                       "the lowest uid whose password may be changed", "a user id"),
        cfg::number<C>("max_uid", policy(&UserPolicy::max_uid), uid_t{0}, uid_max,
                       "the highest uid whose password may be changed", "a user id"),
        names<C>("allow_users", policy(&UserPolicy::allow_users), true,
                 "when set, the only users whose password may be changed"),
        names<C>("deny_users", policy(&UserPolicy::deny_users), true,
                 "users whose password is never changed"),
        names<C>("allow_groups", policy(&UserPolicy::allow_groups), false,
                 "when set, only members of these groups"),
        names<C>("deny_groups", policy(&UserPolicy::deny_groups), false,
                 "members of these groups are never changed"),
        cfg::flag<C>("tls", &C::tls, "yes: implicit TLS before the banner"),
        absolute_file("tls_certificate", &C::tls_certificate,
                      "the server certificate chain (PEM)"),
        absolute_file("tls_key", &C::tls_key, "the server certificate's key (PEM)"),
        absolute_file("tls_client_ca", &C::tls_client_ca,
                      "CA certificates for client certificates (PEM); set: one is required"),
    };
    return table;
}

bool set_from(Controller& ctl, std::string_view value, const std::string&, std::string* why) {
    std::vector<std::string> text = cfg::split_list(value);
    if (text.empty() || text.size() > limits::list_entries_max) {
        *why = "must list 1 to " + std::to_string(limits::list_entries_max) +
               " addresses, CIDR blocks or 'local'";
        return false;
    }
    std::vector<AddressRule> rules;
    for (const auto& item : text) {
        auto rule = parse_address_rule(item, why);
        if (!rule) {
            return false;
        }
        rules.push_back(*rule);
    }
    ctl.from = std::move(rules);
    ctl.from_text = std::move(text);
    return true;
}

bool set_secret_hash(Controller& ctl, std::string_view value, const std::string&,
                     std::string* why) {
    const std::string hash(value);
    if (!hash.starts_with("$y$")) {
        *why = "must be a yescrypt hash ($y$...) made by mpasswdd --hash-secret";
        return false;
    }
    // The shape only: the file is read at every connection, and hashing
    // each entry here would cost every peer, even a refused one, a
    // yescrypt run per controller. --check-config hashes.
    if (!yescrypt_setting_ok(hash, why)) {
        return false;
    }
    ctl.secret_hash = hash;
    return true;
}

// Never the hash itself.
std::string show_secret_hash(const Controller& ctl) {
    return ctl.secret_hash.empty() ? "(none: the old AUTH <secret> refused)"
                                   : "(set, yescrypt; the old AUTH <secret> accepted)";
}

bool set_secret_verifier(Controller& ctl, std::string_view value, const std::string&,
                         std::string* why) {
    std::string reason;
    auto v = mctp::scram::parse_verifier(value, &reason);
    if (!v) {
        *why = "is not a SCRAM-SHA-256 verifier (" + reason +
               "); make one with mpasswdd --new-secret or --verifier";
        return false;
    }
    ctl.verifier = std::move(*v);
    return true;
}

// Never the verifier itself.
std::string show_secret_verifier(const Controller& ctl) {
    return ctl.verifier ? "(set, SCRAM-SHA-256, " + std::to_string(ctl.verifier->iterations) +
                              " iterations)"
                        : std::string("(none: AUTH SCRAM-SHA-256 refused)");
}

bool set_client_subject(Controller& ctl, std::string_view value, const std::string&,
                        std::string* why) {
    if (value.empty() || value.size() > 1024 || !mctp::is_printable_ascii(value)) {
        *why = "must be a subject such as CN=control1,O=Example";
        return false;
    }
    ctl.tls_client_subject = value;
    return true;
}

bool set_client_fingerprint(Controller& ctl, std::string_view value, const std::string&,
                            std::string* why) {
    const auto hex = mctp::normalize_sha256(value);
    if (!hex) {
        *why = "must be a SHA-256 fingerprint: 64 hex digits, colons allowed";
        return false;
    }
    ctl.tls_client_fingerprint = *hex;
    return true;
}

bool set_operations(Controller& ctl, std::string_view value, const std::string&,
                    std::string* why) {
    unsigned ops = 0;
    for (const auto& item : cfg::split_list(value)) {
        const unsigned bit = mctp::operation_bit(item);
        if (bit == 0) {
            *why = "'" + mctp::printable(item, 32) +
                   "' is not an operation; they are VRFY TEST CHPW EXPR LOCK UNLK CHCK";
            return false;
        }
        ops |= bit;
    }
    if (ops == 0) {
        *why = "must list at least one of VRFY TEST CHPW EXPR LOCK UNLK CHCK";
        return false;
    }
    ctl.operations = ops;
    return true;
}

// Every key of a [controller NAME] section, in the order of
// mpasswdd.conf(5).
const cfg::KeyTable<Controller>& controller_table() {
    using C = Controller;
    static const cfg::KeyTable<Controller> table{
        {"from", set_from,
         [](const C& c) {
             std::string s;
             for (const auto& x : c.from_text) {
                 s += (s.empty() ? "" : ", ") + x;
             }
             return s.empty() ? std::string("(none)") : s;
         },
         "the addresses, CIDR blocks or 'local' it may connect from"},
        {"secret_verifier", set_secret_verifier, show_secret_verifier,
         "the SCRAM-SHA-256 verifier of its secret (mpasswdd --new-secret or --verifier)"},
        {"secret_hash", set_secret_hash, show_secret_hash,
         "legacy: the yescrypt hash of its secret, for the old AUTH <secret> "
         "(mpasswdd --hash-secret)"},
        names<C>("users", &C::users, true, "when set, the only users it may manage",
                 "(any allowed by policy)"),
        names<C>("groups", &C::groups, false, "when set, only members of these groups",
                 "(any allowed by policy)"),
        {"tls_client_subject", set_client_subject,
         [](const C& c) { return text_or_none(c.tls_client_subject); },
         "the subject of the client certificate it must present"},
        {"tls_client_fingerprint", set_client_fingerprint,
         [](const C& c) { return text_or_none(c.tls_client_fingerprint); },
         "the SHA-256 fingerprint of the client certificate it must present"},
        {"operations", set_operations,
         [](const C& c) { return mctp::operation_names(c.operations); },
         "the verbs it may use (VRFY TEST CHPW EXPR LOCK UNLK CHCK)"},
    };
    return table;
}

// Where the keys of a section go: the global keys, or a controller's
// (made at its first key).
std::optional<cfg::SectionSink> route(Config& config, std::string_view section,
                                      std::string* why) {
    if (section.empty() || section == "mpasswdd") {
        return global_table().sink(config, "mpasswdd", config.path);
    }
    if (section.starts_with(controller_prefix)) {
        const std::string cname(section.substr(controller_prefix.size()));
        auto& list = config.controllers;
        auto it = std::find_if(list.begin(), list.end(),
                               [&](const Controller& c) { return c.name == cname; });
        if (it == list.end()) {
            if (!mctp::is_helo_name(cname)) {
                *why = "section [" + mctp::printable(section, 128) +
                       "]: a controller name is letters, digits, '.', '_', '-'";
                return std::nullopt;
            }
            if (list.size() >= limits::controllers_max) {
                *why = "more than " + std::to_string(limits::controllers_max) + " controllers";
                return std::nullopt;
            }
            list.push_back(Controller{});
            list.back().name = cname;
            it = list.end() - 1;
        }
        return controller_table().sink(*it, std::string(section), config.path);
    }
    *why = "in unknown section [" + mctp::printable(section, 128) +
           "]; sections are [mpasswdd] and [controller NAME]";
    return std::nullopt;
}

// The [controller NAME] sections of a drop-in (mpasswdd.conf.d/*.conf):
// no other section and no key outside one; a controller already defined
// in another file is an error naming both places. places maps each
// controller to its "FILE:LINE".
void read_dropin(Config& config, const std::string& file,
                 std::map<std::string, std::string>* places) {
    const std::string text = cfg::read_checked(file, "secret_", true);
    const std::string only = "only [controller NAME] sections go in a drop-in file";
    int n = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        end = end == std::string::npos ? text.size() : end;
        ++n;
        std::string_view line = std::string_view(text).substr(start, end - start);
        start = end + 1;
        const auto b = line.find_first_not_of(" \t\r");
        if (b == std::string_view::npos || line[b] != '[') {
            continue;
        }
        const auto e = line.find(']', b);
        const std::string section(line.substr(b + 1, e == std::string_view::npos ? 0 : e - b - 1));
        const std::string here = file + ":" + std::to_string(n);
        if (!section.starts_with(controller_prefix)) {
            throw ConfigError(here + ": [" + mctp::printable(section, 128) + "]: " + only);
        }
        const std::string name = section.substr(controller_prefix.size());
        const auto [it, fresh] = places->emplace(name, here);
        if (!fresh && !it->second.starts_with(file + ":")) {
            throw ConfigError(here + ": [" + mctp::printable(section, 128) +
                              "] is already defined in " + it->second);
        }
    }
    cfg::parse_sections(text, file,
                        {"'key = value' or '[controller NAME]'", "given twice in one section"},
                        [&](std::string_view section, std::string* why)
                            -> std::optional<cfg::SectionSink> {
                            if (!section.starts_with(controller_prefix)) {
                                *why = only;
                                return std::nullopt;
                            }
                            return route(config, section, why);
                        });
}

}  // namespace

Config load_config(const std::string& path) {
    // secret_hash and secret_verifier: a verifier lets whoever reads it
    // pose as this host to the controller.
    const std::string text = cfg::read_checked(path, "secret_", true);
    Config config;
    config.path = path;
    cfg::parse_sections(text, path, {"'key = value' or '[section]'", "given twice in one section"},
                        [&](std::string_view section, std::string* why) {
                            return route(config, section, why);
                        });
    // Where each controller is defined, for the checks below.
    std::map<std::string, std::string> places;
    for (const auto& ctl : config.controllers) {
        places.emplace(ctl.name, path + ":" +
                                     std::to_string(cfg::section_line(
                                         text, std::string(controller_prefix) + ctl.name)));
    }
    for (const auto& file : cfg::dropin_files(cfg::dropin_folder(path))) {
        read_dropin(config, file, &places);
    }
    for (const auto& ctl : config.controllers) {
        const std::string section = std::string(controller_prefix) + ctl.name;
        const std::string where = places[ctl.name] + ": ";
        if (ctl.from.empty()) {
            throw ConfigError(where + "[" + section + "] has no 'from' key");
        }
        if (ctl.secret_hash.empty() && !ctl.verifier) {
            throw ConfigError(where + "[" + section +
                              "] has neither 'secret_verifier' nor 'secret_hash'");
        }
        if ((!ctl.tls_client_subject.empty() || !ctl.tls_client_fingerprint.empty()) &&
            config.tls_client_ca.empty()) {
            throw ConfigError(where + "[" + section + "] names a client certificate, but "
                              "tls_client_ca is not set, so none is asked for");
        }
    }
    if (config.tls && (config.tls_certificate.empty() || config.tls_key.empty())) {
        throw ConfigError(path + ": tls = yes needs tls_certificate and tls_key");
    }
    if (!config.tls && !config.tls_client_ca.empty()) {
        throw ConfigError(path + ": tls_client_ca is set but tls is not");
    }
    if (config.session_timeout < config.idle_timeout) {
        config.idle_timeout = config.session_timeout;
    }
    return config;
}

void check_hashes(const Config& config) {
    for (const auto& ctl : config.controllers) {
        if (!ctl.secret_hash.empty() &&
            check_secret(mctp::Secret(""), ctl.secret_hash) == HashCheck::unusable) {
            throw ConfigError(config.path + ": [controller " + ctl.name +
                              "] secret_hash: libxcrypt cannot use this hash; make a new one "
                              "with mpasswdd --hash-secret");
        }
    }
}

std::string describe(const Config& c) {
    std::string out = "# effective settings of " + c.path + "\n" + global_table().describe(c);
    for (const auto& ctl : c.controllers) {
        out += "\n[controller " + ctl.name + "]\n" + controller_table().describe(ctl);
    }
    if (c.controllers.empty()) {
        out += "\n# no [controller NAME] section: every connection is refused with 521\n";
    }
    return out;
}

}  // namespace mpasswdd
