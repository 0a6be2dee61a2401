#include "log.hpp"

#include <syslog.h>

#include <string>

#include "text.hpp"

namespace mpasswdd::log {
namespace {
bool debug_enabled = false;

// Octets of one log line after escaping: the longest message (a refusal
// with PAM's messages) fits.
constexpr std::size_t line_max = 8192;

// Every line goes through here: what a message quotes (a HELO name, a
// user, PAM's messages, a certificate's subject) is shown escaped, so a
// line carries no control character and cannot be split in two.
void emit(int priority, std::string_view message) noexcept {
    try {
        const std::string line = mctp::printable(message, line_max);
        syslog(priority, "%s", line.c_str());
    } catch (...) {
        syslog(priority, "(a log line lost: out of memory)");
    }
}
}

void set_debug(bool debug) {
    debug_enabled = debug;
}

void open(bool also_stderr, bool debug) {
    debug_enabled = debug;
    openlog("mpasswdd", LOG_PID | LOG_NDELAY | (also_stderr ? LOG_PERROR : 0), LOG_AUTHPRIV);
}

bool debugging() {
    return debug_enabled;
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
    emit(priority, message);
}

void error(std::string_view message) {
    emit(LOG_ERR, message);
}

}  // namespace mpasswdd::log
