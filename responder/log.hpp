// The responder's log: syslog, LOG_AUTHPRIV, ident "mpasswdd".
#pragma once

#include <string_view>

#include "session.hpp"

namespace mpasswdd::log {

// also_stderr: copy every line to stderr (--log-stderr, for foreground
// runs and tests). Never on by default: under inetd stderr is the socket.
void open(bool also_stderr, bool debug);
// Only whether debug lines are wanted, without opening syslog (the
// network child, whose lines go to the parent).
void set_debug(bool debug);
void write(mctp::LogLevel level, std::string_view message);
// Whether debug lines are written (--debug).
bool debugging();
void error(std::string_view message);

}  // namespace mpasswdd::log
