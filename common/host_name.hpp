// This host's name, for a banner or a HELO.
#pragma once

#include <string>
#include <string_view>

namespace mctp {

// gethostname() when it is a valid HELO name (mctp::is_helo_name), else
// fallback ("localhost" for the responder's banner, "mpasswd" for the
// controller's HELO).
std::string system_host_name(std::string_view fallback);

}  // namespace mctp
