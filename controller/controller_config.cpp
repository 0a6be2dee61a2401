#include "controller_config.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "config_keys.hpp"
#include "host_name.hpp"
#include "text.hpp"

namespace mpasswd {
namespace {

namespace cfg = mctp::cfg;
using Cfg = ControllerConfig;

bool set_secret(Cfg& c, std::string_view value, const std::string&, std::string* why) {
    if (!is_sendable_secret(value)) {
        *why = "must be 1 to " + std::to_string(limits::secret_max) +
               " printable ASCII characters without spaces";
        return false;
    }
    c.secret = mctp::Secret(value);
    return true;
}

// Never the secret itself.
std::string show_secret(const Cfg& c) {
    if (!c.secret_file.empty()) {
        return "(read from secret_file)";
    }
    return c.secret.empty() ? "(not set)" : "(set)";
}

bool set_transport(Cfg& c, std::string_view value, const std::string&, std::string* why) {
    for (const Via via : {Via::tcp, Via::tls, Via::ssh}) {
        if (value == via_name(via)) {
            c.transport = via;
            return true;
        }
    }
    *why = "must be tcp, tls or ssh";
    return false;
}

bool set_journal_directory(Cfg& c, std::string_view value, const std::string&,
                           std::string* why) {
    if (value == "none") {
        c.journal.directory.clear();
        return true;
    }
    if (!value.starts_with('/') || !mctp::is_printable_ascii(value) || value.size() > 1024) {
        *why = "must be an absolute path, or none";
        return false;
    }
    c.journal.directory = value;
    return true;
}

// Every key of mpasswd.conf, in the order of mpasswd.conf(5).
const cfg::KeyTable<Cfg>& key_table() {
    using mctp::limits::helo_name_max;
    static const cfg::KeyTable<Cfg> table{
        cfg::word<Cfg>("name", &Cfg::name, mctp::is_helo_name,
                       "a host name (letters, digits, '.', '_', ':', '-'), at most " +
                           std::to_string(helo_name_max) + " characters",
                       "the name given with HELO", "(this host's name)"),
        {"secret", set_secret, show_secret, "the controller's shared secret"},
        cfg::file<Cfg>("secret_file", &Cfg::secret_file,
                       "a file whose first line is the secret (mode 0600)"),
        cfg::file<Cfg>("hosts", &Cfg::hosts_file, "the hosts file: one target per line"),
        cfg::file<Cfg>("inventory", &Cfg::inventory,
                       "an Ansible INI inventory to read instead of the hosts file"),
        cfg::number<Cfg>("port", &Cfg::port, std::uint16_t{1}, std::uint16_t{65535},
                         "the targets' TCP port where a line names none", "a port"),
        {"transport", set_transport,
         [](const Cfg& c) { return std::string(via_name(c.transport)); },
         "how targets are reached where a line says nothing: tcp, tls or ssh"},
        cfg::flag<Cfg>("insecure_plaintext", &Cfg::insecure_plaintext,
                       "yes: plain TCP to addresses that are not loopback"),
        cfg::seconds<Cfg>("connect_timeout", &Cfg::connect_timeout, limits::timeout_min,
                          limits::timeout_max, "seconds allowed to connect"),
        cfg::seconds<Cfg>("reply_timeout", &Cfg::reply_timeout, limits::timeout_min,
                          limits::timeout_max, "seconds allowed for each reply"),
        cfg::seconds<Cfg>("target_timeout", &Cfg::target_timeout, limits::timeout_min,
                          limits::timeout_max, "seconds allowed for one whole target"),
        {"parallel",
         [](Cfg& c, std::string_view v, const std::string&, std::string* why) {
             if (!parse_parallel(v, &c.parallel)) {
                 *why = parallel_range_text();
                 return false;
             }
             return true;
         },
         [](const Cfg& c) { return parallel_text(c.parallel); },
         "targets talked to at once: auto (as many as the descriptor limit allows, "
         "up to 1024) or a number"},
        cfg::file<Cfg>("tls_ca", &Cfg::tls_ca, "CA certificates for the targets (PEM)",
                       cfg::PathRule::relative_to_config, "(the system's CA store)"),
        cfg::file<Cfg>("tls_certificate", &Cfg::tls_certificate,
                       "a client certificate chain (PEM)"),
        cfg::file<Cfg>("tls_key", &Cfg::tls_key, "the client certificate's key (PEM)"),
        cfg::file<Cfg>("ssh_command", &Cfg::ssh_command, "the ssh client"),
        cfg::word<Cfg>("ssh_user", &Cfg::ssh_user, mctp::is_user_name, "a user name",
                       "the user ssh logs in as"),
        cfg::file<Cfg>("ssh_identity", &Cfg::ssh_identity, "ssh's private key file",
                       cfg::PathRule::relative_to_config, "(ssh's default)"),
        cfg::file<Cfg>("ssh_known_hosts", &Cfg::ssh_known_hosts, "ssh's known-hosts file",
                       cfg::PathRule::relative_to_config, "(ssh's default)"),
        cfg::file<Cfg>("ssh_config", &Cfg::ssh_config, "ssh's configuration file (ssh -F)",
                       cfg::PathRule::relative_to_config, "(none: /dev/null)"),
        {"journal_directory", set_journal_directory,
         [](const Cfg& c) {
             return c.journal.directory.empty() ? std::string("none") : c.journal.directory;
         },
         "the folder of the run journal (root's only), or none"},
        cfg::number<Cfg>("journal_keep_runs", [](auto& c) -> auto& { return c.journal.keep_runs; },
                         1U, journal::keep_runs_max, "runs kept in the journal"),
        cfg::number<Cfg>("journal_keep_days", [](auto& c) -> auto& { return c.journal.keep_days; },
                         1U, journal::keep_days_max, "days a run is kept in the journal"),
    };
    return table;
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

bool parse_parallel(std::string_view value, unsigned* out) {
    if (value == "auto") {
        *out = limits::parallel_auto;
        return true;
    }
    return cfg::parse_uint(value, 1U, limits::parallel_max, out);
}

std::string parallel_range_text() {
    return "must be auto or a number " + cfg::range_text(1, limits::parallel_max);
}

std::string parallel_text(unsigned parallel) {
    return parallel == limits::parallel_auto ? "auto" : std::to_string(parallel);
}

bool is_sendable_secret(std::string_view s) noexcept {
    return !s.empty() && s.size() <= limits::secret_max && mctp::is_argument(s);
}

std::string default_helo_name() {
    return mctp::system_host_name("mpasswd");
}

EngineSettings ControllerConfig::engine_settings(
    std::optional<std::chrono::milliseconds> timeout) const {
    EngineSettings s;
    s.helo_name = name.empty() ? default_helo_name() : name;
    s.secret = &secret;
    s.connect_timeout = timeout.value_or(connect_timeout);
    s.reply_timeout = timeout.value_or(reply_timeout);
    // A --timeout longer than target_timeout must not cut connect short.
    s.target_timeout = std::max(target_timeout, s.connect_timeout);
    s.parallel = parallel;
    return s;
}

std::string describe(const ControllerConfig& config) {
    std::string out = "# effective settings of " + config.path + "\n";
    for (const auto& file : config.dropins) {
        out += "# and of " + file + "\n";
    }
    return out + key_table().describe(config);
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

namespace {

// Where each key was set ("FILE:LINE"), across the main file and its
// drop-ins.
using KeyPlaces = std::map<std::string, std::string, std::less<>>;

// Parses one file's text into c (the main file, or a drop-in at path):
// relative file names are taken from the main file's folder. A key
// already set by another file is an error naming both places.
void parse_into(ControllerConfig& c, const std::string& text, const std::string& path,
                KeyPlaces* places) {
    cfg::parse_sections(
        text, path, {"'key = value' or '[mpasswd]'", "given twice"},
        [&](std::string_view section, std::string* why) -> std::optional<cfg::SectionSink> {
            if (!section.empty() && section != "mpasswd") {
                *why = "in unknown section [" + mctp::printable(section, 128) +
                       "]; the only section is [mpasswd]";
                return std::nullopt;
            }
            cfg::SectionSink sink = key_table().sink(c, "mpasswd", c.path);
            return cfg::SectionSink{
                sink.id, [&, set = std::move(sink.set)](std::string_view key,
                                                        std::string_view value,
                                                        std::string* why2) {
                    const std::string here =
                        path + ":" + std::to_string(cfg::key_line(text, key));
                    const auto it = places->find(key);
                    if (it != places->end() && !it->second.starts_with(path + ":")) {
                        *why2 = "already set in " + it->second;
                        return false;
                    }
                    if (!set(key, value, why2)) {
                        return false;
                    }
                    places->emplace(std::string(key), here);
                    return true;
                }};
        });
}

// The checks over the whole configuration, once every file is read.
void finish(ControllerConfig& c) {
    const std::string& path = c.path;
    const bool has_secret = !c.secret.empty();
    if (has_secret && !c.secret_file.empty()) {
        throw ConfigError(path + ": give either secret or secret_file, not both");
    }
    if (!has_secret && c.secret_file.empty()) {
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
    if (!c.inventory.empty() && c.hosts_file != default_hosts_path) {
        throw ConfigError(path + ": give either hosts or inventory, not both");
    }
    if (c.target_timeout < c.connect_timeout) {
        throw ConfigError(path + ": target_timeout (" + cfg::seconds_text(c.target_timeout) +
                          " s) is shorter than connect_timeout");
    }
}

// A file's text, wiped when it goes: it may hold the secret.
struct WipedText {
    std::string text;
    ~WipedText() { mctp::wipe(text.data(), text.size()); }
};

}  // namespace

ControllerConfig parse_controller_config(const std::string& text, const std::string& path) {
    ControllerConfig c;
    c.path = path;
    KeyPlaces places;
    parse_into(c, text, path, &places);
    finish(c);
    return c;
}

ControllerConfig load_controller_config(const std::string& path) {
    ControllerConfig c;
    c.path = path;
    KeyPlaces places;
    {
        const WipedText main{cfg::read_checked(path, "secret", false)};
        parse_into(c, main.text, path, &places);
    }
    for (const auto& file : cfg::dropin_files(cfg::dropin_folder(path))) {
        const WipedText dropin{cfg::read_checked(file, "secret", false)};
        parse_into(c, dropin.text, file, &places);
        c.dropins.push_back(file);
    }
    finish(c);
    return c;
}

}  // namespace mpasswd
