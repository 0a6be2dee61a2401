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

// Keeps one PAM service's modules loaded while it lives. An idle handle
// (pam_start with no user; nothing is ever asked of it) holds a reference
// to every module its configuration names, so each change, which still
// gets a handle of its own as passwd and chpasswd do, finds them loaded
// rather than loading and unloading them (pam_unix with libnsl, libtirpc
// and Kerberos) once per user. Started at the first change or test of a
// session, ended with the session. A service that cannot start leaves it
// empty: each change then starts (and reports) on its own.
class ResidentStack {
public:
    ResidentStack() = default;
    ~ResidentStack() { release(); }
    ResidentStack(const ResidentStack&) = delete;
    ResidentStack& operator=(const ResidentStack&) = delete;

    // Loads service's stack unless it is already held (for that service).
    void hold(const std::string& service);
    void release();
    [[nodiscard]] bool held() const { return handle_ != nullptr; }

private:
    void* handle_ = nullptr;  // pam_handle_t*
    std::string service_;
};

// The reply kind for a pam_chauthtok result.
mctp::ChangeResult::Kind classify_pam_result(int pam_result);

}  // namespace mpasswdd
