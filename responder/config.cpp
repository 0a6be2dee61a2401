#include "config.hpp"

#include <crypt.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "config_file.hpp"
#include "fingerprint.hpp"
#include "limits.hpp"
#include "secret.hpp"
#include "secret_hash.hpp"
#include "text.hpp"

namespace mpasswdd {
namespace {

using std::chrono::milliseconds;
namespace limits = mctp::limits;
namespace cfg = mctp::cfg;
using cfg::parse_bool;
using cfg::parse_seconds;
using cfg::parse_uint;
using cfg::seconds_text;
using cfg::split_list;

constexpr std::string_view controller_prefix = "controller ";

struct Parser {
    Config config;
    std::string error;  // the first error; inih tells its line
    std::set<std::string> seen;
    std::vector<std::string> controller_sections;

    bool fail(std::string_view key, std::string message) {
        if (error.empty()) {
            error = std::string(key) + ": " + std::move(message);
        }
        return false;
    }
};

bool set_list(Parser& p, std::string_view key, std::string_view value, bool user_names,
              std::vector<std::string>* out) {
    auto items = split_list(value);
    if (items.size() > limits::list_entries_max) {
        return p.fail(key, "more than " + std::to_string(limits::list_entries_max) + " entries");
    }
    for (const auto& item : items) {
        // Group names follow the same portable rules as user names.
        if (!mctp::is_user_name(item)) {
            return p.fail(key, "'" + item + "' is not a valid " +
                                   (user_names ? "user" : "group") + " name");
        }
    }
    *out = std::move(items);
    return true;
}

bool global_key(Parser& p, std::string_view key, std::string_view value) {
    Config& c = p.config;
    const auto range = [&](const std::string& what) { return p.fail(key, "must be " + what); };
    if (key == "enabled") {
        return parse_bool(value, &c.enabled) || range("yes or no");
    }
    if (key == "host_name") {
        if (!mctp::is_helo_name(value) || value.size() > limits::host_name_max) {
            return range("a host name of at most " + std::to_string(limits::host_name_max) +
                         " characters");
        }
        c.host_name = value;
        return true;
    }
    if (key == "pam_service") {
        if (!mctp::is_user_name(value)) {
            return range("a PAM service name (letters, digits, '.', '_', '-')");
        }
        c.pam_service = value;
        return true;
    }
    if (key == "line_max") {
        return parse_uint(value, limits::line_max_min, limits::line_max_max, &c.line_max) ||
               range("a number of octets from " + std::to_string(limits::line_max_min) +
                     " to " + std::to_string(limits::line_max_max));
    }
    if (key == "idle_timeout") {
        return parse_seconds(value, milliseconds(100), limits::timeout_max, &c.idle_timeout) ||
               range("seconds from 0.1 to 86400");
    }
    if (key == "session_timeout") {
        return parse_seconds(value, milliseconds(100), limits::timeout_max, &c.session_timeout) ||
               range("seconds from 0.1 to 86400");
    }
    if (key == "auth_failure_delay") {
        return parse_seconds(value, milliseconds(0), limits::auth_failure_delay_max,
                             &c.auth_failure_delay) ||
               range("seconds from 0 to 60");
    }
    if (key == "max_auth_failures") {
        return parse_uint(value, 1U, limits::max_auth_failures_max, &c.max_auth_failures) ||
               range("a number from 1 to " + std::to_string(limits::max_auth_failures_max));
    }
    if (key == "login_grace_time") {
        return parse_seconds(value, limits::login_grace_time_min, limits::login_grace_time_max,
                             &c.login_grace_time) ||
               range("seconds from 0.1 to 3600");
    }
    if (key == "max_auth_failures_per_source") {
        return parse_uint(value, 0U, limits::max_auth_failures_per_source_max,
                          &c.max_auth_failures_per_source) ||
               range("a number from 0 (not counted) to " +
                     std::to_string(limits::max_auth_failures_per_source_max));
    }
    if (key == "auth_failure_window") {
        return parse_seconds(value, limits::auth_failure_window_min,
                             limits::auth_failure_window_max, &c.auth_failure_window) ||
               range("seconds from 1 to 604800");
    }
    if (key == "state_directory" || key == "privsep_directory") {
        if (!value.starts_with('/') || value.size() > 1024 || value.find("/../") != value.npos ||
            value.ends_with("/..") || !mctp::is_printable_ascii(value) ||
            value.find(' ') != value.npos) {
            return range("an absolute path without spaces or '..'");
        }
        std::string& dir = key == "state_directory" ? c.state_directory : c.privsep_directory;
        dir = value;
        while (dir.size() > 1 && dir.ends_with('/')) {
            dir.pop_back();
        }
        return true;
    }
    if (key == "privsep_user") {
        if (!mctp::is_user_name(value)) {
            return range("a user name");
        }
        c.privsep_user = value;
        return true;
    }
    if (key == "min_uid") {
        return parse_uint(value, uid_t{0}, uid_t{4294967294U}, &c.policy.min_uid) ||
               range("a user id");
    }
    if (key == "max_uid") {
        return parse_uint(value, uid_t{0}, uid_t{4294967294U}, &c.policy.max_uid) ||
               range("a user id");
    }
    if (key == "allow_users") {
        return set_list(p, key, value, true, &c.policy.allow_users);
    }
    if (key == "deny_users") {
        return set_list(p, key, value, true, &c.policy.deny_users);
    }
    if (key == "allow_groups") {
        return set_list(p, key, value, false, &c.policy.allow_groups);
    }
    if (key == "deny_groups") {
        return set_list(p, key, value, false, &c.policy.deny_groups);
    }
    if (key == "tls") {
        return parse_bool(value, &c.tls) || range("yes or no");
    }
    if (key == "tls_certificate" || key == "tls_key" || key == "tls_client_ca") {
        if (!value.starts_with('/') || value.size() > 1024 || !mctp::is_printable_ascii(value)) {
            return range("an absolute path of at most 1024 characters");
        }
        (key == "tls_certificate" ? c.tls_certificate
                                  : key == "tls_key" ? c.tls_key : c.tls_client_ca) = value;
        return true;
    }
    return p.fail(key, "unknown key");
}

bool controller_key(Parser& p, Controller& ctl, std::string_view key, std::string_view value) {
    if (key == "from") {
        ctl.from.clear();
        ctl.from_text = split_list(value);
        if (ctl.from_text.empty() || ctl.from_text.size() > limits::list_entries_max) {
            return p.fail(key, "must list 1 to " + std::to_string(limits::list_entries_max) +
                                   " addresses, CIDR blocks or 'local'");
        }
        for (const auto& item : ctl.from_text) {
            std::string why;
            auto rule = parse_address_rule(item, &why);
            if (!rule) {
                return p.fail(key, why);
            }
            ctl.from.push_back(*rule);
        }
        return true;
    }
    if (key == "secret_hash") {
        const std::string hash(value);
        if (!hash.starts_with("$y$")) {
            return p.fail(key, "must be a yescrypt hash ($y$...) made by mpasswdd --hash-secret");
        }
        // The shape only: the file is read at every connection, and
        // hashing each entry here would cost every peer, even a refused
        // one, a yescrypt run per controller. --check-config hashes.
        const int check = crypt_checksalt(hash.c_str());
        if ((check != CRYPT_SALT_OK && check != CRYPT_SALT_TOO_CHEAP) ||
            !has_yescrypt_shape(hash)) {
            return p.fail(key, "is not a valid yescrypt hash");
        }
        ctl.secret_hash = hash;
        return true;
    }
    if (key == "secret_verifier") {
        std::string why;
        auto v = mctp::scram::parse_verifier(value, &why);
        if (!v) {
            return p.fail(key, "is not a SCRAM-SHA-256 verifier (" + why +
                                   "); make one with mpasswdd --new-secret or --verifier");
        }
        ctl.verifier = std::move(*v);
        return true;
    }
    if (key == "users") {
        return set_list(p, key, value, true, &ctl.users);
    }
    if (key == "groups") {
        return set_list(p, key, value, false, &ctl.groups);
    }
    if (key == "tls_client_subject") {
        if (value.empty() || value.size() > 1024 || !mctp::is_printable_ascii(value)) {
            return p.fail(key, "must be a subject such as CN=control1,O=Example");
        }
        ctl.tls_client_subject = value;
        return true;
    }
    if (key == "tls_client_fingerprint") {
        const auto hex = mctp::normalize_sha256(value);
        if (!hex) {
            return p.fail(key, "must be a SHA-256 fingerprint: 64 hex digits, colons allowed");
        }
        ctl.tls_client_fingerprint = *hex;
        return true;
    }
    return p.fail(key, "unknown key");
}

int on_entry(void* user, const char* section, const char* name, const char* value) {
    auto& p = *static_cast<Parser*>(user);
    const std::string_view sect(section);
    const std::string_view key(name);
    const std::string_view val(value);

    if (!p.seen.insert(std::string(sect) + '\n' + std::string(key)).second) {
        return p.fail(key, "given twice in one section") ? 1 : 0;
    }
    if (sect.empty() || sect == "mpasswdd") {
        return global_key(p, key, val) ? 1 : 0;
    }
    if (sect.starts_with(controller_prefix)) {
        const std::string cname(sect.substr(controller_prefix.size()));
        auto& list = p.config.controllers;
        auto it = std::find_if(list.begin(), list.end(),
                               [&](const Controller& c) { return c.name == cname; });
        if (it == list.end()) {
            if (!mctp::is_helo_name(cname)) {
                return p.fail(key, "section [" + std::string(sect) +
                                       "]: a controller name is letters, digits, '.', '_', '-'")
                           ? 1 : 0;
            }
            if (list.size() >= limits::controllers_max) {
                return p.fail(key, "more than " + std::to_string(limits::controllers_max) +
                                       " controllers") ? 1 : 0;
            }
            list.push_back(Controller{});
            list.back().name = cname;
            it = list.end() - 1;
        }
        return controller_key(p, *it, key, val) ? 1 : 0;
    }
    return p.fail(key, "in unknown section [" + std::string(sect) +
                           "]; sections are [mpasswdd] and [controller NAME]") ? 1 : 0;
}

}  // namespace

Config load_config(const std::string& path) {
    // secret_hash and secret_verifier: a verifier lets whoever reads it
    // pose as this host to the controller.
    const std::string text = cfg::read_checked(path, "secret_", true);
    Parser p;
    p.config.path = path;
    cfg::parse_ini(text, path, on_entry, &p, p.error, "'key = value' or '[section]'");
    for (const auto& ctl : p.config.controllers) {
        const std::string section = std::string(controller_prefix) + ctl.name;
        const std::string where = path + ":" + std::to_string(cfg::section_line(text, section)) + ": ";
        if (ctl.from.empty()) {
            throw ConfigError(where + "[" + section + "] has no 'from' key");
        }
        if (ctl.secret_hash.empty() && !ctl.verifier) {
            throw ConfigError(where + "[" + section +
                              "] has neither 'secret_verifier' nor 'secret_hash'");
        }
        if ((!ctl.tls_client_subject.empty() || !ctl.tls_client_fingerprint.empty()) &&
            p.config.tls_client_ca.empty()) {
            throw ConfigError(where + "[" + section + "] names a client certificate, but "
                              "tls_client_ca is not set, so none is asked for");
        }
    }
    if (p.config.tls && (p.config.tls_certificate.empty() || p.config.tls_key.empty())) {
        throw ConfigError(path + ": tls = yes needs tls_certificate and tls_key");
    }
    if (!p.config.tls && !p.config.tls_client_ca.empty()) {
        throw ConfigError(path + ": tls_client_ca is set but tls is not");
    }
    if (p.config.session_timeout < p.config.idle_timeout) {
        p.config.idle_timeout = p.config.session_timeout;
    }
    return p.config;
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
    std::ostringstream o;
    const auto list = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) {
            s += (s.empty() ? "" : ", ") + x;
        }
        return s.empty() ? std::string("(none)") : s;
    };
    o << "# effective settings of " << c.path << "\n"
      << "enabled = " << (c.enabled ? "yes" : "no") << "\n"
      << "host_name = " << (c.host_name.empty() ? "(system host name)" : c.host_name) << "\n"
      << "pam_service = " << c.pam_service << "\n"
      << "line_max = " << c.line_max << "\n"
      << "idle_timeout = " << seconds_text(c.idle_timeout) << "\n"
      << "session_timeout = " << seconds_text(c.session_timeout) << "\n"
      << "auth_failure_delay = " << seconds_text(c.auth_failure_delay) << "\n"
      << "max_auth_failures = " << c.max_auth_failures << "\n"
      << "login_grace_time = " << seconds_text(c.login_grace_time) << "\n"
      << "max_auth_failures_per_source = " << c.max_auth_failures_per_source
      << (c.max_auth_failures_per_source == 0 ? " (not counted)" : "") << "\n"
      << "auth_failure_window = " << seconds_text(c.auth_failure_window) << "\n"
      << "state_directory = " << c.state_directory << "\n"
      << "privsep_user = " << c.privsep_user << "\n"
      << "privsep_directory = " << c.privsep_directory << "\n"
      << "min_uid = " << c.policy.min_uid << "\n"
      << "max_uid = " << c.policy.max_uid << "\n"
      << "allow_users = " << list(c.policy.allow_users) << "\n"
      << "deny_users = " << list(c.policy.deny_users) << "\n"
      << "allow_groups = " << list(c.policy.allow_groups) << "\n"
      << "deny_groups = " << list(c.policy.deny_groups) << "\n"
      << "tls = " << (c.tls ? "yes" : "no") << "\n";
    if (c.tls) {
        o << "tls_certificate = " << c.tls_certificate << "\n"
          << "tls_key = " << c.tls_key << "\n"
          << "tls_client_ca = " << (c.tls_client_ca.empty() ? "(none)" : c.tls_client_ca)
          << "\n";
    }
    for (const auto& ctl : c.controllers) {
        o << "\n[controller " << ctl.name << "]\n"
          << "from = " << list(ctl.from_text) << "\n"
          << "secret_verifier = "
          << (ctl.verifier ? "(set, SCRAM-SHA-256, " + std::to_string(ctl.verifier->iterations) +
                                 " iterations)"
                           : std::string("(none: AUTH SCRAM-SHA-256 refused)"))
          << "\n"
          << "secret_hash = "
          << (ctl.secret_hash.empty() ? "(none: the old AUTH <secret> refused)"
                                      : "(set, yescrypt; the old AUTH <secret> accepted)")
          << "\n"
          << "users = " << (ctl.users.empty() ? "(any allowed by policy)" : list(ctl.users))
          << "\n"
          << "groups = " << (ctl.groups.empty() ? "(any allowed by policy)" : list(ctl.groups))
          << "\n";
        if (!ctl.tls_client_subject.empty()) {
            o << "tls_client_subject = " << ctl.tls_client_subject << "\n";
        }
        if (!ctl.tls_client_fingerprint.empty()) {
            o << "tls_client_fingerprint = " << ctl.tls_client_fingerprint << "\n";
        }
    }
    if (c.controllers.empty()) {
        o << "\n# no [controller NAME] section: every connection is refused with 521\n";
    }
    return o.str();
}

}  // namespace mpasswdd
