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

inline constexpr unsigned max_auth_failures_default = 3;
inline constexpr unsigned max_auth_failures_max = 100;

inline constexpr milliseconds idle_timeout_default{60'000};
inline constexpr milliseconds session_timeout_default{300'000};
inline constexpr milliseconds auth_failure_delay_default{2'000};
inline constexpr milliseconds timeout_max{86'400'000};
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
