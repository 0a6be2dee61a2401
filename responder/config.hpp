// /etc/mpasswd/mpasswdd.conf: the responder's settings.
#pragma once

#include <chrono>
#include <optional>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <vector>

#include "config_file.hpp"
#include "limits.hpp"
#include "peer.hpp"
#include "scram.hpp"
#include "session.hpp"

namespace mpasswdd {

inline constexpr const char* default_config_path = MPASSWD_SYSCONFDIR "/mpasswd/mpasswdd.conf";

struct Controller {
    std::string name;
    std::vector<AddressRule> from;
    std::vector<std::string> from_text;  // as written, for --check-config
    // The old AUTH <secret> (legacy): a yescrypt hash; empty: not accepted.
    std::string secret_hash;
    // AUTH SCRAM-SHA-256: the verifier (secret_verifier); unset: not accepted.
    std::optional<mctp::scram::Verifier> verifier;
    // When set, the only users (or members of groups) it may manage.
    std::vector<std::string> users;
    std::vector<std::string> groups;
    // With tls_client_ca: the client certificate it must present, by
    // subject (RFC 2253 form, e.g. "CN=control1,O=Example") and/or by
    // SHA-256 fingerprint (64 lower-case hex digits, colons removed).
    std::string tls_client_subject;
    std::string tls_client_fingerprint;
    // The verbs it may use (mctp::Operation bits; `operations`).
    unsigned operations = mctp::default_operations;
};

struct UserPolicy {
    uid_t min_uid = 1000;
    uid_t max_uid = 60000;  // Debian's UID_MAX: nobody (65534) is above it
    std::vector<std::string> allow_users;
    std::vector<std::string> deny_users;
    std::vector<std::string> allow_groups;
    std::vector<std::string> deny_groups;
};

struct Config {
    std::string path;
    bool enabled = true;
    std::string host_name;  // empty: the system's host name
    std::string pam_service = "mpasswdd";
    // TEST (mpasswd-protocol(7)): pam_chauthtok under this service, whose
    // password stack checks and never stores.
    std::string check_service = "mpasswdd-check";
    std::size_t line_max = mctp::limits::line_max_default;
    std::chrono::milliseconds idle_timeout = mctp::limits::idle_timeout_default;
    std::chrono::milliseconds session_timeout = mctp::limits::session_timeout_default;
    std::chrono::milliseconds auth_failure_delay = mctp::limits::auth_failure_delay_default;
    unsigned max_auth_failures = mctp::limits::max_auth_failures_default;
    // From connect (TLS handshake included) until AUTH succeeds.
    std::chrono::milliseconds login_grace_time = mctp::limits::login_grace_time_default;
    // Failed AUTHs from one source across connections within the window;
    // then 421 at connect until the window has passed. 0: not counted.
    unsigned max_auth_failures_per_source = mctp::limits::max_auth_failures_per_source_default;
    std::chrono::milliseconds auth_failure_window = mctp::limits::auth_failure_window_default;
    // Where the count is kept (auth-failures in it).
    std::string state_directory = "/var/lib/mpasswdd";
    // The network child's user and its (empty, root-owned) root folder;
    // see mpasswdd(8), PRIVILEGE SEPARATION.
    std::string privsep_user = "_mpasswdd";
    std::string privsep_directory = "/usr/share/mpasswdd/empty";
    UserPolicy policy;
    std::vector<Controller> controllers;
    // Implicit TLS before the banner (as SMTPS): server certificate chain
    // and key (PEM); with tls_client_ca a client certificate is required.
    bool tls = false;
    std::string tls_certificate;
    std::string tls_key;
    std::string tls_client_ca;
};

// Thrown with a message naming file, line and key.
using ConfigError = mctp::cfg::ConfigError;

// Reads and validates a configuration file. Refuses a file that other
// users may write, or read when it holds secret hashes.
Config load_config(const std::string& path);

// Hashes once with every controller's secret_hash, which load_config does
// not do (it runs at every connection): throws for one libxcrypt cannot
// use. For --check-config.
void check_hashes(const Config& config);

// The effective settings, as --check-config prints them: no hashes, no
// verifiers.
std::string describe(const Config& config);

}  // namespace mpasswdd
