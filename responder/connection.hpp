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

// The orderly end of a connection the responder closes (521, 421, 221):
// when out_fd is a socket, shuts down its sending side (FIN after the last
// reply), then reads and discards (wiped) what the peer still sends, until
// the peer closes, limits::linger_max passes or limits::linger_bytes_max
// have been read. Closing with unread input would make the kernel send a
// reset, and a reset makes the client's kernel drop the final reply before
// the client reads it (a controller that sent QUIT right behind its first
// command would lose the 521 that explains the refusal). No-op on pipes.
void linger_close(int in_fd, int out_fd);

}  // namespace mpasswdd
