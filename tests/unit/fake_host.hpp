// A Host for engine tests: a fixed secret, a few users, and a record of
// every change asked for and every log line written.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "line_framer.hpp"
#include "fake_scram.hpp"
#include "session.hpp"

namespace test {

struct FakeHost : mctp::Host {
    FakeHost() = default;
    explicit FakeHost(std::string channel_binding) { scram.binding = std::move(channel_binding); }
    std::string secret = "good-secret-1";
    mctp::ChangeResult next_result{mctp::ChangeResult::Kind::changed, ""};
    struct Change {
        std::string user, helo, password;
    };
    std::vector<Change> changes;
    mctp::ChangeResult next_test{mctp::ChangeResult::Kind::changed, ""};
    std::vector<Change> tests;
    std::vector<std::string> log_lines;

    // locked: the peer's address is locked out (no secret is checked).
    bool locked = false;
    unsigned auth_checks = 0;

    mctp::AuthResult authenticate(const mctp::Secret& s) override {
        if (locked) {
            return {mctp::AuthResult::Kind::locked, ""};
        }
        ++auth_checks;
        if (s.view() == secret) {
            return {mctp::AuthResult::Kind::accepted, "ctl"};
        }
        return {};
    }
    mctp::UserVerdict check_user(std::string_view, std::string_view user) override {
        if (user == "alice" || user == "bob") {
            return mctp::UserVerdict::allowed;
        }
        if (user == "root") {
            return mctp::UserVerdict::forbidden;
        }
        return mctp::UserVerdict::unknown;
    }
    mctp::ChangeResult change_password(std::string_view user, std::string_view helo,
                                       const mctp::Secret& pw) override {
        changes.push_back({std::string(user), std::string(helo), std::string(pw.view())});
        return next_result;
    }
    // TEST: recorded apart from the changes, answered with next_test.
    mctp::ChangeResult test_password(std::string_view user, std::string_view helo,
                                     const mctp::Secret& pw) override {
        tests.push_back({std::string(user), std::string(helo), std::string(pw.view())});
        return next_test;
    }
    void log(mctp::LogLevel, std::string_view m) override { log_lines.emplace_back(m); }

    // SCRAM for controller "ctl" with `secret`, as the monitor runs it.
    FakeScram scram;
    unsigned scram_finals = 0;
    mctp::ScramResult scram_first(std::string_view client_first) override {
        if (locked) {
            return {mctp::ScramResult::Kind::locked, "", ""};
        }
        return scram.first(client_first, secret);
    }
    mctp::ScramResult scram_final(std::string_view client_final) override {
        ++scram_finals;
        return scram.final(client_final);
    }

    [[nodiscard]] std::string all_log() const {
        std::string s;
        for (const auto& l : log_lines) {
            s += l + "\n";
        }
        return s;
    }
};

// Bytes in, reply lines out, exactly as the responder pairs framer and
// session.
struct Wire {
    FakeHost host;
    mctp::SessionSettings settings;
    mctp::Session session;
    mctp::LineFramer framer;
    std::vector<mctp::Reply> replies;

    // plus: the session offers SCRAM-SHA-256-PLUS, with this channel binding.
    explicit Wire(std::size_t line_max = 128, unsigned max_failures = 3, std::string plus = {})
        : host(std::move(plus)),
          settings{"target", line_max, max_failures, std::chrono::milliseconds(1500),
                   !host.scram.binding.empty()},
          session(settings, host, "192.0.2.7"), framer(line_max, mctp::sasl_line_max) {
        replies.push_back(session.start(mctp::PeerVerdict::accepted));
    }

    // Sends bytes; returns the codes of the replies they produced.
    std::vector<int> send(std::string_view bytes) {
        const std::size_t before = replies.size();
        framer.feed(std::span<const char>(bytes.data(), bytes.size()),
                    [&](mctp::FrameEvent ev, std::string_view line) {
                        replies.push_back(ev == mctp::FrameEvent::line ? session.on_line(line)
                                                                       : session.on_overflow());
                        framer.set_long_lines(session.long_lines());
                        return !session.closed();
                    });
        std::vector<int> codes;
        for (std::size_t i = before; i < replies.size(); ++i) {
            codes.push_back(mctp::number(replies[i].code));
        }
        return codes;
    }
    // One line with CRLF; the code of its single reply (0 if none).
    int line(std::string_view text) {
        auto codes = send(std::string(text) + "\r\n");
        return codes.size() == 1 ? codes[0] : 0;
    }
    [[nodiscard]] const mctp::Reply& last() const { return replies.back(); }
    void login() {
        line("HELO ctl");
        line("AUTH " + host.secret);
    }
};

}  // namespace test
