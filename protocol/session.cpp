#include "session.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "dot.hpp"
#include "scram.hpp"
#include "limits.hpp"
#include "text.hpp"

namespace mctp {

std::string_view to_string(State s) {
    switch (s) {
    case State::connected: return "CONNECTED";
    case State::greeted: return "GREETED";
    case State::authed: return "AUTHED";
    case State::pending: return "PENDING";
    case State::receiving: return "RECEIVING";
    case State::closed: return "CLOSED";
    }
    return "?";
}

namespace {

constexpr std::array<std::pair<std::string_view, unsigned>, 7> operation_table{{
    {"VRFY", op_vrfy}, {"TEST", op_test}, {"CHPW", op_chpw}, {"EXPR", op_expr},
    {"LOCK", op_lock}, {"UNLK", op_unlk}, {"CHCK", op_chck},
}};

}  // namespace

unsigned operation_bit(std::string_view verb) noexcept {
    for (const auto& [name, bit] : operation_table) {
        if (name == verb) {
            return bit;
        }
    }
    return 0;
}

std::string operation_names(unsigned ops) {
    std::string out;
    for (const auto& [name, bit] : operation_table) {
        if ((ops & bit) != 0) {
            out += (out.empty() ? "" : " ") + std::string(name);
        }
    }
    return out;
}

namespace {

constexpr const char* locked_text =
    "too many authentication failures from your address; try later";

constexpr unsigned bit(State s) { return 1U << static_cast<unsigned>(s); }
constexpr unsigned any_state =
    bit(State::connected) | bit(State::greeted) | bit(State::authed) | bit(State::pending);

// required: one argument; sasl: a mechanism, or a mechanism and an
// initial response, or (the old AUTH) a secret.
enum class Arg { none, required, sasl };

constexpr std::string_view scram_mech = "SCRAM-SHA-256";
constexpr std::size_t scram_first_max = 512;
constexpr std::string_view scram_plus_mech = "SCRAM-SHA-256-PLUS";

bool same_upper(std::string_view a, std::string_view upper) {
    return a.size() == upper.size() &&
           std::equal(a.begin(), a.end(), upper.begin(), [](char x, char y) {
               return std::toupper(static_cast<unsigned char>(x)) == y;
           });
}

std::string_view result_word(UserVerdict v) {
    switch (v) {
    case UserVerdict::allowed: return "allowed";
    case UserVerdict::unknown: return "unknown user";
    case UserVerdict::forbidden: return "forbidden by policy";
    }
    return "?";
}


// Why a command is out of sequence, from the state order alone: either
// the session has not reached the command's first state (name the missing
// step) or it is past the command's last one (say what was done).
std::string_view wrong_state_reason(unsigned allowed, State now) {
    constexpr std::array<std::string_view, 4> missing{
        "", "send HELO first", "authenticate first",
        "no pending change; send CHPW, TEST or CHCK first"};
    // Indexed by the command's last allowed state.
    constexpr std::array<std::string_view, 4> done{
        "already greeted; RSET first", "already authenticated",
        "a change or test is already pending; send DATA or RSET", "not allowed now"};
    const auto at = static_cast<unsigned>(now);
    unsigned first = 0;
    while (first < missing.size() && (allowed & (1U << first)) == 0) {
        ++first;
    }
    if (first < missing.size() && at < first) {
        return missing[first];
    }
    unsigned last = first;
    while (last + 1 < done.size() && (allowed & (1U << (last + 1))) != 0) {
        ++last;
    }
    return done[last];
}

}  // namespace

// The command table: verb, argument rule, states it is allowed in, and
// the handler. Checks run in this order: verb (500), argument (501),
// state (503), then the handler.
struct Session::Command {
    std::string_view verb;
    Arg arg;
    unsigned allowed;
    Reply (Session::*handler)(std::string_view);
};

struct CommandTable {
    static constexpr std::array<Session::Command, 15> commands{{
        {"HELO", Arg::required, bit(State::connected), &Session::cmd_helo},
        {"EHLO", Arg::required, bit(State::connected), &Session::cmd_ehlo},
        {"AUTH", Arg::sasl, bit(State::greeted), &Session::cmd_auth},
        {"VRFY", Arg::required, bit(State::authed) | bit(State::pending), &Session::cmd_vrfy},
        {"CHPW", Arg::required, bit(State::authed), &Session::cmd_chpw},
        {"TEST", Arg::required, bit(State::authed), &Session::cmd_test},
        {"EXPR", Arg::required, bit(State::authed), &Session::cmd_expr},
        {"LOCK", Arg::required, bit(State::authed), &Session::cmd_lock},
        {"UNLK", Arg::required, bit(State::authed), &Session::cmd_unlk},
        {"CHCK", Arg::required, bit(State::authed), &Session::cmd_chck},
        {"DATA", Arg::none, bit(State::pending), &Session::cmd_data},
        {"RSET", Arg::none, any_state, &Session::cmd_rset},
        {"NOOP", Arg::none, any_state, &Session::cmd_noop},
        {"QUIT", Arg::none, any_state, &Session::cmd_quit},
        {"HELP", Arg::none, any_state, &Session::cmd_help},
    }};

    static const Session::Command* find(std::string_view verb) {
        for (const auto& c : commands) {
            if (same_upper(verb, c.verb)) {
                return &c;
            }
        }
        return nullptr;
    }
};

Session::Session(SessionSettings settings, Host& host, std::string peer)
    : settings_(std::move(settings)), host_(host), peer_(std::move(peer)) {}

Reply Session::reply(Code code, std::string text) { return Reply{code, std::move(text)}; }

Reply Session::close_with(Code code, std::string text) {
    drop_transaction();
    set_state(State::closed);
    Reply r{code, std::move(text)};
    r.close = true;
    return r;
}

void Session::set_state(State next) {
    if (next != state_) {
        host_.log(LogLevel::debug,
                  std::string(to_string(state_)) + " -> " + std::string(to_string(next)));
        state_ = next;
    }
}

void Session::drop_transaction() noexcept {
    sasl_ = Sasl::none;
    sasl_controller_.clear();
    user_.clear();
    pending_ = Pending::change;
    password_.clear();
    data_lines_ = 0;
    data_overflow_ = false;
}

Reply Session::start(PeerVerdict verdict) {
    switch (verdict) {
    case PeerVerdict::accepted:
        host_.log(LogLevel::info, "connect from " + peer_);
        return reply(Code::ready, settings_.host_name + " MCTP ready");
    case PeerVerdict::rejected:
        host_.log(LogLevel::notice, "connect from " + peer_ + " refused: no controller entry");
        return close_with(Code::controller_rejected,
                          settings_.host_name + " no controller entry for " + peer_);
    case PeerVerdict::disabled:
        host_.log(LogLevel::notice, "connect from " + peer_ + " refused: service disabled");
        return close_with(Code::unavailable, settings_.host_name + " service disabled");
    case PeerVerdict::locked:
        host_.log(LogLevel::notice, "connect from " + peer_ +
                                        " refused: too many authentication failures from this "
                                        "address (locked out)");
        return close_with(Code::unavailable, settings_.host_name + " " + locked_text);
    }
    return close_with(Code::unavailable, settings_.host_name + " service not available");
}

Reply Session::on_line(std::string_view line) {
    if (state_ == State::closed) {
        return reply(Code::bad_sequence, "session closed");
    }
    if (state_ == State::receiving) {
        return on_data_line(line);
    }
    if (sasl_ != Sasl::none) {
        return on_sasl_line(line);
    }
    return dispatch(line);
}

Reply Session::on_overflow() {
    if (state_ == State::receiving) {
        // Keep reading data: the transaction fails at ".".
        data_overflow_ = true;
        password_.clear();
        host_.log(LogLevel::notice, "data line too long for user " + user_);
        return reply(Code::syntax_error, "line too long; the change will be refused");
    }
    if (sasl_ != Sasl::none) {
        sasl_ = Sasl::none;
        host_.log(LogLevel::notice, "AUTH " + sasl_mechanism_ +
                                        " response line too long; exchange abandoned");
        return reply(Code::syntax_error, "line too long (at most " +
                                             std::to_string(sasl_line_max) +
                                             " octets); AUTH abandoned");
    }
    host_.log(LogLevel::notice, "command line too long");
    return reply(Code::syntax_error,
                 "line too long (at most " + std::to_string(settings_.line_max) + " octets)");
}

Reply Session::on_login_timeout() {
    if (state_ == State::closed) {
        return reply(Code::unavailable, settings_.host_name + " timeout");
    }
    host_.log(LogLevel::notice, "no successful AUTH within the login grace time");
    return close_with(Code::unavailable,
                      settings_.host_name + " login grace time over; authenticate sooner");
}

Reply Session::on_timeout() {
    if (state_ == State::closed) {
        return reply(Code::unavailable, settings_.host_name + " timeout");
    }
    host_.log(LogLevel::notice, state_ == State::receiving
                                    ? "timeout while receiving data; nothing changed"
                                    : "timeout");
    return close_with(Code::unavailable, settings_.host_name + " timeout");
}

void Session::on_end_of_input() {
    if (state_ == State::closed) {
        return;
    }
    host_.log(LogLevel::info, state_ == State::receiving
                                  ? "connection closed during DATA; nothing changed"
                                  : "connection closed by peer");
    drop_transaction();
    set_state(State::closed);
}

Reply Session::dispatch(std::string_view line) {
    if (!is_printable_ascii(line)) {
        return reply(Code::syntax_error, "command lines are printable ASCII");
    }
    const std::string_view verb = line.substr(0, line.find(' '));
    const Command* cmd = CommandTable::find(verb);
    if (cmd == nullptr) {
        return reply(Code::unknown_command, "command unrecognized");
    }
    std::string_view arg;
    if (line.size() > 4) {
        arg = line.substr(5);
    }
    if (cmd->arg == Arg::none && line.size() > 4) {
        return reply(Code::syntax_error, std::string(cmd->verb) + " takes no argument");
    }
    if (cmd->arg == Arg::required && !is_argument(arg)) {
        return reply(Code::syntax_error,
                     std::string(cmd->verb) + " needs one argument after one space");
    }
    if (cmd->arg == Arg::sasl) {
        const auto sp = arg.find(' ');
        if (!is_argument(arg.substr(0, sp)) ||
            (sp != std::string_view::npos && !is_argument(arg.substr(sp + 1)))) {
            return reply(Code::syntax_error,
                         "AUTH needs a mechanism and its initial response, or a secret");
        }
    }
    if ((cmd->allowed & bit(state_)) == 0) {
        return reply(Code::bad_sequence, std::string(wrong_state_reason(cmd->allowed, state_)));
    }
    return (this->*(cmd->handler))(arg);
}

Reply Session::cmd_helo(std::string_view arg) { return greet("HELO", arg); }

Reply Session::greet(std::string_view verb, std::string_view arg) {
    if (!is_helo_name(arg)) {
        return reply(Code::syntax_error, std::string(verb) + " needs a host name");
    }
    helo_name_ = arg;
    host_.log(LogLevel::info, std::string(verb) + " " + helo_name_);
    set_state(State::greeted);
    return reply(Code::ok, settings_.host_name + " hello " + helo_name_ + " [" + peer_ + "]");
}

Reply Session::cmd_ehlo(std::string_view arg) {
    Reply r = greet("EHLO", arg);
    if (r.code != Code::ok) {
        return r;
    }
    r.more.push_back(settings_.scram_plus ? std::string("AUTH ") + std::string(scram_mech) + " " +
                                                std::string(scram_plus_mech)
                                          : std::string("AUTH ") + std::string(scram_mech));
    r.more.emplace_back("TEST");
    const unsigned offered = host_.offered_operations();
    for (const unsigned op : {op_chck, op_expr, op_lock, op_unlk}) {
        if ((offered & op) != 0) {
            r.more.push_back(operation_names(op));
        }
    }
    // Lines may come before the replies to those ahead of them: each is
    // read and answered in turn (mpasswd-protocol(7), PIPELINING).
    r.more.emplace_back("PIPELINING");
    r.more.push_back("LINEMAX " + std::to_string(settings_.line_max));
    return r;
}

Reply Session::auth_locked() {
    host_.log(LogLevel::notice, "AUTH from " + peer_ +
                                    " not checked: too many authentication failures from "
                                    "this address (locked out)");
    return close_with(Code::unavailable, settings_.host_name + " " + locked_text);
}

Reply Session::auth_failed(std::string_view mechanism) {
    ++auth_failures_;
    host_.log(LogLevel::notice, "AUTH " + std::string(mechanism) + "failed (" +
                                    std::to_string(auth_failures_) + " of " +
                                    std::to_string(settings_.max_auth_failures) + ")");
    Reply r = auth_failures_ >= settings_.max_auth_failures
                  ? close_with(Code::unavailable,
                               settings_.host_name + " too many authentication failures")
                  : reply(Code::access_denied, "authentication failed");
    r.delay = settings_.auth_failure_delay;
    return r;
}

Reply Session::auth_scram(std::string_view mechanism, std::string_view initial) {
    const bool plus = same_upper(mechanism, scram_plus_mech);
    sasl_mechanism_ = plus ? scram_plus_mech : scram_mech;
    if (plus && !settings_.scram_plus) {
        return reply(Code::syntax_error,
                     std::string(scram_plus_mech) + " is not offered on this connection");
    }
    auto client_first = scram::unbase64(initial);
    if (!client_first || client_first->empty()) {
        return reply(Code::syntax_error, "the initial response is not base64");
    }
    // So that the server-first message, which repeats the client's nonce,
    // fits in a 334 line.
    if (client_first->size() > scram_first_max) {
        return reply(Code::syntax_error, "the client-first message is longer than " +
                                             std::to_string(scram_first_max) + " octets");
    }
    // The mechanism and the client's channel binding flag must agree.
    if (plus != client_first->starts_with("p=")) {
        return reply(Code::syntax_error,
                     plus ? "SCRAM-SHA-256-PLUS needs channel binding (p=tls-exporter)"
                          : "SCRAM-SHA-256 without -PLUS takes no channel binding");
    }
    ScramResult r = host_.scram_first(*client_first);
    switch (r.kind) {
    case ScramResult::Kind::next: break;
    case ScramResult::Kind::locked: return auth_locked();
    case ScramResult::Kind::rejected: return auth_failed(sasl_mechanism_ + " ");
    }
    sasl_ = Sasl::first;
    Reply out = reply(Code::auth_challenge, scram::base64(r.message));
    out.long_line = true;
    return out;
}

Reply Session::on_sasl_line(std::string_view line) {
    const Sasl at = sasl_;
    sasl_ = Sasl::none;  // unless the exchange goes on
    if (line == "*") {
        host_.log(LogLevel::info, "AUTH " + sasl_mechanism_ + " cancelled by the client");
        return reply(Code::syntax_error, "AUTH cancelled");
    }
    const std::string_view verb = line.substr(0, line.find(' '));
    if (CommandTable::find(verb) != nullptr) {
        host_.log(LogLevel::notice, "a command in the middle of AUTH " + sasl_mechanism_ +
                                        "; exchange abandoned");
        return reply(Code::bad_sequence, "a command in the middle of AUTH; AUTH abandoned");
    }
    if (at == Sasl::last) {
        if (!line.empty()) {
            host_.log(LogLevel::notice, "AUTH " + sasl_mechanism_ +
                                            ": not an empty line after the server's "
                                            "signature; exchange abandoned");
            return reply(Code::syntax_error,
                         "expected an empty line after the signature; AUTH abandoned");
        }
        controller_ = std::move(sasl_controller_);
        sasl_controller_.clear();
        operations_ = host_.operations(controller_);
        host_.log(LogLevel::info, "AUTH ok: controller " + controller_ + " (" +
                                      sasl_mechanism_ + ")");
        set_state(State::authed);
        return reply(Code::ok, "authenticated as " + controller_);
    }
    auto client_final = scram::unbase64(line);
    if (!client_final || client_final->empty()) {
        host_.log(LogLevel::notice, "AUTH " + sasl_mechanism_ +
                                        ": the response is not base64; exchange abandoned");
        return reply(Code::syntax_error, "the response is not base64; AUTH abandoned");
    }
    ScramResult r = host_.scram_final(*client_final);
    switch (r.kind) {
    case ScramResult::Kind::next: break;
    case ScramResult::Kind::locked: return auth_locked();
    case ScramResult::Kind::rejected: return auth_failed(sasl_mechanism_ + " ");
    }
    if (r.controller.empty()) {
        return auth_failed(sasl_mechanism_ + " ");
    }
    sasl_ = Sasl::last;
    sasl_controller_ = std::move(r.controller);
    Reply out = reply(Code::auth_challenge, scram::base64(r.message));
    out.long_line = true;
    return out;
}

Reply Session::cmd_auth(std::string_view arg) {
    if (const auto sp = arg.find(' '); sp != std::string_view::npos) {
        const std::string_view mech = arg.substr(0, sp);
        if (same_upper(mech, scram_mech) || same_upper(mech, scram_plus_mech)) {
            return auth_scram(mech, arg.substr(sp + 1));
        }
        return reply(Code::syntax_error, "unknown mechanism; EHLO lists them");
    }
    if (same_upper(arg, scram_mech) || same_upper(arg, scram_plus_mech)) {
        return reply(Code::syntax_error,
                     "give the client-first message on the AUTH line (AUTH " +
                         std::string(scram_mech) + " <base64>)");
    }
    // The SASL exception to line_max is for SASL only.
    if (arg.size() + 7 > settings_.line_max) {
        host_.log(LogLevel::notice, "command line too long");
        return reply(Code::syntax_error, "line too long (at most " +
                                             std::to_string(settings_.line_max) + " octets)");
    }
    const Secret secret(arg);
    AuthResult result = host_.authenticate(secret);
    if (result.kind == AuthResult::Kind::accepted) {
        controller_ = std::move(result.controller);
        operations_ = host_.operations(controller_);
        host_.log(LogLevel::info, "AUTH ok: controller " + controller_);
        set_state(State::authed);
        return reply(Code::ok, "authenticated as " + controller_);
    }
    if (result.kind == AuthResult::Kind::locked) {
        return auth_locked();
    }
    return auth_failed("");
}

// VRFY and CHPW: the user name, then the host's verdict. Returns the
// refusal, or nothing when the user may be managed.
std::optional<Reply> Session::check_user(std::string_view verb, std::string_view name) {
    if (!is_user_name(name)) {
        return reply(Code::syntax_error, "not a valid user name");
    }
    const std::string user(name);
    const UserVerdict v = host_.check_user(controller_, user);
    host_.log(LogLevel::info, std::string(verb) + " " + user + ": " + std::string(result_word(v)));
    switch (v) {
    case UserVerdict::allowed: return std::nullopt;
    case UserVerdict::unknown: return reply(Code::user_unknown, user + " unknown");
    case UserVerdict::forbidden: break;
    }
    return reply(Code::access_denied, user + " may not be managed from here");
}

std::optional<Reply> Session::check_operation(std::string_view verb, unsigned op) {
    if ((op & account_operations) != 0 && (host_.offered_operations() & op) == 0) {
        return reply(not_offered, std::string(verb) + " is not offered by this host");
    }
    if ((operations_ & op) == 0) {
        host_.log(LogLevel::notice, std::string(verb) + " refused: controller " + controller_ +
                                        " may not use it (operations: " +
                                        operation_names(operations_) + ")");
        return reply(Code::access_denied,
                     "controller " + controller_ + " may not use " + std::string(verb) + " here");
    }
    return std::nullopt;
}

Reply Session::cmd_vrfy(std::string_view arg) {
    if (auto refused = check_operation("VRFY", op_vrfy)) {
        return std::move(*refused);
    }
    if (auto refused = check_user("VRFY", arg)) {
        return std::move(*refused);
    }
    return reply(Code::ok, std::string(arg) + " may be managed");
}

Reply Session::cmd_chpw(std::string_view arg) {
    if (auto refused = check_operation("CHPW", op_chpw)) {
        return std::move(*refused);
    }
    if (auto refused = check_user("CHPW", arg)) {
        return std::move(*refused);
    }
    user_ = arg;
    pending_ = Pending::change;
    set_state(State::pending);
    return reply(Code::ok, "change for " + user_ + " pending; send DATA");
}

Reply Session::cmd_test(std::string_view arg) {
    if (auto refused = check_operation("TEST", op_test)) {
        return std::move(*refused);
    }
    if (auto refused = check_user("TEST", arg)) {
        return std::move(*refused);
    }
    user_ = arg;
    pending_ = Pending::test;
    set_state(State::pending);
    return reply(Code::ok, "test for " + user_ + " pending; send DATA");
}

Reply Session::cmd_expr(std::string_view arg) {
    return account_verb("EXPR", AccountOp::expire, arg);
}
Reply Session::cmd_lock(std::string_view arg) {
    return account_verb("LOCK", AccountOp::lock, arg);
}
Reply Session::cmd_unlk(std::string_view arg) {
    return account_verb("UNLK", AccountOp::unlock, arg);
}

namespace {

std::string account_done_text(AccountOp op, const std::string& user, bool already) {
    const std::string a = already ? "already " : "";
    switch (op) {
    case AccountOp::expire:
        return user + " " + a + "must change the password at the next login";
    case AccountOp::lock: return user + " " + a + "locked (password and account)";
    case AccountOp::unlock: return user + " " + a + "unlocked";
    }
    return user;
}

}  // namespace

Reply Session::account_verb(std::string_view verb, AccountOp op, std::string_view arg) {
    const unsigned bit_of[] = {op_expr, op_lock, op_unlk};
    if (auto refused = check_operation(verb, bit_of[static_cast<unsigned>(op)])) {
        return std::move(*refused);
    }
    const std::string v(verb);
    if (account_changes_ >= account_changes_max) {
        host_.log(LogLevel::notice, v + " refused: more than " +
                                        std::to_string(account_changes_max) +
                                        " EXPR/LOCK/UNLK in one session");
        return close_with(Code::unavailable,
                          settings_.host_name + " too many account operations in one session (" +
                              std::to_string(account_changes_max) + "); connect again");
    }
    ++account_changes_;
    if (auto refused = check_user(verb, arg)) {
        return std::move(*refused);
    }
    const std::string user(arg);
    const AccountResult r = host_.account(op, user);
    const std::string msg = printable_ascii(r.message);
    switch (r.kind) {
    case AccountResult::Kind::done:
    case AccountResult::Kind::already: {
        const bool already = r.kind == AccountResult::Kind::already;
        host_.log(LogLevel::notice, v + " " + user + ": " + (already ? "already so" : "done") +
                                        (msg.empty() ? "" : " (" + msg + ")"));
        return reply(Code::ok, account_done_text(op, user, already));
    }
    case AccountResult::Kind::not_local:
        host_.log(LogLevel::notice, v + " " + user + ": no line in the local shadow database");
        return reply(no_local_account,
                     user + " has no local shadow entry here; nothing changed");
    case AccountResult::Kind::unknown:
        host_.log(LogLevel::notice, v + " " + user + ": unknown user");
        return reply(Code::user_unknown, user + " unknown");
    case AccountResult::Kind::forbidden:
        host_.log(LogLevel::notice, v + " " + user + ": refused by the host: " + msg);
        return reply(Code::access_denied, user + " may not be managed from here");
    case AccountResult::Kind::mismatch:
    case AccountResult::Kind::failed: break;
    }
    host_.log(LogLevel::warning, v + " " + user + " failed: " + msg + "; nothing changed");
    return reply(Code::local_error, v + " aborted: " +
                                        (msg.empty() ? std::string("local error") : msg) +
                                        "; nothing changed");
}

Reply Session::cmd_chck(std::string_view arg) {
    if (auto refused = check_operation("CHCK", op_chck)) {
        return std::move(*refused);
    }
    if (password_checks_ >= password_checks_max) {
        host_.log(LogLevel::notice, "CHCK refused: more than " +
                                        std::to_string(password_checks_max) +
                                        " in one session");
        return close_with(Code::unavailable,
                          settings_.host_name + " too many CHCK in one session (" +
                              std::to_string(password_checks_max) + "); connect again");
    }
    ++password_checks_;
    if (auto refused = check_user("CHCK", arg)) {
        return std::move(*refused);
    }
    user_ = arg;
    pending_ = Pending::check;
    set_state(State::pending);
    return reply(Code::ok, "check for " + user_ + " pending; send DATA");
}

Reply Session::finish_check(const std::string& user) {
    const AccountResult r = host_.check_password(user, password_);
    drop_transaction();
    set_state(State::authed);
    const std::string msg = printable_ascii(r.message);
    switch (r.kind) {
    case AccountResult::Kind::done:
    case AccountResult::Kind::already:
        host_.log(LogLevel::notice, "CHCK " + user + ": the current password");
        return reply(Code::ok, "the current password of " + user);
    case AccountResult::Kind::mismatch:
        host_.log(LogLevel::notice, "CHCK " + user + ": not the current password");
        return reply(Code::transaction_failed, "not the current password of " + user);
    case AccountResult::Kind::not_local:
        host_.log(LogLevel::notice, "CHCK " + user + ": no line in the local shadow database");
        return reply(no_local_account, user + " has no local shadow entry here");
    case AccountResult::Kind::unknown:
        host_.log(LogLevel::notice, "CHCK " + user + ": unknown user");
        return reply(Code::user_unknown, user + " unknown");
    case AccountResult::Kind::forbidden:
        host_.log(LogLevel::notice, "CHCK " + user + ": refused by the host: " + msg);
        return reply(Code::access_denied, user + " may not be managed from here");
    case AccountResult::Kind::failed: break;
    }
    host_.log(LogLevel::warning, "CHCK " + user + " failed: " + msg);
    return reply(Code::local_error,
                 "check aborted: " + (msg.empty() ? std::string("local error") : msg));
}

Reply Session::cmd_data(std::string_view) {
    password_.clear();
    data_lines_ = 0;
    data_overflow_ = false;
    set_state(State::receiving);
    return reply(Code::start_data, "send the new password, end with \".\" on a line by itself");
}

Reply Session::on_data_line(std::string_view line) {
    if (dot::is_end(line)) {
        return finish_data();
    }
    line = dot::unstuff(line);
    if (data_lines_ < SIZE_MAX) {
        ++data_lines_;
    }
    if (data_lines_ == 1 && !data_overflow_) {
        password_ = Secret(line);
    } else {
        password_.clear();
    }
    return reply(Code::continue_data, "go on");
}

Reply Session::finish_data() {
    const std::string user = user_;
    const bool test = pending_ == Pending::test;
    const bool check = pending_ == Pending::check;
    const std::string what = check ? "check for " : test ? "test for " : "change for ";
    const auto refuse = [&](const std::string& why) {
        host_.log(LogLevel::notice, what + user + " refused: " + why + "; nothing changed");
        drop_transaction();
        set_state(State::authed);
        return reply(Code::syntax_error, why + (check ? "; nothing checked" : "; nothing changed"));
    };
    if (data_overflow_) {
        return refuse("a data line was too long");
    }
    if (data_lines_ != 1) {
        return refuse("expected exactly one password line, got " + std::to_string(data_lines_));
    }
    if (password_.empty()) {
        return refuse("empty password");
    }
    if (!is_password_text(password_.view())) {
        return refuse("password must be UTF-8 without control characters");
    }
    if (check) {
        return finish_check(user);
    }

    ChangeResult result = test ? host_.test_password(user, helo_name_, password_)
                               : host_.change_password(user, helo_name_, password_);
    drop_transaction();
    set_state(State::authed);

    std::string msg = printable_ascii(result.message);
    switch (result.kind) {
    case ChangeResult::Kind::changed:
        if (test) {
            host_.log(LogLevel::notice, "test for " + user + ": password acceptable");
            return reply(Code::ok, "password acceptable for " + user + "; nothing changed");
        }
        host_.log(LogLevel::notice, "password changed for " + user);
        return reply(Code::ok, "password changed for " + user);
    case ChangeResult::Kind::refused:
        host_.log(LogLevel::notice, what + user + " refused by PAM: " + msg);
        return reply(Code::transaction_failed, msg.empty() ? "password refused by policy" : msg);
    case ChangeResult::Kind::unknown:
        host_.log(LogLevel::notice, what + user + " failed: unknown to PAM: " + msg);
        return reply(Code::user_unknown, user + " unknown");
    case ChangeResult::Kind::forbidden:
        host_.log(LogLevel::notice, what + user + " denied by PAM: " + msg);
        return reply(Code::access_denied, msg.empty() ? "permission denied" : msg);
    case ChangeResult::Kind::failed: break;
    }
    host_.log(LogLevel::warning, what + user + " failed: " + msg);
    return reply(Code::local_error, (test ? "test aborted: " : "change aborted: ") +
                                         (msg.empty() ? std::string("local error") : msg));
}

Reply Session::cmd_rset(std::string_view) {
    drop_transaction();
    helo_name_.clear();
    controller_.clear();
    operations_ = 0;
    // auth_failures_ and the operation counts are kept: RSET must not reset the guessing limit.
    set_state(State::connected);
    return reply(Code::ok, "reset; send HELO");
}

Reply Session::cmd_noop(std::string_view) { return reply(Code::ok, "ok"); }

Reply Session::cmd_quit(std::string_view) {
    host_.log(LogLevel::info, "QUIT");
    return close_with(Code::closing, settings_.host_name + " closing");
}

Reply Session::cmd_help(std::string_view) {
    std::string verbs;
    const unsigned offered = host_.offered_operations();
    for (const auto& c : CommandTable::commands) {
        const unsigned op = operation_bit(c.verb);
        if ((op & account_operations) != 0 && (offered & op) == 0) {
            continue;
        }
        verbs += ' ';
        verbs += c.verb;
    }
    return reply(Code::ok, "commands:" + verbs);
}

}  // namespace mctp
