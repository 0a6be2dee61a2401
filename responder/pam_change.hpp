// Applying a password change through the host's PAM stack.
#pragma once

#include <string>
#include <string_view>

#include "secret.hpp"
#include "session.hpp"

namespace mpasswdd {

struct ChangeRequest {
    std::string service;  // PAM service, /etc/pam.d/<service>
    std::string user;
    std::string rhost;    // PAM_RHOST: the peer
    std::string ruser;    // PAM_RUSER: the HELO name
};

// pam_start + pam_chauthtok + pam_end. The conversation answers every
// echo-off prompt with the password (by message style, never by prompt
// text), fails any echo-on prompt, and keeps error and info messages for
// the reply. PAM results map to ChangeResult kinds as
// mpasswd-protocol(7) says.
mctp::ChangeResult change_password(const ChangeRequest& request, const mctp::Secret& password);

// The reply kind for a pam_chauthtok result.
mctp::ChangeResult::Kind classify_pam_result(int pam_result);

}  // namespace mpasswdd
