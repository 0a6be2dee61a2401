// Privilege separation of mpasswdd (see mpasswdd(8), PRIVILEGE
// SEPARATION): a privileged parent, the monitor, that holds the
// configuration and does what mctp::Host asks (authenticate, check a
// user, change a password, log), and an unprivileged child that does all
// network I/O (TLS, framing, the session). They speak over an AF_UNIX
// SOCK_SEQPACKET socketpair in small versioned binary messages:
//
//   header   u8 version (1), u8 type, u16 flags (0), u32 length
//   payload  `length` octets of fields: u8, u32 (host byte order) and
//            strings (u16 length, then the octets)
//
// At most message_max octets in all. The parent never parses protocol
// text: every field is bounded and checked (user names, HELO names,
// printable log text), and a message that is not exactly right ends the
// session.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "connection.hpp"
#include "limits.hpp"
#include "secret.hpp"
#include "session.hpp"

namespace mpasswdd::privsep {

inline constexpr std::uint8_t version = 1;
inline constexpr std::size_t header_size = 8;
inline constexpr std::size_t message_max = 8192;
// The longest log text and TLS subject a child may send.
inline constexpr std::size_t text_max = 4096;
inline constexpr std::size_t path_max = 1024;
// The LOG messages one session's child may send (a sound one sends a few
// dozen at most): more floods syslog and ends the session.
inline constexpr unsigned log_messages_max = 256;

enum class Type : std::uint8_t {
    hello = 1,         // parent -> child, once: what the child needs
    start = 2,         // child: TLS subject and fingerprint (empty without)
    verdict = 3,       //   <- u8 PeerVerdict
    auth = 4,          // child: the secret
    auth_reply = 5,    //   <- u8 AuthResult::Kind, controller name
    check_user = 6,    // child: user
    user_reply = 7,    //   <- u8 UserVerdict
    change = 8,        // child: user, HELO name, password
    change_reply = 9,  //   <- u8 ChangeResult::Kind, PAM's message
    log = 10,          // child: u8 level (LogLevel, 4 = error), text; no reply
    scram_first = 11,        // child: the SCRAM client-first message
    scram_first_reply = 12,  //   <- u8 ScramResult::Kind, server-first message
    scram_final = 13,        // child: the SCRAM client-final message
    scram_final_reply = 14,  //   <- u8 ScramResult::Kind, server-final message, controller
    test = 15,         // child: user, HELO name, password (TEST: check only)
    test_reply = 16,   //   <- u8 ChangeResult::Kind, PAM's message
    operations = 17,        // child: the controller AUTH named
    operations_reply = 18,  //   <- u32 the verbs it may use (mctp::Operation bits)
    account = 19,           // child: u8 AccountOp, user (EXPR, LOCK, UNLK)
    account_reply = 20,     //   <- u8 AccountResult::Kind, message
    check = 21,             // child: user, password (CHCK)
    check_reply = 22,       //   <- u8 AccountResult::Kind, message
};

// The longest SCRAM message either way (protocol.md: AUTH lines of up to
// 1024 octets, and the base64 in them is longer than the message).
inline constexpr std::size_t scram_message_max = 1024;
// The server's messages answer a client message and are a little longer.
inline constexpr std::size_t scram_reply_max = 2 * scram_message_max;
// The tls-exporter channel binding START carries: 0 or this many octets.
inline constexpr std::size_t binding_size = 32;

// Log level 4 in a LOG message: an error (the child cannot go on).
inline constexpr std::uint8_t log_error = 4;

enum class Received { ok, end, timeout, error, malformed };
class Message;
Received receive(int fd, Message* m, Clock::time_point deadline, std::string* why);

// One message, built or received, in a fixed buffer that is wiped when
// the message goes (AUTH, CHANGE and TEST carry secrets).
class Message {
public:
    Message() = default;
    explicit Message(Type type);
    ~Message();
    Message(const Message&) = delete;
    Message& operator=(const Message&) = delete;

    [[nodiscard]] Type type() const noexcept { return static_cast<Type>(buf_[1]); }

    // Building: false once the message would pass message_max (it is then
    // never sent).
    void put_u8(std::uint8_t v);
    void put_u32(std::uint32_t v);
    void put_str(std::string_view s);
    [[nodiscard]] bool fits() const noexcept { return !overflow_; }

    // Reading, in order: false when the field is missing, truncated or
    // longer than max.
    bool get_u8(std::uint8_t* v);
    bool get_u32(std::uint32_t* v);
    bool get_str(std::size_t max, std::string* out);
    bool get_secret(std::size_t max, mctp::Secret* out);
    // Every octet of the payload was read.
    [[nodiscard]] bool at_end() const noexcept { return pos_ == size_; }

    // The whole message (header included) to send.
    [[nodiscard]] std::string_view wire() const noexcept;

private:
    friend Received receive(int fd, Message* m, Clock::time_point deadline, std::string* why);
    bool take(std::size_t n, const char** at);
    // A u16 length and that many octets (at most max), in the buffer.
    bool take_field(std::size_t max, std::string_view* out);
    void set_length() noexcept;

    std::array<char, message_max + 1> buf_{};
    std::size_t size_ = header_size;  // header + payload
    std::size_t pos_ = header_size;
    bool overflow_ = false;
};

// Sends one message. False if it does not fit or the other side is gone;
// with wait false, also when the other side's buffer is full (EAGAIN).
bool send(int fd, const Message& m, bool wait = true);

// receive(): waits until deadline for one message and checks its header
// (version, flags, length, size). malformed: *why says what was wrong.

// What the parent tells the child before it touches the network.
struct Hello {
    bool change_ids = false;  // setgroups/setresgid/setresuid to uid, gid
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::string root;  // chroot into it; empty: no chroot (not root)
    std::string host_name;
    std::string peer;
    std::uint32_t line_max = mctp::limits::line_max_default;
    std::chrono::milliseconds idle_timeout = mctp::limits::idle_timeout_default;
    std::chrono::milliseconds session_timeout = mctp::limits::session_timeout_default;
    std::chrono::milliseconds login_grace_time = mctp::limits::login_grace_time_default;
    std::uint32_t max_auth_failures = mctp::limits::max_auth_failures_default;
    bool tls = false;
    std::string tls_certificate;
    std::string tls_key;
    std::string tls_client_ca;
};

bool send_hello(int fd, const Hello& h);
// False with *why when the message is not a well-formed HELLO.
bool parse_hello(Message& m, Hello* h, std::string* why);

// The child's side: an mctp::Host whose every call is a request to the
// parent. When the parent is gone or answers nonsense the child exits
// (status 1) at once: there is no one left to ask.
class MonitorClient final : public mctp::Host {
public:
    explicit MonitorClient(int fd) : fd_(fd) {}

    // The verdict on the peer, given the TLS client certificate (empty
    // strings without one) and the tls-exporter channel binding (TLS 1.3;
    // empty otherwise).
    mctp::PeerVerdict start(std::string_view tls_subject, std::string_view tls_fingerprint,
                            std::string_view tls_exporter = {});

    mctp::AuthResult authenticate(const mctp::Secret& secret) override;
    mctp::ScramResult scram_first(std::string_view client_first) override;
    mctp::ScramResult scram_final(std::string_view client_final) override;
    mctp::UserVerdict check_user(std::string_view controller, std::string_view user) override;
    mctp::ChangeResult change_password(std::string_view user, std::string_view helo_name,
                                       const mctp::Secret& password) override;
    mctp::ChangeResult test_password(std::string_view user, std::string_view helo_name,
                                     const mctp::Secret& password) override;
    // Every verb: the monitor does them all.
    unsigned offered_operations() override { return mctp::all_operations; }
    unsigned operations(std::string_view controller) override;
    mctp::AccountResult account(mctp::AccountOp op, std::string_view user) override;
    mctp::AccountResult check_password(std::string_view user,
                                       const mctp::Secret& password) override;
    void log(mctp::LogLevel level, std::string_view message) override;
    void log_level(std::uint8_t level, std::string_view message);

private:
    void request(Message& m, Type reply_type, Message* reply);
    mctp::AccountResult account_reply(Message& m, Type reply_type);
    mctp::ChangeResult password_request(Type type, std::string_view user,
                                        std::string_view helo_name, const mctp::Secret& password);
    int fd_;
};

// The parent's side.
struct MonitorSettings {
    unsigned max_auth_failures = mctp::limits::max_auth_failures_default;
    std::chrono::milliseconds auth_failure_delay = mctp::limits::auth_failure_delay_default;
    std::size_t line_max = mctp::limits::line_max_default;
};

// What the monitor needs besides the Host: the verdict on the peer once
// the child reports its TLS client certificate (if any) and tls-exporter
// channel binding (TLS 1.3; empty otherwise), and where an error line
// goes.
struct MonitorBackend {
    mctp::Host& host;
    std::function<mctp::PeerVerdict(const std::string& subject, const std::string& fingerprint,
                                    const std::string& tls_exporter)>
        verdict;
    std::function<void(std::string_view)> error;
};

enum class MonitorEnd {
    child_done,  // the child closed its end (it exited)
    violation,   // a malformed or out-of-order request: the child is not trusted
    timeout,     // the session outlived its deadline
    io_error,
};

// Serves the child's requests on fd until it closes its end, sends
// something it must not, or deadline passes. A state machine of its own:
// START once and first; AUTH only after an accepted START and at most
// max_auth_failures failures; SCRAM_FIRST when AUTH may be sent (it
// abandons an exchange under way), SCRAM_FINAL only right after a
// SCRAM_FIRST that the host answered, each once per exchange;
// CHECK_USER, CHANGE and TEST only after a successful AUTH or a good
// SCRAM proof, for the controller that named, with the user policy
// checked again for CHANGE and TEST. A failed AUTH or SCRAM proof counts as a failure
// and is answered only after auth_failure_delay. OPERATIONS, ACCOUNT and
// CHECK only after AUTH too; ACCOUNT and CHECK for a verb the controller
// may use (else refused and logged), for a user it may manage, at most
// mctp::account_changes_max ACCOUNT and mctp::password_checks_max CHECK
// per session (one more ends it); a CHECK that does not match is answered
// only after auth_failure_delay. Every reason to end is given to backend.error.
MonitorEnd serve(int fd, const MonitorBackend& backend, const MonitorSettings& settings,
                 Clock::time_point deadline);

}  // namespace mpasswdd::privsep
