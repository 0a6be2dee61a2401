// pam-auth-check SERVICE USER: reads a password from stdin and runs
// pam_authenticate with it. Exit 0 accepted, 1 refused, 2 error. Used by
// the real-PAM test and the demo to show which password now verifies.
//   --login    then pam_acct_mgmt too (a password login): exit 0 only when
//              both succeed, 1 when either refuses
//   --account  pam_acct_mgmt only, no password read (a key login, as sshd
//              runs it): exit 0 accepted, 1 refused
// Prints pam_strerror of each step, one line each.
#include <security/pam_appl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "secret.hpp"

namespace {

extern "C" int answer(int n, const pam_message** msg, pam_response** resp, void* app) {
    auto* r = static_cast<pam_response*>(std::calloc(static_cast<std::size_t>(n), sizeof(pam_response)));
    if (r == nullptr) {
        return PAM_BUF_ERR;
    }
    for (int i = 0; i < n; ++i) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
            r[i].resp = strdup(static_cast<const mctp::Secret*>(app)->c_str());
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc == 4 ? argv[3] : "";
    if ((argc != 3 && argc != 4) || (argc == 4 && mode != "--login" && mode != "--account")) {
        std::fputs("usage: pam-auth-check SERVICE USER [--login|--account] < password\n",
                   stderr);
        return 2;
    }
    std::string line;
    if (mode != "--account") {
        std::getline(std::cin, line);
    }
    const mctp::Secret password(line);
    mctp::wipe(line.data(), line.size());
    const pam_conv conv{answer, const_cast<mctp::Secret*>(&password)};
    pam_handle_t* h = nullptr;
    int rc = pam_start(argv[1], argv[2], &conv, &h);
    if (rc != PAM_SUCCESS) {
        std::printf("%s\n", pam_strerror(h, rc));
        return 2;
    }
    if (mode != "--account") {
        rc = pam_authenticate(h, PAM_SILENT);
        std::printf("%s\n", pam_strerror(h, rc));
        if (rc != PAM_SUCCESS || mode.empty()) {
            pam_end(h, rc);
            return rc == PAM_SUCCESS ? 0 : (rc == PAM_AUTH_ERR ? 1 : 2);
        }
    }
    rc = pam_acct_mgmt(h, PAM_SILENT);
    std::printf("%s\n", pam_strerror(h, rc));
    pam_end(h, rc);
    return rc == PAM_SUCCESS ? 0 : (rc == PAM_SYSTEM_ERR || rc == PAM_BUF_ERR ? 2 : 1);
}
