#include "system_host.hpp"

#include <algorithm>

#include "account_ops.hpp"
#include "config_file.hpp"
#include "log.hpp"
#include "pam_change.hpp"
#include "secret_hash.hpp"
#include "text.hpp"
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

std::optional<unsigned> SystemHost::charge(bool* locked) {
    *locked = false;
    if (tally_ == nullptr) {
        return std::nullopt;
    }
    try {
        auto charged = tally_->charge(source_, wall_ms());
        *locked = !charged;
        return charged;
    } catch (const TallyError& e) {
        // The per-connection limit and delay still hold.
        log::error(std::string("failed AUTHs from ") + source_ + " not counted: " + e.what());
    }
    return std::nullopt;
}

void SystemHost::refund(const std::optional<unsigned>& charged) {
    if (!charged) {
        return;
    }
    try {
        tally_->refund(source_, wall_ms());
    } catch (const TallyError& e) {
        log::error(std::string("a right AUTH from ") + source_ +
                   " stays counted as a failure: " + e.what());
    }
}

void SystemHost::warn_if_locked(const std::optional<unsigned>& charged) {
    if (charged && *charged == config_.max_auth_failures_per_source) {
        log::write(mctp::LogLevel::warning,
                   "source " + source_ + " locked out: " + std::to_string(*charged) +
                       " failed AUTHs within " +
                       mctp::cfg::seconds_text(config_.auth_failure_window) +
                       " s (max_auth_failures_per_source); its connections get 421 until "
                       "the window has passed");
    }
}

mctp::AuthResult SystemHost::authenticate(const mctp::Secret& secret) {
    // Counted before the check, so that parallel connections from one
    // source cannot have more secrets checked than the limit between them.
    bool locked = false;
    const auto charged = charge(&locked);
    if (locked) {
        return {mctp::AuthResult::Kind::locked, ""};
    }
    // Every controller that may connect from here is tried, so the time
    // taken does not tell which entry, if any, came close. Only entries
    // that keep a secret_hash take the old AUTH <secret>.
    std::optional<std::string> found;
    for (const auto& c : config_.controllers) {
        if (!may_connect(c) || c.secret_hash.empty()) {
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
        refund(charged);
        return {mctp::AuthResult::Kind::accepted, std::move(*found)};
    }
    warn_if_locked(charged);
    return {};
}

namespace {

// The stand-in for a name that no controller entry (allowed from this
// peer, with a verifier) has: the exchange looks the same up to the
// proof, which fails. Its salt is fixed per name and host, so asking
// twice does not tell a real entry from a stand-in by a changing salt;
// and it is keyed by this host's configured verifiers, which only root
// may read, so nobody can compute it from the names and tell a real
// entry's salt from a stand-in's that way (as PostgreSQL keys its mock
// authentication with a secret nonce).
mctp::scram::Verifier stand_in(std::string_view name, std::string_view host,
                               const std::vector<Controller>& controllers) {
    std::string key;
    for (const auto& c : controllers) {
        if (c.verifier) {
            key.append(reinterpret_cast<const char*>(c.verifier->server_key.data()),
                       c.verifier->server_key.size());
        }
        key += c.secret_hash;
    }
    key += '\n' + std::string(host) + '\n' + std::string(name);
    mctp::scram::Verifier v;
    v.iterations = mctp::scram::iterations_min;
    const auto a = mctp::scram::make_verifier(key, "mpasswdd stand-in salt", 1);
    mctp::wipe(key.data(), key.size());
    v.salt.assign(reinterpret_cast<const char*>(a.stored_key.data()), mctp::scram::salt_min);
    v.stored_key = a.server_key;
    v.server_key = a.stored_key;
    return v;
}

}  // namespace

mctp::ScramResult SystemHost::scram_first(std::string_view client_first) {
    scram_.reset();
    scram_controller_.clear();
    auto server = std::make_unique<mctp::scram::Server>(!binding_.empty(), binding_);
    std::string why;
    const auto name = server->start(client_first, &why);
    if (!name) {
        log::write(mctp::LogLevel::notice, "AUTH SCRAM-SHA-256 from " + peer_.text +
                                               ": client-first message refused: " + why);
        return {};
    }
    const Controller* found = nullptr;
    for (const auto& c : config_.controllers) {
        if (c.name == *name && c.verifier && may_connect(c)) {
            found = &c;
        }
    }
    mctp::ScramResult r;
    r.kind = mctp::ScramResult::Kind::next;
    if (found != nullptr) {
        scram_controller_ = found->name;
        r.message = server->first(*found->verifier);
    } else {
        log::write(mctp::LogLevel::notice,
                   "AUTH SCRAM-SHA-256 from " + peer_.text + " names controller '" +
                       mctp::printable(*name, mctp::scram::name_max) +
                       "', which has no secret_verifier or may not connect from here");
        r.message = server->first(stand_in(*name, config_.host_name, config_.controllers));
    }
    scram_ = std::move(server);
    return r;
}

mctp::ScramResult SystemHost::scram_final(std::string_view client_final) {
    if (!scram_) {
        return {};
    }
    const auto server = std::move(scram_);
    const std::string controller = std::move(scram_controller_);
    scram_controller_.clear();
    bool locked = false;
    const auto charged = charge(&locked);
    if (locked) {
        return {mctp::ScramResult::Kind::locked, "", ""};
    }
    std::string why;
    auto final_message = server->final(client_final, &why);
    if (!final_message || controller.empty()) {
        if (!controller.empty()) {
            log::write(mctp::LogLevel::notice,
                       "AUTH SCRAM for controller " + controller + " from " +
                           peer_.text + " failed: " + why);
        }
        warn_if_locked(charged);
        return {};
    }
    refund(charged);
    return {mctp::ScramResult::Kind::next, std::move(*final_message), controller};
}

const Controller* SystemHost::controller(std::string_view name) const {
    const Controller* ctl = nullptr;
    for (const auto& c : config_.controllers) {
        if (c.name == name) {
            ctl = &c;
        }
    }
    return ctl;
}

mctp::UserVerdict SystemHost::check_user(std::string_view controller, std::string_view user) {
    return mpasswdd::check_user(config_.policy, this->controller(controller), user);
}

unsigned SystemHost::operations(std::string_view name) {
    const Controller* ctl = controller(name);
    return ctl == nullptr ? 0U : ctl->operations;
}

mctp::AccountResult SystemHost::account(mctp::AccountOp op, std::string_view user) {
    account::Files files;
    files.state_directory = config_.state_directory;
    return account::apply(files, op, user);
}

mctp::AccountResult SystemHost::check_password(std::string_view user,
                                               const mctp::Secret& password) {
    account::Files files;
    files.state_directory = config_.state_directory;
    return account::check_password(files, user, password);
}

mctp::ChangeResult SystemHost::change_password(std::string_view user, std::string_view helo_name,
                                               const mctp::Secret& password) {
    const ChangeRequest req{config_.pam_service, std::string(user),
                            peer_.local ? std::string("localhost") : peer_.text,
                            std::string(helo_name)};
    change_stack_.hold(config_.pam_service);
    return mpasswdd::change_password(req, password);
}

mctp::ChangeResult SystemHost::test_password(std::string_view user, std::string_view helo_name,
                                             const mctp::Secret& password) {
    // The same conversation under check_service, whose stack checks and
    // stores nothing (pam_permit where the store would be).
    const ChangeRequest req{config_.check_service, std::string(user),
                            peer_.local ? std::string("localhost") : peer_.text,
                            std::string(helo_name)};
    check_stack_.hold(config_.check_service);
    return mpasswdd::change_password(req, password);
}

void SystemHost::log(mctp::LogLevel level, std::string_view message) {
    log::write(level, message);
}

}  // namespace mpasswdd
