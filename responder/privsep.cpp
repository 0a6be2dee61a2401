#include "privsep.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "limits.hpp"
#include "log.hpp"
#include "text.hpp"

namespace mpasswdd::privsep {
namespace {

using std::chrono::milliseconds;

// The longest peer text (an IPv6 address) and PAM message carried.
constexpr std::size_t peer_max = 128;
constexpr std::size_t fingerprint_max = 64;

[[noreturn]] void parent_gone() {
    // Nothing to clean up that the kernel does not: the secrets this
    // process held go with its memory.
    _exit(1);
}

bool valid_path(std::string_view p, bool may_be_empty) {
    if (p.empty()) {
        return may_be_empty;
    }
    return p.starts_with('/') && p.size() <= path_max && mctp::is_printable_ascii(p);
}

}  // namespace

Message::Message(Type type) {
    buf_[0] = static_cast<char>(version);
    buf_[1] = static_cast<char>(type);
}

Message::~Message() {
    mctp::wipe(buf_.data(), buf_.size());
}

void Message::put_u8(std::uint8_t v) {
    if (overflow_ || size_ + 1 > message_max) {
        overflow_ = true;
        return;
    }
    buf_[size_++] = static_cast<char>(v);
    set_length();
}

void Message::put_u32(std::uint32_t v) {
    if (overflow_ || size_ + 4 > message_max) {
        overflow_ = true;
        return;
    }
    std::memcpy(buf_.data() + size_, &v, 4);
    size_ += 4;
    set_length();
}

void Message::put_str(std::string_view s) {
    if (overflow_ || s.size() > 0xffff || size_ + 2 + s.size() > message_max) {
        overflow_ = true;
        return;
    }
    const auto n = static_cast<std::uint16_t>(s.size());
    std::memcpy(buf_.data() + size_, &n, 2);
    std::memcpy(buf_.data() + size_ + 2, s.data(), s.size());
    size_ += 2 + s.size();
    set_length();
}

bool Message::take(std::size_t n, const char** at) {
    if (size_ - pos_ < n) {
        return false;
    }
    *at = buf_.data() + pos_;
    pos_ += n;
    return true;
}

bool Message::get_u8(std::uint8_t* v) {
    const char* at = nullptr;
    if (!take(1, &at)) {
        return false;
    }
    *v = static_cast<std::uint8_t>(*at);
    return true;
}

bool Message::get_u32(std::uint32_t* v) {
    const char* at = nullptr;
    if (!take(4, &at)) {
        return false;
    }
    std::memcpy(v, at, 4);
    return true;
}

bool Message::take_field(std::size_t max, std::string_view* out) {
    const char* at = nullptr;
    std::uint16_t n = 0;
    if (!take(2, &at)) {
        return false;
    }
    std::memcpy(&n, at, 2);
    if (n > max || !take(n, &at)) {
        return false;
    }
    *out = std::string_view(at, n);
    return true;
}

bool Message::get_str(std::size_t max, std::string* out) {
    std::string_view field;
    if (!take_field(max, &field)) {
        return false;
    }
    out->assign(field);
    return true;
}

bool Message::get_secret(std::size_t max, mctp::Secret* out) {
    std::string_view field;
    if (!take_field(max, &field)) {
        return false;
    }
    *out = mctp::Secret(field);
    return true;
}

void Message::set_length() noexcept {
    const auto len = static_cast<std::uint32_t>(size_ - header_size);
    std::memcpy(buf_.data() + 4, &len, 4);
}

std::string_view Message::wire() const noexcept {
    return {buf_.data(), size_};
}

bool send(int fd, const Message& m, bool wait) {
    if (!m.fits()) {
        return false;
    }
    const std::string_view w = m.wire();
    for (;;) {
        const ssize_t n =
            ::send(fd, w.data(), w.size(), MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT));
        if (n == static_cast<ssize_t>(w.size())) {
            return true;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return false;
    }
}

Received receive(int fd, Message* m, Clock::time_point deadline, std::string* why) {
    pollfd p{fd, POLLIN, 0};
    for (;;) {
        const int wait = millis_until(deadline);
        if (wait == 0) {
            return Received::timeout;
        }
        const int rc = poll(&p, 1, wait);
        if (rc > 0) {
            break;
        }
        if (rc < 0 && errno != EINTR) {
            return Received::error;
        }
    }
    ssize_t n = -1;
    do {
        n = recv(fd, m->buf_.data(), m->buf_.size(), MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == ECONNRESET ? Received::end : Received::error;
    }
    if (n == 0 && (p.revents & (POLLHUP | POLLERR)) != 0) {
        return Received::end;
    }
    const auto size = static_cast<std::size_t>(n);
    if (size > message_max) {
        *why = "a message of " + std::to_string(size) + " octets (at most " +
               std::to_string(message_max) + ")";
        return Received::malformed;
    }
    if (size < header_size) {
        *why = "a message shorter than its header";
        return Received::malformed;
    }
    m->size_ = size;
    m->pos_ = header_size;
    std::uint16_t flags = 0;
    std::uint32_t len = 0;
    std::memcpy(&flags, m->buf_.data() + 2, 2);
    std::memcpy(&len, m->buf_.data() + 4, 4);
    if (static_cast<std::uint8_t>(m->buf_[0]) != version) {
        *why = "message version " + std::to_string(static_cast<unsigned char>(m->buf_[0])) +
               " (this is version " + std::to_string(version) + ")";
        return Received::malformed;
    }
    if (flags != 0) {
        *why = "message flags set";
        return Received::malformed;
    }
    if (len != size - header_size) {
        *why = "a header length of " + std::to_string(len) + " for " +
               std::to_string(size - header_size) + " octets";
        return Received::malformed;
    }
    return Received::ok;
}

bool send_hello(int fd, const Hello& h) {
    Message m(Type::hello);
    m.put_u8(h.change_ids ? 1 : 0);
    m.put_u32(h.uid);
    m.put_u32(h.gid);
    m.put_str(h.root);
    m.put_str(h.host_name);
    m.put_str(h.peer);
    m.put_u32(h.line_max);
    m.put_u32(static_cast<std::uint32_t>(h.idle_timeout.count()));
    m.put_u32(static_cast<std::uint32_t>(h.session_timeout.count()));
    m.put_u32(static_cast<std::uint32_t>(h.login_grace_time.count()));
    m.put_u32(h.max_auth_failures);
    m.put_u8(h.tls ? 1 : 0);
    m.put_str(h.tls_certificate);
    m.put_str(h.tls_key);
    m.put_str(h.tls_client_ca);
    return send(fd, m);
}

bool parse_hello(Message& m, Hello* h, std::string* why) {
    std::uint8_t change_ids = 0;
    std::uint8_t tls = 0;
    std::uint32_t idle = 0;
    std::uint32_t session = 0;
    std::uint32_t grace = 0;
    const bool read = m.type() == Type::hello && m.get_u8(&change_ids) && m.get_u32(&h->uid) &&
                      m.get_u32(&h->gid) && m.get_str(path_max, &h->root) &&
                      m.get_str(mctp::limits::host_name_max, &h->host_name) &&
                      m.get_str(peer_max, &h->peer) && m.get_u32(&h->line_max) &&
                      m.get_u32(&idle) && m.get_u32(&session) && m.get_u32(&grace) &&
                      m.get_u32(&h->max_auth_failures) && m.get_u8(&tls) &&
                      m.get_str(path_max, &h->tls_certificate) &&
                      m.get_str(path_max, &h->tls_key) &&
                      m.get_str(path_max, &h->tls_client_ca) && m.at_end();
    if (!read) {
        *why = "not a HELLO message";
        return false;
    }
    h->change_ids = change_ids != 0;
    h->tls = tls != 0;
    h->idle_timeout = milliseconds(idle);
    h->session_timeout = milliseconds(session);
    h->login_grace_time = milliseconds(grace);
    const auto max_ms = static_cast<std::uint32_t>(mctp::limits::timeout_max.count());
    if (!valid_path(h->root, true) || !mctp::is_helo_name(h->host_name) ||
        !mctp::is_printable_ascii(h->peer) || h->line_max < mctp::limits::line_max_min ||
        h->line_max > mctp::limits::line_max_max || idle == 0 || idle > max_ms ||
        session == 0 || session > max_ms || grace == 0 || grace > max_ms ||
        h->max_auth_failures == 0 || !valid_path(h->tls_certificate, !h->tls) ||
        !valid_path(h->tls_key, !h->tls) || !valid_path(h->tls_client_ca, true)) {
        *why = "a HELLO field out of range";
        return false;
    }
    return true;
}

// The child.

void MonitorClient::request(Message& m, Type reply_type, Message* reply) {
    std::string why;
    if (!send(fd_, m) ||
        receive(fd_, reply, Clock::time_point::max(), &why) != Received::ok ||
        reply->type() != reply_type) {
        parent_gone();
    }
}

mctp::PeerVerdict MonitorClient::start(std::string_view tls_subject,
                                       std::string_view tls_fingerprint,
                                       std::string_view tls_exporter) {
    Message m(Type::start);
    m.put_str(tls_subject.substr(0, text_max));
    m.put_str(tls_fingerprint.substr(0, fingerprint_max));
    m.put_str(tls_exporter.size() == binding_size ? tls_exporter : std::string_view());
    Message reply;
    request(m, Type::verdict, &reply);
    std::uint8_t v = 0;
    if (!reply.get_u8(&v) || !reply.at_end() ||
        v > static_cast<std::uint8_t>(mctp::PeerVerdict::locked)) {
        parent_gone();
    }
    return static_cast<mctp::PeerVerdict>(v);
}

mctp::AuthResult MonitorClient::authenticate(const mctp::Secret& secret) {
    Message m(Type::auth);
    m.put_str(secret.view());
    Message reply;
    request(m, Type::auth_reply, &reply);
    std::uint8_t kind = 0;
    mctp::AuthResult r;
    if (!reply.get_u8(&kind) || !reply.get_str(mctp::limits::helo_name_max, &r.controller) ||
        !reply.at_end() || kind > static_cast<std::uint8_t>(mctp::AuthResult::Kind::locked)) {
        parent_gone();
    }
    r.kind = static_cast<mctp::AuthResult::Kind>(kind);
    return r;
}

namespace {

mctp::ScramResult scram_reply(Message& reply, bool with_controller) {
    std::uint8_t kind = 0;
    mctp::ScramResult r;
    if (!reply.get_u8(&kind) || !reply.get_str(scram_reply_max, &r.message) ||
        (with_controller && !reply.get_str(mctp::limits::helo_name_max, &r.controller)) ||
        !reply.at_end() || kind > static_cast<std::uint8_t>(mctp::ScramResult::Kind::locked)) {
        parent_gone();
    }
    r.kind = static_cast<mctp::ScramResult::Kind>(kind);
    return r;
}

}  // namespace

mctp::ScramResult MonitorClient::scram_first(std::string_view client_first) {
    if (client_first.size() > scram_message_max) {
        return {};
    }
    Message m(Type::scram_first);
    m.put_str(client_first);
    Message reply;
    request(m, Type::scram_first_reply, &reply);
    return scram_reply(reply, false);
}

mctp::ScramResult MonitorClient::scram_final(std::string_view client_final) {
    if (client_final.size() > scram_message_max) {
        return {};
    }
    Message m(Type::scram_final);
    m.put_str(client_final);
    Message reply;
    request(m, Type::scram_final_reply, &reply);
    return scram_reply(reply, true);
}

mctp::UserVerdict MonitorClient::check_user(std::string_view /*controller*/,
                                            std::string_view user) {
    // The parent knows the controller; the child's word is not asked.
    Message m(Type::check_user);
    m.put_str(user);
    Message reply;
    request(m, Type::user_reply, &reply);
    std::uint8_t v = 0;
    if (!reply.get_u8(&v) || !reply.at_end() ||
        v > static_cast<std::uint8_t>(mctp::UserVerdict::forbidden)) {
        parent_gone();
    }
    return static_cast<mctp::UserVerdict>(v);
}

mctp::ChangeResult MonitorClient::change_password(std::string_view user,
                                                  std::string_view helo_name,
                                                  const mctp::Secret& password) {
    return password_request(Type::change, user, helo_name, password);
}

mctp::ChangeResult MonitorClient::test_password(std::string_view user,
                                                std::string_view helo_name,
                                                const mctp::Secret& password) {
    return password_request(Type::test, user, helo_name, password);
}

mctp::ChangeResult MonitorClient::password_request(Type type, std::string_view user,
                                                   std::string_view helo_name,
                                                   const mctp::Secret& password) {
    Message m(type);
    m.put_str(user);
    m.put_str(helo_name);
    m.put_str(password.view());
    Message reply;
    request(m, type == Type::test ? Type::test_reply : Type::change_reply, &reply);
    std::uint8_t kind = 0;
    mctp::ChangeResult r{mctp::ChangeResult::Kind::failed, {}};
    if (!reply.get_u8(&kind) || !reply.get_str(text_max, &r.message) || !reply.at_end() ||
        kind > static_cast<std::uint8_t>(mctp::ChangeResult::Kind::forbidden)) {
        parent_gone();
    }
    r.kind = static_cast<mctp::ChangeResult::Kind>(kind);
    return r;
}

unsigned MonitorClient::operations(std::string_view controller) {
    Message m(Type::operations);
    m.put_str(controller);
    Message reply;
    request(m, Type::operations_reply, &reply);
    std::uint32_t ops = 0;
    if (!reply.get_u32(&ops) || !reply.at_end() || (ops & ~mctp::all_operations) != 0) {
        parent_gone();
    }
    return ops;
}

mctp::AccountResult MonitorClient::account_reply(Message& m, Type reply_type) {
    Message reply;
    request(m, reply_type, &reply);
    std::uint8_t kind = 0;
    mctp::AccountResult r;
    if (!reply.get_u8(&kind) || !reply.get_str(text_max, &r.message) || !reply.at_end() ||
        kind > static_cast<std::uint8_t>(mctp::AccountResult::Kind::forbidden)) {
        parent_gone();
    }
    r.kind = static_cast<mctp::AccountResult::Kind>(kind);
    return r;
}

mctp::AccountResult MonitorClient::account(mctp::AccountOp op, std::string_view user) {
    Message m(Type::account);
    m.put_u8(static_cast<std::uint8_t>(op));
    m.put_str(user);
    return account_reply(m, Type::account_reply);
}

mctp::AccountResult MonitorClient::check_password(std::string_view user,
                                                  const mctp::Secret& password) {
    Message m(Type::check);
    m.put_str(user);
    m.put_str(password.view());
    return account_reply(m, Type::check_reply);
}

void MonitorClient::log_level(std::uint8_t level, std::string_view message) {
    Message m(Type::log);
    m.put_u8(level);
    m.put_str(mctp::printable(message, text_max));
    if (!send(fd_, m)) {
        parent_gone();
    }
}

void MonitorClient::log(mctp::LogLevel level, std::string_view message) {
    if (level == mctp::LogLevel::debug && !log::debugging()) {
        return;  // not worth a message to the parent, which would drop it
    }
    log_level(static_cast<std::uint8_t>(level), message);
}

// The parent.

namespace {

class Monitor {
public:
    Monitor(int fd, const MonitorBackend& backend, const MonitorSettings& settings)
        : fd_(fd), backend_(backend), settings_(settings) {}

    MonitorEnd run(Clock::time_point deadline);

private:
    enum class Phase { hello_sent, refused, accepted };

    // Ends the session: the child sent what a sound child never does.
    MonitorEnd violation(const std::string& why) {
        backend_.error("privsep: the network child " + why + "; session ended");
        return MonitorEnd::violation;
    }
    // Never waits: a child that stops reading its replies (its socket
    // buffer full) must not hold the root process past every deadline.
    bool reply(Message& m) {
        if (send(fd_, m, false)) {
            return true;
        }
        backend_.error(errno == EAGAIN || errno == EWOULDBLOCK
                           ? "privsep: the network child does not read its replies; session ended"
                           : "privsep: cannot answer the network child; session ended");
        return false;
    }

    std::optional<MonitorEnd> on_start(Message& m);
    std::optional<MonitorEnd> on_auth(Message& m);
    std::optional<MonitorEnd> may_auth(const char* what);
    std::optional<MonitorEnd> on_scram_first(Message& m);
    std::optional<MonitorEnd> on_scram_final(Message& m);
    std::optional<MonitorEnd> on_check_user(Message& m);
    // CHANGE, or TEST (test): the same checks, a different PAM service.
    std::optional<MonitorEnd> on_change(Message& m, bool test);
    std::optional<MonitorEnd> on_log(Message& m);
    std::optional<MonitorEnd> on_operations(Message& m);
    std::optional<MonitorEnd> on_account(Message& m);
    std::optional<MonitorEnd> on_check(Message& m);
    // Whether controller_ may use the verb; logs the refusal.
    bool may_use(unsigned op, const std::string& verb, const std::string& user);
    // The user policy again: nullopt when the controller may manage user.
    std::optional<mctp::AccountResult> refuse_user(const std::string& verb,
                                                   const std::string& user);
    bool account_reply(Type type, const mctp::AccountResult& r);

    int fd_;
    const MonitorBackend& backend_;
    const MonitorSettings& settings_;
    Phase phase_ = Phase::hello_sent;
    bool locked_ = false;
    unsigned failures_ = 0;
    std::string controller_;  // empty until an AUTH succeeds
    unsigned logs_ = 0;       // LOG messages so far
    bool scram_ = false;      // a SCRAM exchange: SCRAM_FINAL is due
    unsigned account_changes_ = 0;  // ACCOUNT messages so far
    unsigned password_checks_ = 0;  // CHECK messages so far
};

std::optional<MonitorEnd> Monitor::on_start(Message& m) {
    std::string subject;
    std::string fingerprint;
    std::string exporter;
    if (!m.get_str(text_max, &subject) || !m.get_str(fingerprint_max, &fingerprint) ||
        !m.get_str(binding_size, &exporter) || !m.at_end() ||
        !mctp::is_printable_ascii(subject) || !mctp::is_printable_ascii(fingerprint) ||
        (!exporter.empty() && exporter.size() != binding_size)) {
        return violation("sent a malformed START");
    }
    if (phase_ != Phase::hello_sent) {
        return violation("sent START twice");
    }
    const mctp::PeerVerdict v = backend_.verdict(subject, fingerprint, exporter);
    phase_ = v == mctp::PeerVerdict::accepted ? Phase::accepted : Phase::refused;
    Message r(Type::verdict);
    r.put_u8(static_cast<std::uint8_t>(v));
    return reply(r) ? std::nullopt : std::optional(MonitorEnd::io_error);
}

std::optional<MonitorEnd> Monitor::on_auth(Message& m) {
    mctp::Secret secret;
    if (!m.get_secret(settings_.line_max, &secret) || !m.at_end() ||
        !mctp::is_argument(secret.view())) {
        return violation("sent a malformed AUTH");
    }
    if (auto end = may_auth("AUTH")) {
        return end;
    }
    mctp::AuthResult result = backend_.host.authenticate(secret);
    secret.clear();
    switch (result.kind) {
    case mctp::AuthResult::Kind::accepted: controller_ = result.controller; break;
    case mctp::AuthResult::Kind::locked: locked_ = true; break;
    case mctp::AuthResult::Kind::rejected:
        ++failures_;
        // Here, not in the child: a child that does not wait cannot guess
        // faster.
        std::this_thread::sleep_for(settings_.auth_failure_delay);
        break;
    }
    // The parent's own record (the child's lines are relayed, not trusted).
    backend_.host.log(result.kind == mctp::AuthResult::Kind::accepted ? mctp::LogLevel::info
                                                                      : mctp::LogLevel::notice,
                      result.kind == mctp::AuthResult::Kind::accepted
                          ? "monitor: controller " + result.controller + " authenticated"
                          : std::string("monitor: AUTH failed"));
    Message r(Type::auth_reply);
    r.put_u8(static_cast<std::uint8_t>(result.kind));
    r.put_str(result.kind == mctp::AuthResult::Kind::accepted ? result.controller : "");
    return reply(r) ? std::nullopt : std::optional(MonitorEnd::io_error);
}

// Whether the child may try to authenticate now.
std::optional<MonitorEnd> Monitor::may_auth(const char* what) {
    if (phase_ != Phase::accepted) {
        return violation(std::string("sent ") + what +
                         " for a peer that was refused or not started");
    }
    if (locked_) {
        return violation(std::string("sent ") + what + " after its source was locked out");
    }
    if (failures_ >= settings_.max_auth_failures) {
        return violation(std::string("sent ") + what + " after max_auth_failures (" +
                         std::to_string(settings_.max_auth_failures) + ") failures");
    }
    // A new AUTH drops the last one (the session only sends it after
    // RSET, which forgets the controller) and any exchange under way.
    controller_.clear();
    scram_ = false;
    return std::nullopt;
}

std::optional<MonitorEnd> Monitor::on_scram_first(Message& m) {
    std::string client_first;
    if (!m.get_str(scram_message_max, &client_first) || !m.at_end() || client_first.empty()) {
        return violation("sent a malformed SCRAM_FIRST");
    }
    if (auto end = may_auth("SCRAM_FIRST")) {
        return end;
    }
    mctp::ScramResult result = backend_.host.scram_first(client_first);
    if (result.message.size() > scram_reply_max) {
        result = {};
    }
    switch (result.kind) {
    case mctp::ScramResult::Kind::next: scram_ = true; break;
    case mctp::ScramResult::Kind::locked: locked_ = true; break;
    case mctp::ScramResult::Kind::rejected:
        ++failures_;
        std::this_thread::sleep_for(settings_.auth_failure_delay);
        break;
    }
    Message r(Type::scram_first_reply);
    r.put_u8(static_cast<std::uint8_t>(result.kind));
    r.put_str(result.kind == mctp::ScramResult::Kind::next ? result.message : "");
    return reply(r) ? std::nullopt : std::optional(MonitorEnd::io_error);
}

std::optional<MonitorEnd> Monitor::on_scram_final(Message& m) {
    std::string client_final;
    if (!m.get_str(scram_message_max, &client_final) || !m.at_end() || client_final.empty()) {
        return violation("sent a malformed SCRAM_FINAL");
    }
    if (!scram_) {
        return violation("sent SCRAM_FINAL without a SCRAM exchange under way");
    }
    scram_ = false;
    mctp::ScramResult result = backend_.host.scram_final(client_final);
    if (result.message.size() > scram_reply_max) {
        result = {};
    }
    switch (result.kind) {
    case mctp::ScramResult::Kind::next:
        if (!mctp::is_helo_name(result.controller)) {
            result = {};
            ++failures_;
            std::this_thread::sleep_for(settings_.auth_failure_delay);
            break;
        }
        // Only now, after a good proof, is the peer that controller.
        controller_ = result.controller;
        break;
    case mctp::ScramResult::Kind::locked: locked_ = true; break;
    case mctp::ScramResult::Kind::rejected:
        ++failures_;
        // Here, not in the child: a child that does not wait cannot guess
        // faster.
        std::this_thread::sleep_for(settings_.auth_failure_delay);
        break;
    }
    const bool next = result.kind == mctp::ScramResult::Kind::next;
    Message r(Type::scram_final_reply);
    r.put_u8(static_cast<std::uint8_t>(result.kind));
    r.put_str(next ? result.message : "");
    r.put_str(next ? result.controller : "");
    return reply(r) ? std::nullopt : std::optional(MonitorEnd::io_error);
}

std::optional<MonitorEnd> Monitor::on_check_user(Message& m) {
    std::string user;
    if (!m.get_str(mctp::limits::user_name_max, &user) || !m.at_end() ||
        !mctp::is_user_name(user)) {
        return violation("sent a malformed CHECK_USER");
    }
    if (controller_.empty()) {
        return violation("asked about user " + user + " before a successful AUTH");
    }
    const mctp::UserVerdict v = backend_.host.check_user(controller_, user);
    Message r(Type::user_reply);
    r.put_u8(static_cast<std::uint8_t>(v));
    return reply(r) ? std::nullopt : std::optional(MonitorEnd::io_error);
}

std::optional<MonitorEnd> Monitor::on_change(Message& m, bool test) {
    const std::string verb = test ? "TEST" : "CHANGE";
    std::string user;
    std::string helo;
    mctp::Secret password;
    if (!m.get_str(mctp::limits::user_name_max, &user) ||
        !m.get_str(mctp::limits::helo_name_max, &helo) ||
        !m.get_secret(settings_.line_max, &password) || !m.at_end() ||
        !mctp::is_user_name(user) || !mctp::is_helo_name(helo) || password.empty() ||
        !mctp::is_password_text(password.view())) {
        return violation("sent a malformed " + verb);
    }
    if (controller_.empty()) {
        return violation(std::string(test ? "asked to test a password for "
                                          : "asked to change the password of ") +
                         user + " before a successful AUTH; nothing changed");
    }
    mctp::ChangeResult result{mctp::ChangeResult::Kind::failed, {}};
    // The child's own check is not taken on trust.
    const mctp::UserVerdict v = backend_.host.check_user(controller_, user);
    if (!may_use(test ? mctp::op_test : mctp::op_chpw, test ? "TEST" : "CHPW", user)) {
        result.kind = mctp::ChangeResult::Kind::forbidden;
    } else if (v != mctp::UserVerdict::allowed) {
        backend_.error(std::string("privsep: the network child asked to ") +
                       (test ? "test a password for " : "change the password of ") + user +
                       ", whom controller " + controller_ + " may not manage; refused");
        result.kind = v == mctp::UserVerdict::unknown ? mctp::ChangeResult::Kind::unknown
                                                      : mctp::ChangeResult::Kind::forbidden;
    } else if (test) {
        result = backend_.host.test_password(user, helo, password);
    } else {
        result = backend_.host.change_password(user, helo, password);
    }
    password.clear();
    const bool ok = result.kind == mctp::ChangeResult::Kind::changed;
    backend_.host.log(mctp::LogLevel::info,
                      std::string(test ? "monitor: test for " : "monitor: change of ") + user +
                          " for controller " + controller_ + ": " +
                          (test ? (ok ? "acceptable" : "not acceptable")
                                : (ok ? "changed" : "not changed")));
    Message r(test ? Type::test_reply : Type::change_reply);
    r.put_u8(static_cast<std::uint8_t>(result.kind));
    r.put_str(std::string_view(result.message).substr(0, text_max));
    return reply(r) ? std::nullopt : std::optional(MonitorEnd::io_error);
}

std::optional<MonitorEnd> Monitor::on_log(Message& m) {
    std::uint8_t level = 0;
    std::string text;
    if (!m.get_u8(&level) || !m.get_str(text_max, &text) || !m.at_end() ||
        level > log_error || !mctp::is_printable_ascii(text)) {
        return violation("sent a malformed LOG");
    }
    if (++logs_ > log_messages_max) {
        return violation("sent more than " + std::to_string(log_messages_max) + " LOG messages");
    }
    if (level == log_error) {
        backend_.error(text);
    } else {
        backend_.host.log(static_cast<mctp::LogLevel>(level), text);
    }
    return std::nullopt;
}

bool Monitor::may_use(unsigned op, const std::string& verb, const std::string& user) {
    if ((backend_.host.operations(controller_) & op) != 0) {
        return true;
    }
    backend_.error("privsep: the network child asked for " + verb + " " + user +
                   ", which controller " + controller_ + " may not use; refused");
    return false;
}

std::optional<mctp::AccountResult> Monitor::refuse_user(const std::string& verb,
                                                        const std::string& user) {
    const mctp::UserVerdict v = backend_.host.check_user(controller_, user);
    if (v == mctp::UserVerdict::allowed) {
        return std::nullopt;
    }
    backend_.error("privsep: the network child asked for " + verb + " " + user +
                   ", whom controller " + controller_ + " may not manage; refused");
    return mctp::AccountResult{v == mctp::UserVerdict::unknown
                                   ? mctp::AccountResult::Kind::unknown
                                   : mctp::AccountResult::Kind::forbidden,
                               {}};
}

bool Monitor::account_reply(Type type, const mctp::AccountResult& result) {
    Message r(type);
    r.put_u8(static_cast<std::uint8_t>(result.kind));
    r.put_str(mctp::printable(result.message, text_max));
    return reply(r);
}

std::optional<MonitorEnd> Monitor::on_operations(Message& m) {
    std::string controller;
    if (!m.get_str(mctp::limits::helo_name_max, &controller) || !m.at_end()) {
        return violation("sent a malformed OPERATIONS");
    }
    if (controller_.empty() || controller != controller_) {
        return violation("asked for the operations of a controller it is not authenticated as");
    }
    Message r(Type::operations_reply);
    r.put_u32(backend_.host.operations(controller_) & mctp::all_operations);
    return reply(r) ? std::nullopt : std::optional(MonitorEnd::io_error);
}

std::optional<MonitorEnd> Monitor::on_account(Message& m) {
    std::uint8_t op = 0;
    std::string user;
    if (!m.get_u8(&op) || !m.get_str(mctp::limits::user_name_max, &user) || !m.at_end() ||
        op > static_cast<std::uint8_t>(mctp::AccountOp::unlock) || !mctp::is_user_name(user)) {
        return violation("sent a malformed ACCOUNT");
    }
    if (controller_.empty()) {
        return violation("asked for an account operation on " + user +
                         " before a successful AUTH; nothing changed");
    }
    if (++account_changes_ > mctp::account_changes_max) {
        return violation("sent more than " + std::to_string(mctp::account_changes_max) +
                         " account operations; nothing more changed");
    }
    static constexpr std::array<const char*, 3> verbs{"EXPR", "LOCK", "UNLK"};
    static constexpr std::array<unsigned, 3> bits{mctp::op_expr, mctp::op_lock, mctp::op_unlk};
    const std::string verb = verbs.at(op);
    mctp::AccountResult result{mctp::AccountResult::Kind::forbidden, {}};
    if (may_use(bits.at(op), verb, user)) {
        if (auto refused = refuse_user(verb, user)) {
            result = *refused;
        } else {
            result = backend_.host.account(static_cast<mctp::AccountOp>(op), user);
        }
    }
    if (result.kind == mctp::AccountResult::Kind::mismatch) {
        result = {mctp::AccountResult::Kind::failed, "unexpected result"};
    }
    backend_.host.log(mctp::LogLevel::info,
                      "monitor: " + verb + " " + user + " for controller " + controller_ + ": " +
                          (result.kind == mctp::AccountResult::Kind::done      ? "done"
                           : result.kind == mctp::AccountResult::Kind::already ? "already so"
                                                                               : "not done"));
    return account_reply(Type::account_reply, result) ? std::nullopt
                                                      : std::optional(MonitorEnd::io_error);
}

std::optional<MonitorEnd> Monitor::on_check(Message& m) {
    std::string user;
    mctp::Secret password;
    if (!m.get_str(mctp::limits::user_name_max, &user) ||
        !m.get_secret(settings_.line_max, &password) || !m.at_end() ||
        !mctp::is_user_name(user) || password.empty() ||
        !mctp::is_password_text(password.view())) {
        return violation("sent a malformed CHECK");
    }
    if (controller_.empty()) {
        return violation("asked to check the password of " + user +
                         " before a successful AUTH");
    }
    if (++password_checks_ > mctp::password_checks_max) {
        return violation("sent more than " + std::to_string(mctp::password_checks_max) +
                         " password checks");
    }
    mctp::AccountResult result{mctp::AccountResult::Kind::forbidden, {}};
    if (may_use(mctp::op_chck, "CHCK", user)) {
        if (auto refused = refuse_user("CHCK", user)) {
            result = *refused;
        } else {
            result = backend_.host.check_password(user, password);
        }
    }
    password.clear();
    if (result.kind == mctp::AccountResult::Kind::already) {
        result.kind = mctp::AccountResult::Kind::done;
    }
    if (result.kind == mctp::AccountResult::Kind::mismatch) {
        // Here, not in the child: a child that does not wait cannot
        // guess faster.
        std::this_thread::sleep_for(settings_.auth_failure_delay);
    }
    backend_.host.log(mctp::LogLevel::info,
                      "monitor: CHCK " + user + " for controller " + controller_ + ": " +
                          (result.kind == mctp::AccountResult::Kind::done       ? "current"
                           : result.kind == mctp::AccountResult::Kind::mismatch ? "not current"
                                                                                : "not checked"));
    return account_reply(Type::check_reply, result) ? std::nullopt
                                                    : std::optional(MonitorEnd::io_error);
}

MonitorEnd Monitor::run(Clock::time_point deadline) {
    for (;;) {
        Message m;
        std::string why;
        switch (receive(fd_, &m, deadline, &why)) {
        case Received::ok: break;
        case Received::end: return MonitorEnd::child_done;
        case Received::timeout:
            backend_.error("privsep: the session outlived session_timeout; ended");
            return MonitorEnd::timeout;
        case Received::error: return MonitorEnd::io_error;
        case Received::malformed: return violation("sent " + why);
        }
        std::optional<MonitorEnd> end;
        switch (m.type()) {
        case Type::start: end = on_start(m); break;
        case Type::auth: end = on_auth(m); break;
        case Type::scram_first: end = on_scram_first(m); break;
        case Type::scram_final: end = on_scram_final(m); break;
        case Type::check_user: end = on_check_user(m); break;
        case Type::change: end = on_change(m, false); break;
        case Type::test: end = on_change(m, true); break;
        case Type::log: end = on_log(m); break;
        case Type::operations: end = on_operations(m); break;
        case Type::account: end = on_account(m); break;
        case Type::check: end = on_check(m); break;
        default:
            end = violation("sent a message of type " +
                            std::to_string(static_cast<unsigned>(m.type())) +
                            ", which it may not send");
        }
        if (end) {
            return *end;
        }
    }
}

}  // namespace

MonitorEnd serve(int fd, const MonitorBackend& backend, const MonitorSettings& settings,
                 Clock::time_point deadline) {
    Monitor monitor(fd, backend, settings);
    return monitor.run(deadline);
}

}  // namespace mpasswdd::privsep
