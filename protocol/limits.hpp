// Every limit of the protocol and the responder, in one place.
#pragma once

#include <chrono>
#include <cstddef>

namespace mctp::limits {

using std::chrono::milliseconds;

// One input line, terminator included (MCTP_BUFLEN upstream).
inline constexpr std::size_t line_max_default = 128;
inline constexpr std::size_t line_max_min = 128;
inline constexpr std::size_t line_max_max = 4096;

// Portable POSIX user names, as useradd accepts them.
inline constexpr std::size_t user_name_max = 32;
// The controller's name given with HELO.
inline constexpr std::size_t helo_name_max = 64;
// The banner host name.
inline constexpr std::size_t host_name_max = 64;

// Failed AUTHs in one session before 421 and the close.
inline constexpr unsigned max_auth_failures_default = 3;
inline constexpr unsigned max_auth_failures_min = 1;
inline constexpr unsigned max_auth_failures_max = 100;

// Failed AUTHs from one source (an IPv4 address, an IPv6 /64), counted
// across connections in the responder's tally file, within a window.
inline constexpr unsigned max_auth_failures_per_source_default = 10;
inline constexpr unsigned max_auth_failures_per_source_max = 10'000;
inline constexpr milliseconds auth_failure_window_default{15 * 60'000};
inline constexpr milliseconds auth_failure_window_min{1'000};
inline constexpr milliseconds auth_failure_window_max{7 * 86'400'000LL};
// Sources the tally keeps (when full, the expired go first, then the
// oldest window), and the octets of one line and of the whole file.
inline constexpr std::size_t tally_entries_max = 1024;
inline constexpr std::size_t tally_line_max = 96;
inline constexpr std::size_t tally_file_max = (tally_entries_max + 1) * tally_line_max;
// How long a responder waits for another one's lock on the tally.
inline constexpr milliseconds tally_lock_wait_max{2'000};

// From connect until AUTH succeeds (TLS handshake included); no command
// extends it.
inline constexpr milliseconds login_grace_time_default{30'000};
inline constexpr milliseconds login_grace_time_min{100};
inline constexpr milliseconds login_grace_time_max{3'600'000};

// The responder's idle_timeout (between two lines) and session_timeout
// (the whole connection) share one range.
inline constexpr milliseconds idle_timeout_default{60'000};
inline constexpr milliseconds session_timeout_default{300'000};
inline constexpr milliseconds timeout_min{100};
inline constexpr milliseconds timeout_max{86'400'000};
// The pause before the reply to a failed AUTH.
inline constexpr milliseconds auth_failure_delay_default{2'000};
inline constexpr milliseconds auth_failure_delay_min{0};
inline constexpr milliseconds auth_failure_delay_max{60'000};

// A PAM stack that asks more than this many questions is looping.
inline constexpr unsigned pam_prompts_max = 16;
// Messages kept from one PAM conversation, and the octets kept of each.
inline constexpr unsigned pam_messages_max = 8;
inline constexpr std::size_t pam_message_max = 512;

// Octets of a text from a peer, a file or an argument shown in a message,
// after escaping (mctp::printable), unless the caller says otherwise.
inline constexpr std::size_t shown_text_max = 1024;

// Controllers and list entries in one configuration file.
inline constexpr std::size_t controllers_max = 256;
inline constexpr std::size_t list_entries_max = 1024;
// Supplementary groups looked at for one user.
inline constexpr int user_groups_max = 65536;

// Bytes read from the connection in one go.
inline constexpr std::size_t read_chunk = 4096;

// After the responder's last reply on a socket: how long and how much it
// keeps reading (and discarding) so that the close is an orderly FIN, not
// a reset that would destroy that reply in the client's receive queue.
inline constexpr milliseconds linger_max{2'000};
inline constexpr std::size_t linger_bytes_max = 64 * 1024;

}  // namespace mctp::limits
