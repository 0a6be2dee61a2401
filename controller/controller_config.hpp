// /etc/mpasswd/mpasswd.conf: the controller's settings, shared by the
// mpasswd command and pam_mctp.so.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config_file.hpp"
#include "controller_limits.hpp"
#include "fanout.hpp"
#include "journal.hpp"
#include "secret.hpp"
#include "target.hpp"
#include "transport.hpp"

namespace mpasswd {

inline constexpr const char* default_config_path = MPASSWD_SYSCONFDIR "/mpasswd/mpasswd.conf";
inline constexpr const char* default_hosts_path = MPASSWD_SYSCONFDIR "/mpasswd/hosts";

using ConfigError = mctp::cfg::ConfigError;

struct ControllerConfig {
    std::string path;
    std::vector<std::string> dropins;  // the drop-ins read, in order
    std::string name;         // HELO name; empty: this host's name
    mctp::Secret secret;      // from `secret` or `secret_file`
    std::string secret_file;  // as configured, for messages
    std::string hosts_file = default_hosts_path;
    // An Ansible INI inventory to read instead of the hosts file (empty:
    // none); never guessed from the file.
    std::string inventory;
    std::uint16_t port = limits::default_port;
    std::chrono::milliseconds connect_timeout = limits::connect_timeout_default;
    std::chrono::milliseconds reply_timeout = limits::reply_timeout_default;
    std::chrono::milliseconds target_timeout = limits::target_timeout_default;
    unsigned parallel = limits::parallel_default;  // limits::parallel_auto: auto
    // Defaults for targets (the hosts file may say otherwise per line).
    Via transport = Via::tcp;
    bool insecure_plaintext = false;
    // The ssh transport: the system ssh client, as this user, with this
    // identity and known-hosts file (empty: ssh's own defaults).
    std::string ssh_command = "/usr/bin/ssh";
    std::string ssh_user = "root";
    std::string ssh_identity;
    std::string ssh_known_hosts;
    std::string ssh_config;  // for ssh -F; empty: none at all (/dev/null)
    // The tls transport: CA file for server certificates (empty: the
    // system store), and an optional client certificate and key (PEM).
    std::string tls_ca;
    std::string tls_certificate;
    std::string tls_key;
    // The journal of runs (journal.hpp); an empty directory: none.
    journal::Settings journal;

    [[nodiscard]] TargetDefaults target_defaults() const;
    [[nodiscard]] SshSettings ssh_settings() const;
    [[nodiscard]] TlsSettings tls_settings() const;

    // The fan-out engine's settings: the HELO name (this host's when name
    // is empty), a pointer to the secret (this object must outlive them),
    // the timeouts (`timeout`, when given, for both connect and each
    // reply, as mpasswd --timeout), and `parallel` as configured (the
    // caller fits it to its descriptors with DescriptorRoom).
    [[nodiscard]] EngineSettings engine_settings(
        std::optional<std::chrono::milliseconds> timeout = std::nullopt) const;

    // make_transport() for these targets; a TLS or ssh file that cannot be
    // used throws ConfigError "PATH: why" (PATH: this configuration file).
    [[nodiscard]] std::unique_ptr<Transport> transport_for(
        const std::vector<Target>& targets) const;
};

// Reads and validates the file, its drop-ins (PATH.d/*.conf, see
// mctp::cfg::dropin_files; a key set in two files is an error naming
// both) and the secret file it names. Throws ConfigError naming
// FILE:LINE: key. A file holding `secret` must be readable by its owner
// only, and so must a secret file.
ControllerConfig load_controller_config(const std::string& path);

// The same from text, without drop-ins (path for messages and relative
// paths only).
ControllerConfig parse_controller_config(const std::string& text, const std::string& path);

// Reads the first line of a secret file (mode 0600 or stricter).
mctp::Secret read_secret_file(const std::string& path);

// True for a secret that can be sent with AUTH: printable ASCII without
// spaces, 1 to limits::secret_max octets.
bool is_sendable_secret(std::string_view s) noexcept;

// `parallel`'s value (the key, --parallel, pam_mctp's parallel=): "auto"
// (limits::parallel_auto) or 1 to limits::parallel_max. False for
// anything else, *out unchanged.
bool parse_parallel(std::string_view value, unsigned* out);
// "must be auto or a number from 1 to 4096".
std::string parallel_range_text();
// "auto" or the number.
std::string parallel_text(unsigned parallel);

// This host's name as a HELO name, "mpasswd" when it is not one.
std::string default_helo_name();

// The effective settings, one "key = value" line per key of the file, in
// the order of mpasswd.conf(5), the secret shown only as set: for
// mpasswd --check-config.
std::string describe(const ControllerConfig& config);

}  // namespace mpasswd
