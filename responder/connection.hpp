// Drives one session over a pair of file descriptors (fd 0 and fd 1 under
// inetd, systemd Accept=yes, or an SSH forced command).
#pragma once

#include <chrono>

#include "session.hpp"

namespace mpasswdd {

struct Timeouts {
    std::chrono::milliseconds idle{60'000};
    std::chrono::milliseconds session{300'000};
};

enum class ConnectionEnd { closed, peer_gone, io_error };

// Sends the banner for verdict, then reads lines until the session
// closes, the peer goes, or a timeout fires. Every wait is bounded by the
// idle and session timeouts, writes included.
ConnectionEnd run_connection(mctp::Session& session, mctp::PeerVerdict verdict, int in_fd,
                             int out_fd, Timeouts timeouts);

}  // namespace mpasswdd
