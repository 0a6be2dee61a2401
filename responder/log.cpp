#include "log.hpp"

#include <syslog.h>

#include <string>

namespace mpasswdd::log {
namespace {
bool debug_enabled = false;
}

void open(bool also_stderr, bool debug) {
    debug_enabled = debug;
    openlog("mpasswdd", LOG_PID | LOG_NDELAY | (also_stderr ? LOG_PERROR : 0), LOG_AUTHPRIV);
}

void write(mctp::LogLevel level, std::string_view message) {
    int priority = LOG_INFO;
    switch (level) {
    case mctp::LogLevel::debug:
        if (!debug_enabled) {
            return;
        }
        priority = LOG_DEBUG;
        break;
    case mctp::LogLevel::info: priority = LOG_INFO; break;
    case mctp::LogLevel::notice: priority = LOG_NOTICE; break;
    case mctp::LogLevel::warning: priority = LOG_WARNING; break;
    }
    syslog(priority, "%.*s", static_cast<int>(message.size()), message.data());
}

void error(std::string_view message) {
    syslog(LOG_ERR, "%.*s", static_cast<int>(message.size()), message.data());
}

}  // namespace mpasswdd::log
