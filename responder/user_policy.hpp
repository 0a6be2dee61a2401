// Which users a controller may manage on this host.
#pragma once

#include <string_view>

#include "config.hpp"
#include "session.hpp"

namespace mpasswdd {

// Decides in this order: unknown user (551); named in deny_users or a
// member of a deny_groups group (530); uid 0, or a uid outside min_uid..max_uid, unless
// the user is named in allow_users (530); not in allow_users/allow_groups
// when either is set (530); outside the controller's own users/groups
// when either is set (530).
mctp::UserVerdict check_user(const UserPolicy& policy, const Controller* controller,
                             std::string_view user);

}  // namespace mpasswdd
