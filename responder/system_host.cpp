#include "system_host.hpp"

#include <algorithm>

#include "config_file.hpp"
#include "log.hpp"
#include "pam_change.hpp"
#include "secret_hash.hpp"
#include "user_policy.hpp"

namespace mpasswdd {

SystemHost::SystemHost(const Config& config, Peer peer, AuthTally* tally)
    : config_(config), peer_(std::move(peer)), tally_(tally), source_(tally_source(peer_)) {}

void SystemHost::set_client_certificate(std::string subject, std::string fingerprint) {
    peer_.tls_subject = std::move(subject);
    peer_.tls_fingerprint = std::move(fingerprint);
}

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

mctp::AuthResult SystemHost::authenticate(const mctp::Secret& secret) {
    // Counted before the check, so that parallel connections from one
    // source cannot have more secrets checked than the limit between them.
    std::optional<unsigned> charged;
    if (tally_ != nullptr) {
        try {
            charged = tally_->charge(source_, wall_ms());
            if (!charged) {
                return {mctp::AuthResult::Kind::locked, ""};
            }
        } catch (const TallyError& e) {
            // The per-connection limit and delay still hold.
            log::error(std::string("failed AUTHs from ") + source_ + " not counted: " + e.what());
        }
    }
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
    if (found) {
        if (charged) {
            try {
                tally_->refund(source_, wall_ms());
            } catch (const TallyError& e) {
                log::error(std::string("a right AUTH from ") + source_ +
                           " stays counted as a failure: " + e.what());
            }
        }
        return {mctp::AuthResult::Kind::accepted, std::move(*found)};
    }
    if (charged && *charged == config_.max_auth_failures_per_source) {
        log::write(mctp::LogLevel::warning,
                   "source " + source_ + " locked out: " + std::to_string(*charged) +
                       " failed AUTHs within " +
                       mctp::cfg::seconds_text(config_.auth_failure_window) +
                       " s (max_auth_failures_per_source); its connections get 421 until "
                       "the window has passed");
    }
    return {};
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
