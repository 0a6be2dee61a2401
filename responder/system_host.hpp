// The Host of the protocol engine on a real system: controllers from the
// configuration, users from NSS, changes through PAM, lines to syslog.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "auth_tally.hpp"
#include "config.hpp"
#include "pam_change.hpp"
#include "peer.hpp"
#include "scram.hpp"
#include "session.hpp"

namespace mpasswdd {

class SystemHost final : public mctp::Host {
public:
    // tally: the per-source count of failed AUTHs, or null when
    // max_auth_failures_per_source is 0.
    SystemHost(const Config& config, Peer peer, AuthTally* tally = nullptr);

    // The TLS client certificate the peer presented (the network child
    // reports it after the handshake).
    void set_client_certificate(std::string subject, std::string fingerprint);

    // This connection's tls-exporter channel binding (TLS 1.3, 32 octets;
    // empty otherwise): SCRAM-SHA-256-PLUS is offered with it.
    void set_channel_binding(std::string data) { binding_ = std::move(data); }

    // Whether any controller may connect from this peer at all.
    [[nodiscard]] mctp::PeerVerdict verdict() const;

    mctp::AuthResult authenticate(const mctp::Secret& secret) override;
    mctp::ScramResult scram_first(std::string_view client_first) override;
    mctp::ScramResult scram_final(std::string_view client_final) override;
    mctp::UserVerdict check_user(std::string_view controller, std::string_view user) override;
    mctp::ChangeResult change_password(std::string_view user, std::string_view helo_name,
                                       const mctp::Secret& password) override;
    mctp::ChangeResult test_password(std::string_view user, std::string_view helo_name,
                                     const mctp::Secret& password) override;
    unsigned offered_operations() override { return mctp::all_operations; }
    unsigned operations(std::string_view controller) override;
    mctp::AccountResult account(mctp::AccountOp op, std::string_view user) override;
    mctp::AccountResult check_password(std::string_view user,
                                       const mctp::Secret& password) override;
    void log(mctp::LogLevel level, std::string_view message) override;

private:
    [[nodiscard]] const Controller* controller(std::string_view name) const;
    [[nodiscard]] bool may_connect(const Controller& c) const;
    // The per-source tally: counts a try before its check (nullopt when
    // not counted), says *locked when the source may not try now; refund
    // after a right one; warns when this try locked the source.
    std::optional<unsigned> charge(bool* locked);
    void refund(const std::optional<unsigned>& charged);
    void warn_if_locked(const std::optional<unsigned>& charged);

    // The change and check services' modules, kept loaded for the
    // session once it has asked for a change or a test.
    ResidentStack change_stack_;
    ResidentStack check_stack_;
    const Config& config_;
    Peer peer_;
    AuthTally* tally_;
    std::string source_;
    std::string binding_;
    // The SCRAM exchange under way, and the controller its client-first
    // named (empty: no such controller may connect from here; the
    // exchange runs on a stand-in verifier and fails at the proof).
    std::unique_ptr<mctp::scram::Server> scram_;
    std::string scram_controller_;
};

}  // namespace mpasswdd
