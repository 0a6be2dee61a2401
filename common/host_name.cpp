#include "host_name.hpp"

#include <unistd.h>

#include "text.hpp"

namespace mctp {

std::string system_host_name(std::string_view fallback) {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0 && is_helo_name(buf)) {
        return buf;
    }
    return std::string(fallback);
}

}  // namespace mctp
