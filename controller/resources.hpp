// What the controller needs of the process it runs in, whoever started
// it: pam_mctp runs inside setuid passwd, whose resource limits the
// calling user set (passwd raises them, but RLIMIT_NOFILE cannot be
// raised to "unlimited", so a user's `ulimit -n 16` stays).
#pragma once

#include <sys/resource.h>

namespace mpasswd {

// Room in RLIMIT_NOFILE for `parallel` connections in flight, each taking
// up to two descriptors (ssh: its socket and its standard error) beside a
// reserve for the process itself. Raises the soft limit where it is lower
// (and the hard one, where the process may), and puts the limits back as
// they were when it goes: a PAM module borrows its caller's process.
// parallel() is how many connections fit (at least 1).
//
// `parallel` 0 (limits::parallel_auto, `parallel = auto`) asks for room
// for limits::parallel_auto_want connections and takes what fits: the
// hard limit where the process may not raise it, else what it was raised
// to. An explicit number is asked for in the same way.
class DescriptorRoom {
public:
    explicit DescriptorRoom(unsigned parallel) noexcept;
    ~DescriptorRoom();
    DescriptorRoom(const DescriptorRoom&) = delete;
    DescriptorRoom& operator=(const DescriptorRoom&) = delete;

    [[nodiscard]] unsigned parallel() const noexcept { return parallel_; }

    static constexpr rlim_t per_connection = 2;
    static constexpr rlim_t reserve = 64;  // stdio, the resolver, PAM, libraries

private:
    rlimit saved_{};
    bool changed_ = false;
    unsigned parallel_;
};

}  // namespace mpasswd
