// A Host for engine tests: a fixed secret, a few users, and a record of
// every change asked for and every log line written.
#pragma once

#include <string>
#include <vector>

#include "line_framer.hpp"
#include "session.hpp"

namespace test {

struct FakeHost : mctp::Host {
    std::string secret = "good-secret-1";
    mctp::ChangeResult next_result{mctp::ChangeResult::Kind::changed, ""};
    struct Change {
        std::string user, helo, password;
    };
    std::vector<Change> changes;
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
    void log(mctp::LogLevel, std::string_view m) override { log_lines.emplace_back(m); }

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

    explicit Wire(std::size_t line_max = 128, unsigned max_failures = 3)
        : settings{"target", line_max, max_failures, std::chrono::milliseconds(1500)},
          session(settings, host, "192.0.2.7"), framer(line_max) {
        replies.push_back(session.start(mctp::PeerVerdict::accepted));
    }

    // Sends bytes; returns the codes of the replies they produced.
    std::vector<int> send(std::string_view bytes) {
        const std::size_t before = replies.size();
        framer.feed(std::span<const char>(bytes.data(), bytes.size()),
                    [&](mctp::FrameEvent ev, std::string_view line) {
                        replies.push_back(ev == mctp::FrameEvent::line ? session.on_line(line)
                                                                       : session.on_overflow());
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
