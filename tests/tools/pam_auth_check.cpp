// pam-auth-check SERVICE USER: reads a password from stdin and runs
// pam_authenticate with it. Exit 0 accepted, 1 refused, 2 error. Used by
// the real-PAM test and the demo to show which password now verifies.
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
    if (argc != 3) {
        std::fputs("usage: pam-auth-check SERVICE USER < password\n", stderr);
        return 2;
    }
    std::string line;
    std::getline(std::cin, line);
    const mctp::Secret password(line);
    mctp::wipe(line.data(), line.size());
    const pam_conv conv{answer, const_cast<mctp::Secret*>(&password)};
    pam_handle_t* h = nullptr;
    int rc = pam_start(argv[1], argv[2], &conv, &h);
    if (rc == PAM_SUCCESS) {
        rc = pam_authenticate(h, PAM_SILENT);
    }
    std::printf("%s\n", pam_strerror(h, rc));
    pam_end(h, rc);
    return rc == PAM_SUCCESS ? 0 : (rc == PAM_AUTH_ERR ? 1 : 2);
}
