// pam-chauthtok SERVICE USER [silent]: runs pam_chauthtok as passwd does.
// Echo-off prompts are answered in order from the lines of stdin; every
// message is printed ("prompt: ", "error: ", "info: "), then
// "result: N TEXT". Exit 0 when pam_chauthtok succeeded, 1 otherwise.
// USER "-": none is given to pam_start, so a module that needs it asks
// (echo-on prompts are answered from stdin too). An answer line
// "@conv-again" makes the conversation return PAM_CONV_AGAIN for that
// prompt, as an event-driven application does.
#include <security/pam_appl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Answers {
    std::vector<std::string> lines;
    std::size_t next = 0;
};

extern "C" int converse(int n, const pam_message** msg, pam_response** resp, void* app) {
    auto* answers = static_cast<Answers*>(app);
    auto* r = static_cast<pam_response*>(std::calloc(static_cast<std::size_t>(n), sizeof(pam_response)));
    if (r == nullptr) {
        return PAM_BUF_ERR;
    }
    for (int i = 0; i < n; ++i) {
        const char* text = msg[i]->msg ? msg[i]->msg : "";
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
        case PAM_PROMPT_ECHO_ON:
            std::printf("prompt: %s\n", text);
            if (answers->next >= answers->lines.size()) {
                std::free(r);
                return PAM_CONV_ERR;
            }
            if (answers->lines[answers->next] == "@conv-again") {
                ++answers->next;
                std::free(r);
                return PAM_CONV_AGAIN;
            }
            r[i].resp = strdup(answers->lines[answers->next++].c_str());
            break;
        case PAM_ERROR_MSG: std::printf("error: %s\n", text); break;
        case PAM_TEXT_INFO: std::printf("info: %s\n", text); break;
        default:
            std::free(r);
            return PAM_CONV_ERR;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3 || argc > 4) {
        std::fputs("usage: pam-chauthtok SERVICE USER [silent] < answers\n", stderr);
        return 2;
    }
    Answers answers;
    for (std::string line; std::getline(std::cin, line);) {
        answers.lines.push_back(line);
    }
    const pam_conv conv{converse, &answers};
    pam_handle_t* h = nullptr;
    const bool no_user = std::strcmp(argv[2], "-") == 0;
    int rc = pam_start(argv[1], no_user ? nullptr : argv[2], &conv, &h);
    if (rc == PAM_SUCCESS) {
        rc = pam_chauthtok(h, argc == 4 && std::strcmp(argv[3], "silent") == 0 ? PAM_SILENT : 0);
    }
    std::printf("result: %d %s\n", rc, pam_strerror(h, rc));
    std::fflush(stdout);
    pam_end(h, rc);
    return rc == PAM_SUCCESS ? 0 : 1;
}
