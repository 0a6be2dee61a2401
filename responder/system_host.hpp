// The Host of the protocol engine on a real system: controllers from the
// configuration, users from NSS, changes through PAM, lines to syslog.
#pragma once

#include "auth_tally.hpp"
#include "config.hpp"
#include "peer.hpp"
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

    // Whether any controller may connect from this peer at all.
    [[nodiscard]] mctp::PeerVerdict verdict() const;

    mctp::AuthResult authenticate(const mctp::Secret& secret) override;
    mctp::UserVerdict check_user(std::string_view controller, std::string_view user) override;
    mctp::ChangeResult change_password(std::string_view user, std::string_view helo_name,
                                       const mctp::Secret& password) override;
    void log(mctp::LogLevel level, std::string_view message) override;

private:
    [[nodiscard]] bool may_connect(const Controller& c) const;

    const Config& config_;
    Peer peer_;
    AuthTally* tally_;
    std::string source_;
};

}  // namespace mpasswdd
