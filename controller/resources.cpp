#include "resources.hpp"

#include <algorithm>

#include "controller_limits.hpp"

namespace mpasswd {

DescriptorRoom::DescriptorRoom(unsigned parallel) noexcept
    : parallel_(parallel == limits::parallel_auto ? limits::parallel_auto_want : parallel) {
    parallel = parallel_;
    if (getrlimit(RLIMIT_NOFILE, &saved_) != 0) {
        return;
    }
    const rlim_t need = static_cast<rlim_t>(parallel) * per_connection + reserve;
    rlimit now = saved_;
    if (now.rlim_cur < need) {
        // The hard limit too, where the process may (root; inside setuid
        // passwd the effective uid is root whatever the user set).
        const rlimit both{need, std::max(need, saved_.rlim_max)};
        const rlimit soft{std::min(need, saved_.rlim_max), saved_.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &both) == 0 || setrlimit(RLIMIT_NOFILE, &soft) == 0) {
            changed_ = true;
        }
        getrlimit(RLIMIT_NOFILE, &now);
    }
    const rlim_t room = now.rlim_cur > reserve ? (now.rlim_cur - reserve) / per_connection : 0;
    parallel_ = static_cast<unsigned>(std::max<rlim_t>(1, std::min<rlim_t>(parallel, room)));
}

DescriptorRoom::~DescriptorRoom() {
    if (changed_) {
        setrlimit(RLIMIT_NOFILE, &saved_);
    }
}

}  // namespace mpasswd
