// The MCTP session state machine of mpasswd-protocol(7). Lines and events
// in, one reply per event out. No sockets, no PAM, no clocks: the host it
// runs on is reached through the Host interface, which tests replace.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "limits.hpp"
#include "reply.hpp"
#include "secret.hpp"

namespace mctp {

enum class State { connected, greeted, authed, pending, receiving, closed };
std::string_view to_string(State s);

enum class LogLevel { debug, info, notice, warning };

// What the connecting peer is, decided before the banner.
enum class PeerVerdict {
    accepted,  // some controller entry may connect from this peer
    rejected,  // no controller entry matches the peer: 521
    disabled,  // the service is switched off: 421
    locked,    // too many failed AUTHs from the peer's address lately: 421
};

// What checking a secret gave.
struct AuthResult {
    enum class Kind {
        accepted,  // `controller` holds this secret: 250
        rejected,  // no controller entry allowed from the peer holds it: 530
        locked,    // not checked: too many failed AUTHs from the peer's address: 421
    } kind = Kind::rejected;
    std::string controller;
};

// One step of an AUTH SCRAM-SHA-256 exchange, as the host answers it.
// The messages are the raw SASL ones (the session adds the base64).
struct ScramResult {
    enum class Kind {
        next,      // `message` is the server-first or server-final message
        rejected,  // a wrong proof, an unknown controller or a bad message: 530
        locked,    // not checked: too many failed AUTHs from the peer's address: 421
    } kind = Kind::rejected;
    std::string message;
    std::string controller;  // after a good proof: who
};

enum class UserVerdict {
    allowed,
    unknown,    // no such user: 551
    forbidden,  // exists but policy forbids managing it: 530
};

struct ChangeResult {
    enum class Kind {
        changed,    // 250
        refused,    // the PAM policy refused the password: 554
        failed,     // temporary or local failure: 451
        unknown,    // PAM does not know the user: 551
        forbidden,  // PAM denied permission: 530
    } kind;
    std::string message;  // PAM's own words, never the password
};

// Reply codes of the account operations (mpasswd-protocol(7)): the host
// does not offer this verb; the account has no line in the host's local
// shadow database.
inline constexpr Code not_offered = static_cast<Code>(502);
inline constexpr Code no_local_account = static_cast<Code>(550);

// The verbs a controller entry may be allowed (mpasswdd.conf(5),
// `operations`), as bits.
enum Operation : unsigned {
    op_vrfy = 1U << 0,
    op_test = 1U << 1,
    op_chpw = 1U << 2,
    op_expr = 1U << 3,
    op_lock = 1U << 4,
    op_unlk = 1U << 5,
    op_chck = 1U << 6,
};
inline constexpr unsigned default_operations = op_vrfy | op_test | op_chpw;
inline constexpr unsigned account_operations = op_expr | op_lock | op_unlk | op_chck;
inline constexpr unsigned all_operations = default_operations | account_operations;
// The bit of a verb (upper case, as in the configuration), or 0.
unsigned operation_bit(std::string_view verb) noexcept;
// "VRFY TEST CHPW", in that order.
std::string operation_names(unsigned ops);

// Per session: at most this many EXPR, LOCK and UNLK, and this many CHCK
// (each a yescrypt run on the host); one more is 421 and the close.
inline constexpr unsigned account_changes_max = 64;
inline constexpr unsigned password_checks_max = 32;

// EXPR, LOCK, UNLK.
enum class AccountOp : std::uint8_t { expire = 0, lock = 1, unlock = 2 };

struct AccountResult {
    enum class Kind {
        done,       // 250 (CHCK: the current password)
        already,    // 250 "already ...": nothing to change
        mismatch,   // CHCK: not the current password: 554
        not_local,  // no line in the local shadow database: 550
        failed,     // temporary or local failure (lock busy, ambiguous line): 451
        unknown,    // 551
        forbidden,  // 530
    } kind = Kind::failed;
    std::string message;  // never a password or a hash
};

// What the session asks of the host it runs on.
class Host {
public:
    virtual ~Host() = default;
    // Which controller's secret this is, if any; or that the peer's
    // address may not try one now.
    virtual AuthResult authenticate(const Secret& secret) = 0;
    // AUTH SCRAM-SHA-256 (mpasswd-protocol(7)): the client-first message
    // in, the server-first message out (next), for the controller it
    // names; a host that does not do SCRAM rejects it. A new scram_first
    // abandons an exchange under way.
    virtual ScramResult scram_first(std::string_view /*client_first*/) { return {}; }
    // The client-final message in: on a good proof the server-final
    // message (next) and the controller's name. Ends the exchange.
    virtual ScramResult scram_final(std::string_view /*client_final*/) { return {}; }
    virtual UserVerdict check_user(std::string_view controller, std::string_view user) = 0;
    virtual ChangeResult change_password(std::string_view user, std::string_view helo_name,
                                         const Secret& password) = 0;
    // TEST: would the host's checks accept this password? Checks only,
    // stores nothing (Kind::changed means acceptable).
    virtual ChangeResult test_password(std::string_view user, std::string_view helo_name,
                                       const Secret& password) = 0;
    // The account verbs this host offers (EHLO; others get 502).
    virtual unsigned offered_operations() { return default_operations; }
    // The verbs the authenticated controller may use (others get 530).
    virtual unsigned operations(std::string_view /*controller*/) { return default_operations; }
    // EXPR, LOCK, UNLK for a user check_user allowed.
    virtual AccountResult account(AccountOp /*op*/, std::string_view /*user*/) { return {}; }
    // CHCK: is this the user's current password? done or mismatch.
    virtual AccountResult check_password(std::string_view /*user*/,
                                         const Secret& /*password*/) {
        return {};
    }
    // One line for the log. Never given a secret or a password.
    virtual void log(LogLevel level, std::string_view message) = 0;
};

struct SessionSettings {
    std::string host_name = "localhost";
    std::size_t line_max = limits::line_max_default;
    unsigned max_auth_failures = limits::max_auth_failures_default;
    std::chrono::milliseconds auth_failure_delay = limits::auth_failure_delay_default;
    // EHLO offers SCRAM-SHA-256-PLUS (TLS 1.3: the host has this
    // connection's tls-exporter channel binding).
    bool scram_plus = false;
};

class Session {
public:
    Session(SessionSettings settings, Host& host, std::string peer);

    // The banner (220), or 521/421 and close.
    Reply start(PeerVerdict verdict);
    // One complete input line (terminator removed).
    Reply on_line(std::string_view line);
    // An input line longer than line_max (its rest is discarded).
    Reply on_overflow();
    // No input for idle_timeout, or the session outlived session_timeout.
    Reply on_timeout();
    // No successful AUTH within the login grace time since connect.
    Reply on_login_timeout();
    // The peer closed the connection (or it broke).
    void on_end_of_input();

    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] bool closed() const noexcept { return state_ == State::closed; }
    [[nodiscard]] const SessionSettings& settings() const noexcept { return settings_; }
    // In an AUTH exchange: every input line may be up to sasl_line_max.
    [[nodiscard]] bool long_lines() const noexcept { return sasl_ != Sasl::none; }

private:
    struct Command;
    friend struct CommandTable;

    Reply dispatch(std::string_view line);
    Reply on_data_line(std::string_view line);
    Reply finish_data();
    Reply reply(Code code, std::string text);
    Reply close_with(Code code, std::string text);
    std::optional<Reply> check_user(std::string_view verb, std::string_view name);
    void set_state(State next);
    void drop_transaction() noexcept;

    Reply on_sasl_line(std::string_view line);
    Reply auth_scram(std::string_view mechanism, std::string_view initial);
    Reply auth_failed(std::string_view mechanism);
    Reply auth_locked();
    Reply greet(std::string_view verb, std::string_view arg);
    Reply cmd_helo(std::string_view arg);
    Reply cmd_ehlo(std::string_view arg);
    Reply cmd_auth(std::string_view arg);
    Reply cmd_vrfy(std::string_view arg);
    Reply cmd_chpw(std::string_view arg);
    Reply cmd_test(std::string_view arg);
    Reply cmd_data(std::string_view arg);
    Reply cmd_rset(std::string_view arg);
    Reply cmd_noop(std::string_view arg);
    Reply cmd_quit(std::string_view arg);
    Reply cmd_help(std::string_view arg);
    Reply cmd_expr(std::string_view arg);
    Reply cmd_lock(std::string_view arg);
    Reply cmd_unlk(std::string_view arg);
    Reply cmd_chck(std::string_view arg);
    Reply account_verb(std::string_view verb, AccountOp op, std::string_view arg);
    // 502 when the host does not offer the verb, 530 (and a log line) when
    // the controller may not use it.
    std::optional<Reply> check_operation(std::string_view verb, unsigned bit);
    Reply finish_check(const std::string& user);

    SessionSettings settings_;
    Host& host_;
    std::string peer_;
    State state_ = State::connected;

    std::string helo_name_;
    std::string controller_;
    unsigned operations_ = 0;  // what controller_ may use
    // The AUTH SCRAM exchange: waiting for the client-final message, or
    // for the empty line after server-final.
    enum class Sasl { none, first, last } sasl_ = Sasl::none;
    std::string sasl_mechanism_;
    std::string sasl_controller_;
    unsigned auth_failures_ = 0;

    // The pending change, TEST or CHCK.
    enum class Pending { change, test, check };
    std::string user_;
    Pending pending_ = Pending::change;
    // Per session (RSET keeps them): EXPR/LOCK/UNLK and CHCK so far.
    unsigned account_changes_ = 0;
    unsigned password_checks_ = 0;
    Secret password_;
    std::size_t data_lines_ = 0;
    bool data_overflow_ = false;
};

}  // namespace mctp
