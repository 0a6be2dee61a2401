#include "user_policy.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "limits.hpp"

namespace mpasswdd {
namespace {

bool contains(const std::vector<std::string>& list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

// The user's primary and supplementary group ids.
std::vector<gid_t> groups_of(const std::string& user, gid_t primary) {
    int n = 64;
    std::vector<gid_t> gids;
    for (;;) {
        gids.resize(static_cast<std::size_t>(n));
        int count = n;
        if (getgrouplist(user.c_str(), primary, gids.data(), &count) >= 0) {
            gids.resize(static_cast<std::size_t>(count));
            return gids;
        }
        if (count <= n || count > mctp::limits::user_groups_max) {
            return {primary};
        }
        n = count;
    }
}

// The user's groups, looked up at the first rule that names a group:
// getgrouplist() walks every NSS source (nss-systemd's userdb folders,
// LDAP, ...), which a policy without group rules need not pay for at
// every CHPW and TEST.
class Groups {
public:
    Groups(const std::string& user, gid_t primary) : user_(user), primary_(primary) {}
    const std::vector<gid_t>& get() {
        if (!gids_) {
            gids_ = groups_of(user_, primary_);
        }
        return *gids_;
    }

private:
    const std::string& user_;
    gid_t primary_;
    std::optional<std::vector<gid_t>> gids_;
};

bool in_any_group(Groups& groups, const std::vector<std::string>& names) {
    if (names.empty()) {
        return false;
    }
    const auto& gids = groups.get();
    for (const auto& name : names) {
        const group* g = getgrnam(name.c_str());
        if (g != nullptr && std::find(gids.begin(), gids.end(), g->gr_gid) != gids.end()) {
            return true;
        }
    }
    return false;
}

}  // namespace

mctp::UserVerdict check_user(const UserPolicy& policy, const Controller* controller,
                             std::string_view user_view) {
    using mctp::UserVerdict;
    const std::string user(user_view);
    const passwd* pw = getpwnam(user.c_str());
    if (pw == nullptr) {
        return UserVerdict::unknown;
    }
    const uid_t uid = pw->pw_uid;
    Groups gids(user, pw->pw_gid);

    if (contains(policy.deny_users, user) || in_any_group(gids, policy.deny_groups)) {
        return UserVerdict::forbidden;
    }
    const bool named = contains(policy.allow_users, user);
    if ((uid == 0 || uid < policy.min_uid || uid > policy.max_uid) && !named) {
        return UserVerdict::forbidden;
    }
    if ((!policy.allow_users.empty() || !policy.allow_groups.empty()) && !named &&
        !in_any_group(gids, policy.allow_groups)) {
        return UserVerdict::forbidden;
    }
    if (controller != nullptr && (!controller->users.empty() || !controller->groups.empty()) &&
        !contains(controller->users, user) && !in_any_group(gids, controller->groups)) {
        return UserVerdict::forbidden;
    }
    return UserVerdict::allowed;
}

}  // namespace mpasswdd
