// The MCTP session state machine of mpasswd-protocol(7). Lines and events
// in, one reply per event out. No sockets, no PAM, no clocks: the host it
// runs on is reached through the Host interface, which tests replace.
#pragma once

#include <chrono>
#include <cstddef>
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

    SessionSettings settings_;
    Host& host_;
    std::string peer_;
    State state_ = State::connected;

    std::string helo_name_;
    std::string controller_;
    // The AUTH SCRAM exchange: waiting for the client-final message, or
    // for the empty line after server-final.
    enum class Sasl { none, first, last } sasl_ = Sasl::none;
    std::string sasl_mechanism_;
    std::string sasl_controller_;
    unsigned auth_failures_ = 0;

    // The pending change, or the pending TEST (test_).
    std::string user_;
    bool test_ = false;
    Secret password_;
    std::size_t data_lines_ = 0;
    bool data_overflow_ = false;
};

}  // namespace mctp
