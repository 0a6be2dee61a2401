#include "controller_config.hpp"

#include <unistd.h>

#include <set>
#include <utility>

#include "text.hpp"

namespace mpasswd {
namespace {

namespace cfg = mctp::cfg;
using std::chrono::milliseconds;

struct Parser {
    ControllerConfig config;
    std::string error;
    std::set<std::string> seen;
    bool has_secret = false;

    bool fail(std::string_view key, std::string message) {
        if (error.empty()) {
            // The key and section are the file's text: shown escaped.
            error = mctp::printable(key, 128) + ": " + std::move(message);
        }
        return false;
    }
};

std::string relative_to(const std::string& config_path, std::string_view value) {
    if (value.starts_with('/')) {
        return std::string(value);
    }
    const auto slash = config_path.rfind('/');
    return slash == std::string::npos ? std::string(value)
                                      : config_path.substr(0, slash + 1) + std::string(value);
}

bool set_timeout(Parser& p, std::string_view key, std::string_view value, milliseconds* out) {
    return cfg::parse_seconds(value, limits::timeout_min, limits::timeout_max, out) ||
           p.fail(key, "must be seconds from 0.1 to 3600");
}

bool on_key(Parser& p, std::string_view key, std::string_view value) {
    ControllerConfig& c = p.config;
    if (key == "name") {
        if (!mctp::is_helo_name(value)) {
            return p.fail(key, "must be a host name (letters, digits, '.', '_', ':', '-'), at "
                               "most 64 characters");
        }
        c.name = value;
        return true;
    }
    if (key == "secret") {
        if (!is_sendable_secret(value)) {
            return p.fail(key, "must be 1 to " + std::to_string(limits::secret_max) +
                                   " printable ASCII characters without spaces");
        }
        c.secret = mctp::Secret(value);
        p.has_secret = true;
        return true;
    }
    if (key == "secret_file") {
        if (value.empty()) {
            return p.fail(key, "must name a file");
        }
        c.secret_file = relative_to(c.path, value);
        return true;
    }
    if (key == "hosts") {
        if (value.empty()) {
            return p.fail(key, "must name a file");
        }
        c.hosts_file = relative_to(c.path, value);
        return true;
    }
    if (key == "port") {
        return cfg::parse_uint(value, std::uint16_t{1}, std::uint16_t{65535}, &c.port) ||
               p.fail(key, "must be a port from 1 to 65535");
    }
    if (key == "connect_timeout") {
        return set_timeout(p, key, value, &c.connect_timeout);
    }
    if (key == "reply_timeout") {
        return set_timeout(p, key, value, &c.reply_timeout);
    }
    if (key == "target_timeout") {
        return set_timeout(p, key, value, &c.target_timeout);
    }
    if (key == "parallel") {
        return cfg::parse_uint(value, 1U, limits::parallel_max, &c.parallel) ||
               p.fail(key, "must be a number from 1 to " + std::to_string(limits::parallel_max));
    }
    if (key == "transport") {
        if (value == "tcp" || value == "tls" || value == "ssh") {
            c.transport = value == "ssh" ? Via::ssh : value == "tls" ? Via::tls : Via::tcp;
            return true;
        }
        return p.fail(key, "must be tcp, tls or ssh");
    }
    if (key == "tls_ca" || key == "tls_certificate" || key == "tls_key") {
        if (value.empty()) {
            return p.fail(key, "must name a file");
        }
        (key == "tls_ca" ? c.tls_ca : key == "tls_certificate" ? c.tls_certificate : c.tls_key) =
            relative_to(c.path, value);
        return true;
    }
    if (key == "insecure_plaintext") {
        return cfg::parse_bool(value, &c.insecure_plaintext) || p.fail(key, "must be yes or no");
    }
    if (key == "ssh_command" || key == "ssh_identity" || key == "ssh_known_hosts" ||
        key == "ssh_config") {
        if (value.empty()) {
            return p.fail(key, "must name a file");
        }
        std::string& out = key == "ssh_command"      ? c.ssh_command
                           : key == "ssh_identity"    ? c.ssh_identity
                           : key == "ssh_known_hosts" ? c.ssh_known_hosts
                                                      : c.ssh_config;
        out = relative_to(c.path, value);
        return true;
    }
    if (key == "ssh_user") {
        if (!mctp::is_user_name(value)) {
            return p.fail(key, "must be a user name");
        }
        c.ssh_user = value;
        return true;
    }
    return p.fail(key, "unknown key");
}

int on_entry(void* user, const char* section, const char* name, const char* value) {
    auto& p = *static_cast<Parser*>(user);
    const std::string_view sect(section);
    const std::string_view key(name);
    if (!p.seen.insert(std::string(key)).second) {
        return p.fail(key, "given twice") ? 1 : 0;
    }
    if (!sect.empty() && sect != "mpasswd") {
        return p.fail(key, "in unknown section [" + mctp::printable(sect, 128) +
                               "]; the only section is [mpasswd]") ? 1 : 0;
    }
    return on_key(p, key, value) ? 1 : 0;
}

}  // namespace

TargetDefaults ControllerConfig::target_defaults() const {
    TargetDefaults d(port);
    d.via = transport;
    d.insecure_plaintext = insecure_plaintext;
    return d;
}

TlsSettings ControllerConfig::tls_settings() const {
    return TlsSettings{tls_ca, tls_certificate, tls_key};
}

SshSettings ControllerConfig::ssh_settings() const {
    // ssh takes whole seconds; round up so that it never gives up first.
    const auto ms = static_cast<unsigned>(connect_timeout.count());
    return SshSettings{ssh_command,        ssh_user,  ssh_identity, ssh_known_hosts,
                       (ms + 999) / 1000, ssh_config};
}

bool is_sendable_secret(std::string_view s) noexcept {
    return !s.empty() && s.size() <= limits::secret_max && mctp::is_argument(s);
}

std::string default_helo_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0 && mctp::is_helo_name(buf)) {
        return buf;
    }
    return "mpasswd";
}

mctp::Secret read_secret_file(const std::string& path) {
    std::string text = cfg::read_private(path, limits::secret_file_max);
    std::string_view line = std::string_view(text).substr(0, text.find('\n'));
    if (line.ends_with('\r')) {
        line.remove_suffix(1);
    }
    const bool ok = is_sendable_secret(line);
    mctp::Secret secret(ok ? line : std::string_view());
    mctp::wipe(text.data(), text.size());
    if (!ok) {
        throw ConfigError(path + ": the first line must be the secret: 1 to " +
                          std::to_string(limits::secret_max) +
                          " printable ASCII characters without spaces");
    }
    return secret;
}

ControllerConfig parse_controller_config(const std::string& text, const std::string& path) {
    Parser p;
    p.config.path = path;
    cfg::parse_ini(text, path, on_entry, &p, p.error, "'key = value' or '[mpasswd]'");
    ControllerConfig& c = p.config;
    if (p.has_secret && !c.secret_file.empty()) {
        throw ConfigError(path + ": give either secret or secret_file, not both");
    }
    if (!p.has_secret && c.secret_file.empty()) {
        throw ConfigError(path + ": no secret: set secret_file (or secret) to the secret "
                                 "the targets' [controller] sections hold the hash of");
    }
    if (!c.secret_file.empty()) {
        c.secret = read_secret_file(c.secret_file);
    }
    if (c.tls_certificate.empty() != c.tls_key.empty()) {
        throw ConfigError(path + ": tls_certificate and tls_key go together");
    }
    // ssh opens these itself, and would wait on a FIFO.
    for (const auto& [key, file] :
         {std::pair{"ssh_identity", &c.ssh_identity}, {"ssh_known_hosts", &c.ssh_known_hosts}}) {
        if (!file->empty()) {
            try {
                cfg::refuse_special(*file);
            } catch (const ConfigError& e) {
                throw ConfigError(path + ": " + key + " " + e.what());
            }
        }
    }
    if (c.target_timeout < c.connect_timeout) {
        throw ConfigError(path + ": target_timeout (" + cfg::seconds_text(c.target_timeout) +
                          " s) is shorter than connect_timeout");
    }
    return std::move(p.config);
}

ControllerConfig load_controller_config(const std::string& path) {
    std::string text = cfg::read_checked(path, "secret", false);
    struct Wipe {
        std::string& s;
        ~Wipe() { mctp::wipe(s.data(), s.size()); }
    } wipe_text{text};
    return parse_controller_config(text, path);
}

}  // namespace mpasswd
