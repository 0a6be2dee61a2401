#include "system_host.hpp"

#include <algorithm>

#include "log.hpp"
#include "pam_change.hpp"
#include "secret_hash.hpp"
#include "user_policy.hpp"

namespace mpasswdd {

SystemHost::SystemHost(const Config& config, Peer peer) : config_(config), peer_(std::move(peer)) {}

bool SystemHost::may_connect(const Controller& c) const {
    if (!c.tls_client_subject.empty() && c.tls_client_subject != peer_.tls_subject) {
        return false;
    }
    if (!c.tls_client_fingerprint.empty() && c.tls_client_fingerprint != peer_.tls_fingerprint) {
        return false;
    }
    return std::any_of(c.from.begin(), c.from.end(),
                       [&](const AddressRule& r) { return r.matches(peer_); });
}

mctp::PeerVerdict SystemHost::verdict() const {
    if (!config_.enabled) {
        return mctp::PeerVerdict::disabled;
    }
    const bool any = std::any_of(config_.controllers.begin(), config_.controllers.end(),
                                 [&](const Controller& c) { return may_connect(c); });
    return any ? mctp::PeerVerdict::accepted : mctp::PeerVerdict::rejected;
}

std::optional<std::string> SystemHost::authenticate(const mctp::Secret& secret) {
    // Every controller that may connect from here is tried, so the time
    // taken does not tell which entry, if any, came close.
    std::optional<std::string> found;
    for (const auto& c : config_.controllers) {
        if (!may_connect(c)) {
            continue;
        }
        switch (check_secret(secret, c.secret_hash)) {
        case HashCheck::match:
            if (!found) {
                found = c.name;
            }
            break;
        case HashCheck::mismatch: break;
        case HashCheck::unusable:
            log::write(mctp::LogLevel::warning,
                       "controller " + c.name +
                           ": secret_hash cannot be used by libxcrypt; run mpasswdd --check-config");
            break;
        }
    }
    return found;
}

mctp::UserVerdict SystemHost::check_user(std::string_view controller, std::string_view user) {
    const Controller* ctl = nullptr;
    for (const auto& c : config_.controllers) {
        if (c.name == controller) {
            ctl = &c;
        }
    }
    return mpasswdd::check_user(config_.policy, ctl, user);
}

mctp::ChangeResult SystemHost::change_password(std::string_view user, std::string_view helo_name,
                                               const mctp::Secret& password) {
    const ChangeRequest req{config_.pam_service, std::string(user),
                            peer_.local ? std::string("localhost") : peer_.text,
                            std::string(helo_name)};
    return mpasswdd::change_password(req, password);
}

void SystemHost::log(mctp::LogLevel level, std::string_view message) {
    log::write(level, message);
}

}  // namespace mpasswdd
