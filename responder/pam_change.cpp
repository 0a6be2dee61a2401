#include "pam_change.hpp"

#include <security/pam_appl.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "limits.hpp"

namespace mpasswdd {
namespace {

namespace limits = mctp::limits;

struct Conversation {
    const mctp::Secret* password = nullptr;
    std::vector<std::string> errors;
    std::vector<std::string> infos;
    unsigned prompts = 0;
    bool unanswerable = false;  // an echo-on prompt, or too many prompts
};

void keep(std::vector<std::string>& list, const char* text) {
    if (text != nullptr && list.size() < limits::pam_messages_max) {
        list.emplace_back(text, strnlen(text, limits::pam_message_max));
    }
}

void free_responses(pam_response* r, int n) {
    if (r == nullptr) {
        return;
    }
    for (int i = 0; i < n; ++i) {
        if (r[i].resp != nullptr) {
            mctp::wipe(r[i].resp, std::strlen(r[i].resp));
            std::free(r[i].resp);
        }
    }
    std::free(r);
}

extern "C" int converse(int n, const pam_message** msg, pam_response** resp, void* appdata) {
    if (n <= 0 || n > PAM_MAX_NUM_MSG || msg == nullptr || resp == nullptr || appdata == nullptr) {
        return PAM_CONV_ERR;
    }
    auto& conv = *static_cast<Conversation*>(appdata);
    auto* replies = static_cast<pam_response*>(std::calloc(static_cast<std::size_t>(n),
                                                           sizeof(pam_response)));
    if (replies == nullptr) {
        return PAM_BUF_ERR;
    }
    try {
        for (int i = 0; i < n; ++i) {
            switch (msg[i]->msg_style) {
            case PAM_PROMPT_ECHO_OFF:
                if (++conv.prompts > limits::pam_prompts_max) {
                    conv.unanswerable = true;
                    free_responses(replies, n);
                    return PAM_CONV_ERR;
                }
                replies[i].resp = strdup(conv.password->c_str());
                if (replies[i].resp == nullptr) {
                    free_responses(replies, n);
                    return PAM_BUF_ERR;
                }
                break;
            case PAM_ERROR_MSG:
                keep(conv.errors, msg[i]->msg);
                break;
            case PAM_TEXT_INFO:
                keep(conv.infos, msg[i]->msg);
                break;
            default:  // PAM_PROMPT_ECHO_ON and anything unknown: not ours to answer
                conv.unanswerable = true;
                free_responses(replies, n);
                return PAM_CONV_ERR;
            }
        }
    } catch (...) {
        free_responses(replies, n);
        return PAM_BUF_ERR;
    }
    *resp = replies;
    return PAM_SUCCESS;
}

// PAM modules should never echo a password, but one that did must not
// carry it into a reply or the log.
void scrub(std::string& text, std::string_view password) {
    if (password.empty()) {
        return;
    }
    for (auto at = text.find(password); at != std::string::npos; at = text.find(password, at)) {
        text.replace(at, password.size(), "********");
    }
}

}  // namespace

namespace {

// The idle handle's conversation: nothing is ever run on that handle, and
// a module that asked anyway gets no answer.
extern "C" int refuse_all(int /*n*/, const pam_message** /*msg*/, pam_response** /*resp*/,
                          void* /*appdata*/) {
    return PAM_CONV_ERR;
}

const pam_conv idle_conversation{refuse_all, nullptr};

}  // namespace

void ResidentStack::hold(const std::string& service) {
    if (handle_ != nullptr && service_ == service) {
        return;
    }
    release();
    pam_handle_t* pamh = nullptr;
    if (pam_start(service.c_str(), nullptr, &idle_conversation, &pamh) == PAM_SUCCESS) {
        handle_ = pamh;
        service_ = service;
    }
}

void ResidentStack::release() {
    if (handle_ != nullptr) {
        pam_end(static_cast<pam_handle_t*>(handle_), PAM_SUCCESS);
        handle_ = nullptr;
        service_.clear();
    }
}

mctp::ChangeResult::Kind classify_pam_result(int rc) {
    using Kind = mctp::ChangeResult::Kind;
    switch (rc) {
    case PAM_SUCCESS: return Kind::changed;
    case PAM_USER_UNKNOWN: return Kind::unknown;
    case PAM_PERM_DENIED: return Kind::forbidden;
    case PAM_AUTHTOK_ERR:
    case PAM_AUTHTOK_RECOVERY_ERR:
    case PAM_AUTHTOK_DISABLE_AGING:
    case PAM_MAXTRIES:
    case PAM_NEW_AUTHTOK_REQD:
    case PAM_AUTH_ERR:
        return Kind::refused;
    default:  // PAM_AUTHTOK_LOCK_BUSY, PAM_TRY_AGAIN, PAM_SYSTEM_ERR, ...
        return Kind::failed;
    }
}

mctp::ChangeResult change_password(const ChangeRequest& req, const mctp::Secret& password) {
    Conversation conv;
    conv.password = &password;
    const pam_conv pc{converse, &conv};
    pam_handle_t* pamh = nullptr;

    int rc = pam_start(req.service.c_str(), req.user.c_str(), &pc, &pamh);
    if (rc != PAM_SUCCESS) {
        return {mctp::ChangeResult::Kind::failed, "PAM could not start"};
    }
    rc = pam_set_item(pamh, PAM_RHOST, req.rhost.c_str());
    if (rc == PAM_SUCCESS) {
        rc = pam_set_item(pamh, PAM_RUSER, req.ruser.c_str());
    }
    if (rc == PAM_SUCCESS) {
        rc = pam_chauthtok(pamh, 0);
    }

    mctp::ChangeResult result{classify_pam_result(rc), {}};
    const auto& said = conv.errors.empty() ? conv.infos : conv.errors;
    for (const auto& m : said) {
        result.message += (result.message.empty() ? "" : "; ") + m;
    }
    if (result.kind != mctp::ChangeResult::Kind::changed && result.message.empty()) {
        result.message = conv.unanswerable
                             ? "the PAM stack asked a question mpasswdd cannot answer"
                             : pam_strerror(pamh, rc);
    }
    if (result.kind == mctp::ChangeResult::Kind::changed) {
        result.message.clear();
    }
    scrub(result.message, password.view());
    pam_end(pamh, rc);
    return result;
}

}  // namespace mpasswdd
