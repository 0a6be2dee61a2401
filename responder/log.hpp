// The responder's log: syslog, LOG_AUTHPRIV, ident "mpasswdd".
#pragma once

#include <string_view>

#include "session.hpp"

namespace mpasswdd::log {

// also_stderr: copy every line to stderr (--log-stderr, for foreground
// runs and tests). Never on by default: under inetd stderr is the socket.
void open(bool also_stderr, bool debug);
void write(mctp::LogLevel level, std::string_view message);
void error(std::string_view message);

}  // namespace mpasswdd::log
