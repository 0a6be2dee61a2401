// libFuzzer target for the control side, which parses what remote
// targets send and runs as root inside passwd. The first byte picks what
// the rest is:
//   0 reply lines for parse_reply, and any text for mctp::printable;
//   1 a target's side of a dialogue: the fan-out engine runs one verify
//     and one change against an in-memory transport that plays the bytes
//     back, up to the last NUL; what follows it is the text of the error
//     that ends the stream, as the ssh transport ends it with ssh's last
//     line of errors (the second byte: chunk size, how the stream ends,
//     whether already at connect);
//   2 a hosts file; 3 an mpasswd.conf (no file is read);
//   4 a Result made of fuzz bytes;
//   5 reply lines for the MCTP client alone (protocol/client.hpp), for a
//     verify or a change (the second byte), checked line by line;
//   6 an inventory (an Ansible INI one when the second byte is odd, else
//     a hosts file with groups) up to the first NUL, and a --limit
//     pattern after it (`all` without a NUL), selected from it;
//   7 reply lines for the MCTP client serving a batch of three users
//     (changes, tests or checks by the second byte), PIPELINING when the
//     replies announce it: no user's password may go out but after the
//     354 to that user's own DATA, and once; never more than four lines
//     out ahead of the replies.
// Every Result, target and error message is then put through the report
// (table, summary, JSON): none may carry a control octet other than the
// '\n' ending each of its own lines, and each JSON line must be valid,
// ASCII-only JSON. ASan and UBSan check the memory.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "client.hpp"
#include "controller_config.hpp"
#include "fanout.hpp"
#include "inventory.hpp"
#include "operations.hpp"
#include "memory_transport.hpp"
#include "reply.hpp"
#include "report.hpp"
#include "target.hpp"
#include "text.hpp"

namespace {

using namespace mpasswd;

void require(bool ok) {
    if (!ok) {
        std::abort();
    }
}

bool only_printable(std::string_view s) {
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u > 0x7E) {
            return false;
        }
    }
    return true;
}

// Printable ASCII lines, each ended by one '\n', `lines` of them.
void check_lines(std::string_view out, std::size_t lines) {
    std::size_t n = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\n') {
            require(only_printable(out.substr(start, i - start)));
            ++n;
            start = i + 1;
        }
    }
    require(start == out.size() && n == lines);
}

// A tiny validator for the one shape json_line writes: a flat object of
// string, number, true/false and null values, ASCII only.
class Json {
public:
    explicit Json(std::string_view s) : s_(s) {}
    bool object() {
        if (!eat('{')) {
            return false;
        }
        if (eat('}')) {
            return done();
        }
        do {
            if (!string() || !eat(':') || !value()) {
                return false;
            }
        } while (eat(','));
        return eat('}') && done();
    }

private:
    bool done() const { return i_ == s_.size(); }
    bool eat(char c) {
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    bool string() {
        if (!eat('"')) {
            return false;
        }
        while (i_ < s_.size()) {
            const auto c = static_cast<unsigned char>(s_[i_++]);
            if (c == '"') {
                return true;
            }
            if (c < 0x20 || c > 0x7E) {
                return false;
            }
            if (c == '\\') {
                if (i_ >= s_.size()) {
                    return false;
                }
                const char e = s_[i_++];
                if (e == 'u') {
                    for (int k = 0; k < 4; ++k) {
                        if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_++]))) {
                            return false;
                        }
                    }
                } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
                    return false;
                }
            }
        }
        return false;
    }
    bool value() {
        if (i_ < s_.size() && s_[i_] == '"') {
            return string();
        }
        for (const std::string_view word : {"null", "true", "false"}) {
            if (s_.substr(i_).starts_with(word)) {
                i_ += word.size();
                return true;
            }
        }
        const std::size_t start = i_;
        eat('-');
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
            ++i_;
        }
        return i_ > start && s_[i_ - 1] != '-';
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

void check_report(const std::vector<Target>& targets, const std::vector<Result>& results,
                  const Job& job) {
    std::size_t failed = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const std::string json = json_line(targets[i], job, results[i]);
        require(Json(json).object());
        failed += results[i].outcome == Outcome::ok ? 0 : 1;
    }
    const std::string table = failure_table(targets, results);
    check_lines(table, failed == 0 ? 0 : failed + 1);
    check_lines(summary_line(job, results) + "\n", 1);
}

// What the engine makes: printable ASCII, bounded.
void check_result(const Result& r) {
    require(only_printable(r.text) && only_printable(r.step));
    require(r.text.size() <= limits::result_text_max + 64);
}

void check_error(const std::exception& e) {
    // The file's text in an error is escaped where it is quoted.
    require(only_printable(e.what()));
}

// The line of in that starts at *start, without its LF and one CR before
// it; *start moves past it.
std::string_view next_line(std::string_view in, std::size_t* start) {
    std::size_t end = in.find('\n', *start);
    if (end == std::string_view::npos) {
        end = in.size();
    }
    std::string_view line = in.substr(*start, end - *start);
    if (line.ends_with('\r')) {
        line.remove_suffix(1);
    }
    *start = end + 1;
    return line;
}

void replies(std::string_view in, unsigned char knob) {
    std::size_t start = 0;
    while (start <= in.size()) {
        const std::string_view line = next_line(in, &start);
        if (const auto r = mctp::parse_reply(line)) {
            const int code = mctp::number(r->code);
            require(code >= 200 && code <= 599 && only_printable(r->text));
            require(r->text.empty() || (r->text.front() != ' ' && r->text.back() != ' '));
            require(line.size() == 3 || line[3] == ' ');  // no "250-" continuation
            require(!r->more);
        }
        if (const auto r = mctp::parse_reply_line(line)) {
            require(r->more == (line.size() > 3 && line[3] == '-'));
        }
        const std::size_t max = knob;
        const std::string shown = mctp::printable(line, max);
        require(only_printable(shown) && shown.size() <= max);
        if (only_printable(line) && line.size() <= max) {
            require(shown == line);
        }
    }
}

void dialogue(std::string_view in, unsigned char knob) {
    // The target's bytes, then after the last NUL (if any) the text of the
    // error that ends the stream, as ssh's last line of errors is.
    fake::MemoryScript script;
    const auto nul = in.rfind('\0');
    script.bytes = std::string(in.substr(0, nul));
    script.end_text = nul == std::string_view::npos ? "ssh: connection closed"
                                                    : "ssh: " + std::string(in.substr(nul + 1));
    script.chunk = 1 + (knob & 0x0F) * 37;
    script.end = static_cast<fake::MemoryScript::End>((knob >> 4) & 3);
    script.fail_connect = (knob & 0x40) != 0;
    const mctp::Secret secret("fuzz-secret-1");
    const mctp::Secret password(".Fuzz-Pw-1");
    EngineSettings settings;
    settings.helo_name = "ctl";
    settings.secret = &secret;
    const std::vector<Target> targets{Target{"target.example", 4242, "fuzz"},
                                      Target{"::1", 1, "fuzz"}};
    for (const Action action : {Action::verify, Action::change}) {
        fake::MemoryTransport transport(script);
        const Job job{action, "alice", action == Action::change ? &password : nullptr};
        const auto results = run(targets, settings, job, transport, nullptr);
        require(results.size() == targets.size());
        for (const auto& r : results) {
            check_result(r);
            require(r.code == 0 || (r.code >= 200 && r.code <= 599));
        }
        // The password is sent only in a change, and only after 354.
        require(action == Action::change ||
                transport.written().find("Fuzz-Pw-1") == std::string::npos);
        check_report(targets, results, job);
    }
    // The account operations and a batch over the same bytes: a result
    // per target (per user and target), never the password for a lock.
    for (const Action action : {Action::lock, Action::check, Action::expire}) {
        fake::MemoryTransport transport(script);
        const Job job{action, "alice", action == Action::lock ? nullptr : &password};
        const auto results = run(targets, settings, job, transport, nullptr);
        require(results.size() == targets.size());
        for (const auto& r : results) {
            check_result(r);
        }
        require(action != Action::lock ||
                transport.written().find("Fuzz-Pw-1") == std::string::npos);
        check_report(targets, results, job);
    }
    fake::MemoryTransport transport(script);
    const std::vector<BatchUser> users{{"alice", &password}, {"bob", &password}};
    const auto batch = run_batch(targets, settings, users, (knob & 0x80) != 0, transport, {});
    require(batch.size() == users.size());
    for (const auto& user : batch) {
        require(user.size() == targets.size());
        for (const auto& r : user) {
            check_result(r);
        }
    }
}

// True when a line sent is one line: printable ASCII (and, in the
// password's line, UTF-8 without controls) then CRLF, nothing else.
bool one_clean_line(std::string_view sent) {
    if (!sent.ends_with("\r\n")) {
        return false;
    }
    sent.remove_suffix(2);
    return std::none_of(sent.begin(), sent.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7F;
    });
}

// The MCTP client alone, replies as input: the input's lines, one by one,
// each after the client has said all it would. Whatever they are, the
// client sends nothing after its outcome but one QUIT, the password only
// once 354 has been read at DATA, only whole clean lines, and at most one
// line per step; an ok outcome means every step was said.
void client(std::string_view in, unsigned char knob) {
    const mctp::Secret secret("fuzz-secret-1");
    const mctp::Secret password((knob & 2) != 0 ? ".Fuzz-Pw-1" : "Fuzz-Pw-\xc3\xa9");
    const auto auth_line = mctp::Client::auth_line(secret);
    const auto data_line = mctp::Client::data_line(password);
    const bool change = (knob & 1) != 0;
    // SCRAM (the default), or the old AUTH <secret> (auth=plain).
    const bool plain = (knob & 4) != 0;
    mctp::scram::KeyCache keys;
    mctp::Client c({change ? mctp::Client::Action::change : mctp::Client::Action::verify,
                    "alice", "ctl", &auth_line, change ? &data_line : nullptr,
                    plain ? mctp::Client::Auth::plain : mctp::Client::Auth::scram, &secret,
                    &keys});
    // EHLO (and HELO after a 500 to it), AUTH; or EHLO, AUTH, the proof,
    // the empty line; then VRFY, or CHPW, DATA, the password, ".".
    const std::size_t steps = (plain ? 2 : 4) + (change ? 4 : 1);
    std::size_t sent = 0;
    std::size_t after_outcome = 0;
    bool start_data_read = false;
    const auto drain = [&] {
        for (std::string_view out = c.next(); !out.empty(); out = c.next()) {
            require(one_clean_line(out) || out == "\r\n");
            require(out.find("Fuzz-Pw") == std::string_view::npos ||
                    (change && start_data_read && out == data_line.view()));
            // With SCRAM the secret itself never goes out.
            require(plain || out.find("fuzz-secret-1") == std::string_view::npos);
            if (c.finished()) {
                using Kind = mctp::Client::Outcome::Kind;
                const Kind k = c.outcome().kind;
                require(out == "QUIT\r\n" && ++after_outcome == 1);
                require(k == Kind::ok ||
                        ((k == Kind::refused || k == Kind::untrusted || k == Kind::unsupported) &&
                         !(c.outcome().code && mctp::closes(*c.outcome().code))));
            } else {
                require(++sent <= steps + (plain ? 1 : 0));
            }
        }
    };
    std::size_t start = 0;
    while (start <= in.size() && !c.done()) {
        drain();
        const std::string_view line = next_line(in, &start);
        const bool at_data = !c.finished() && c.step() == mctp::Client::Step::data;
        c.on_line(line);
        if (at_data && c.step() == mctp::Client::Step::password) {
            start_data_read = true;
            const auto r = mctp::parse_reply_line(line);
            require(r && r->code == mctp::Code::start_data && !r->more);
        }
    }
    drain();
    const auto& o = c.outcome();
    require(only_printable(o.text));
    require(o.kind != mctp::Client::Outcome::Kind::ok || sent == steps ||
            (plain && sent == steps + 1));
    require(o.kind != mctp::Client::Outcome::Kind::refused ||
            (o.code && mctp::number(*o.code) >= 400));
    require(!c.done() || c.finished());
    if (c.done()) {
        require(c.next().empty());
    }
}

void client_batch(std::string_view in, unsigned char knob) {
    using mctp::Client;
    const mctp::Secret secret("fuzz-secret-1");
    const auto auth_line = Client::auth_line(secret);
    const mctp::Secret passwords[3] = {mctp::Secret("Fuzz-Pw-A"), mctp::Secret(".Fuzz-Pw-B"),
                                       mctp::Secret("Fuzz-Pw-C")};
    const mctp::Secret lines[3] = {Client::data_line(passwords[0]),
                                   Client::data_line(passwords[1]),
                                   Client::data_line(passwords[2])};
    const std::string_view users[3] = {"alice", "bob", "carol"};
    const Client::Action actions[3] = {Client::Action::change, Client::Action::test,
                                       Client::Action::check};
    const Client::Action action = actions[knob % 3];
    Client::Job job{action, "alice", "ctl", &auth_line, &lines[0], Client::Auth::plain};
    job.then_expire = action == Client::Action::change && (knob & 4) != 0;
    job.more = {{action, "bob", &lines[1]}, {action, "carol", &lines[2]}};
    Client c(std::move(job));
    // The wire as the target sees it, kept apart from the client's own
    // state: every line out waits for one final reply, in order; a line
    // is its kind and the user of the last command before it.
    enum class Kind { command, data, password, end, other };
    struct Out {
        Kind kind;
        std::size_t user;
    };
    std::deque<Out> wire;
    std::size_t current = 3;          // the user of the last command out (3: none yet)
    bool got_354[3] = {false, false, false};  // a 354 answered that user's own DATA
    bool sent_pw[3] = {false, false, false};
    bool acted[3] = {false, false, false};    // its "." (a change) or EXPR went out
    bool quit = false;
    const auto drain = [&] {
        for (std::string_view line = c.next(); !line.empty(); line = c.next()) {
            require(one_clean_line(line));
            require(line.find("fuzz-secret-1") == std::string_view::npos ||
                    line == auth_line.view());
            Kind kind = Kind::other;
            for (std::size_t k = 0; k < 3; ++k) {
                if (line == lines[k].view()) {
                    // Only that user's own password, after the 354 to its
                    // own DATA, once.
                    require(current == k && got_354[k] && !sent_pw[k]);
                    sent_pw[k] = true;
                    kind = Kind::password;
                } else {
                    require(line.find(passwords[k].view().substr(1)) == std::string_view::npos);
                }
                for (const std::string_view verb : {"CHPW ", "TEST ", "CHCK ", "EXPR "}) {
                    if (line.starts_with(verb) && line.substr(5) == std::string(users[k]) + "\r\n") {
                        current = k;
                        kind = Kind::command;
                        if (verb == "EXPR ") {
                            acted[k] = true;
                        }
                    }
                }
            }
            if (line == "DATA\r\n") {
                kind = Kind::data;
            } else if (line == ".\r\n") {
                kind = Kind::end;
                if (current < 3 && action == Client::Action::change) {
                    acted[current] = true;
                }
            } else if (line == "QUIT\r\n") {
                require(c.finished() && !quit);
                quit = true;
            }
            wire.push_back({kind, current});
            require(wire.size() <= 4);  // at most three lines ahead of the one answered next
        }
    };
    std::size_t start = 0;
    while (start <= in.size() && !c.done()) {
        drain();
        const std::string_view line = next_line(in, &start);
        c.on_line(line);
        if (const auto r = mctp::parse_reply_line(line); r && !r->more && !wire.empty()) {
            const Out answered = wire.front();
            wire.pop_front();
            if (answered.kind == Kind::data && answered.user < 3 &&
                r->code == mctp::Code::start_data) {
                got_354[answered.user] = true;
            }
        }
    }
    drain();
    require(c.decided() <= 3);
    for (std::size_t k = 0; k < c.items().size(); ++k) {
        const auto& item = c.items()[k];
        require(only_printable(item.outcome.text));
        require(!item.changed || item.acted);
        require(item.acted == acted[k]);
    }
}

// Targets read from a file, each with a result, through the report.
void report_targets(const std::vector<Target>& targets) {
    std::vector<Result> results(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
        require(only_printable(targets[i].label()));
        results[i].outcome = static_cast<Outcome>(i % 6);
        results[i].step = "connect";
    }
    check_report(targets, results, Job{Action::verify, "alice", nullptr});
}

void hosts(std::string_view in, unsigned char knob) {
    TargetDefaults defaults(4242);
    defaults.via = static_cast<Via>(knob % 3);
    defaults.insecure_plaintext = (knob & 4) != 0;
    std::vector<Target> targets;
    try {
        targets = parse_hosts(std::string(in), "hosts", defaults);
    } catch (const ConfigError& e) {
        check_error(e);
        return;
    }
    report_targets(targets);
}

void inventory(std::string_view in, unsigned char knob) {
    const auto nul = in.find('\0');
    const std::string text(in.substr(0, nul));
    const std::string pattern(nul == std::string_view::npos ? std::string_view("all")
                                                            : in.substr(nul + 1));
    TargetDefaults defaults(4242);
    defaults.via = static_cast<Via>((knob >> 1) % 3);
    Inventory inv;
    try {
        inv = (knob & 1) != 0 ? parse_ansible_inventory(text, "inv", defaults)
                              : parse_hosts_inventory(text, "hosts", defaults);
    } catch (const ConfigError& e) {
        check_error(e);
        return;
    }
    require(inv.names.size() == inv.targets.size());
    require(inv.targets.size() <= limits::targets_max);
    for (const auto& [name, g] : inv.groups) {
        for (const std::size_t i : g.hosts) {
            require(i < inv.targets.size());
        }
        for (const auto& c : g.children) {
            require(inv.groups.count(c) == 1);
        }
    }
    std::vector<std::size_t> chosen;
    try {
        chosen = select_targets(inv, pattern);
    } catch (const ConfigError& e) {
        check_error(e);
        return;
    }
    require(!chosen.empty());
    std::vector<Target> targets;
    for (std::size_t k = 0; k < chosen.size(); ++k) {
        require(chosen[k] < inv.targets.size() && (k == 0 || chosen[k - 1] < chosen[k]));
        targets.push_back(inv.targets[chosen[k]]);
    }
    report_targets(targets);
}

void config(std::string_view in) {
    // A secret_file would be read: make the key unknown instead.
    std::string text(in);
    for (std::size_t p = 0; (p = text.find("secret_file", p)) != std::string::npos;) {
        text[p] = 'S';
    }
    try {
        const ControllerConfig c = parse_controller_config(text, "mpasswd.conf");
        require(!c.secret.empty());
        require(c.target_timeout >= c.connect_timeout);
    } catch (const ConfigError& e) {
        check_error(e);
    }
}

void result(std::string_view in, unsigned char knob) {
    // Target host | step | user | text, split at the first three '|'.
    std::string_view parts[4];
    std::size_t k = 0;
    std::size_t start = 0;
    for (; k < 3; ++k) {
        const auto bar = in.find('|', start);
        if (bar == std::string_view::npos) {
            break;
        }
        parts[k] = in.substr(start, bar - start);
        start = bar + 1;
    }
    parts[k] = in.substr(std::min(start, in.size()));
    Result r;
    r.outcome = static_cast<Outcome>(knob % 6);
    r.code = (knob & 8) != 0 ? 554 : 0;
    r.step = std::string(parts[1]);
    r.text = std::string(parts[3]);
    const Target t{std::string(parts[0]), 4242, "fuzz"};
    const Job job{(knob & 16) != 0 ? Action::change : Action::verify, std::string(parts[2]),
                  nullptr};
    check_report({t}, {r}, job);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
    const unsigned char knob = data[1];
    switch (data[0] % 8) {
    case 0: replies(in, knob); break;
    case 1: dialogue(in, knob); break;
    case 2: hosts(in, knob); break;
    case 3: config(in); break;
    case 4: result(in, knob); break;
    case 5: client(in, knob); break;
    case 7: client_batch(in, knob); break;
    default: inventory(in, knob); break;
    }
    return 0;
}
