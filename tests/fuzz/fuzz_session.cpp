// libFuzzer target: arbitrary bytes through the line framer and the
// session, as the responder feeds them (EHLO and the AUTH SCRAM exchange
// included). Checks the protocol's promises on
// every reply: one line of printable ASCII within line_max, nothing read
// after close; ASan and UBSan check the memory. (That no secret reaches a
// reply or the log is tested in tests/unit: here the fuzzer may send the
// same bytes as a password and as a HELO name, which is then rightly
// logged, so a byte search cannot tell a leak from an echo.)
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <span>
#include <string>

#include "line_framer.hpp"
#include "session.hpp"

namespace {

constexpr const char* kSecret = "fuzz-secret-1";

struct FuzzHost : mctp::Host {
    mctp::AuthResult authenticate(const mctp::Secret& s) override {
        if (s.view() == kSecret) {
            return {mctp::AuthResult::Kind::accepted, "ctl"};
        }
        // A secret ending in '!' stands for a locked-out address.
        return {s.view().ends_with('!') ? mctp::AuthResult::Kind::locked
                                        : mctp::AuthResult::Kind::rejected,
                ""};
    }
    mctp::UserVerdict check_user(std::string_view, std::string_view user) override {
        return user.size() % 3 == 0   ? mctp::UserVerdict::allowed
               : user.size() % 3 == 1 ? mctp::UserVerdict::unknown
                                      : mctp::UserVerdict::forbidden;
    }
    mctp::ChangeResult change_password(std::string_view, std::string_view,
                                       const mctp::Secret& pw) override {
        return {static_cast<mctp::ChangeResult::Kind>(pw.size() % 5), "msg"};
    }
    mctp::ChangeResult test_password(std::string_view, std::string_view,
                                     const mctp::Secret& pw) override {
        return {static_cast<mctp::ChangeResult::Kind>((pw.size() + 1) % 5), "test msg"};
    }
    // Every account verb offered; LOCK refused to the controller (530);
    // every result kind by the user's or password's length.
    unsigned offered_operations() override { return mctp::all_operations; }
    unsigned operations(std::string_view) override {
        return mctp::all_operations & ~mctp::op_lock;
    }
    mctp::AccountResult account(mctp::AccountOp, std::string_view user) override {
        return {static_cast<mctp::AccountResult::Kind>(user.size() % 7), "account msg"};
    }
    mctp::AccountResult check_password(std::string_view, const mctp::Secret& pw) override {
        return {static_cast<mctp::AccountResult::Kind>(pw.size() % 7), "check msg"};
    }
    void log(mctp::LogLevel, std::string_view m) override {
        if (m.empty()) {
            std::abort();
        }
    }
    // The SCRAM exchange by simple rules (a fuzzer cannot make a proof):
    // a client-first naming n=ctl goes on; a client-final ending in "p=ok"
    // is a good proof, one ending in '!' a locked-out address.
    mctp::ScramResult scram_first(std::string_view client_first) override {
        started = client_first.find("n=ctl") != std::string_view::npos;
        if (!started) {
            return {};
        }
        return {mctp::ScramResult::Kind::next,
                std::string(client_first.substr(client_first.find("n=ctl"))) +
                    ",s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096",
                ""};
    }
    mctp::ScramResult scram_final(std::string_view client_final) override {
        if (!started) {
            std::abort();  // the session asked for a final without a first
        }
        started = false;
        if (client_final.ends_with("p=ok")) {
            return {mctp::ScramResult::Kind::next, "v=c2lnbmF0dXJl", "ctl"};
        }
        return {client_final.ends_with('!') ? mctp::ScramResult::Kind::locked
                                            : mctp::ScramResult::Kind::rejected,
                "", ""};
    }
    bool started = false;
};

// Every reply: at most 16 lines, each within line_max (a 334 within 1024),
// "NNN-" on all but the last, printable ASCII.
void check(const mctp::Reply& r, std::size_t line_max) {
    const std::string all = mctp::format_reply(r, line_max);
    const std::size_t max = r.long_line ? std::max(line_max, mctp::sasl_line_max) : line_max;
    std::size_t at = 0;
    std::size_t lines = 0;
    while (at < all.size()) {
        const std::size_t end = all.find("\r\n", at);
        if (end == std::string::npos) {
            std::abort();
        }
        const std::string line = all.substr(at, end + 2 - at);
        at = end + 2;
        ++lines;
        if (line.size() > max || line.size() < 5 || lines > mctp::ehlo_lines_max ||
            line[3] != (at == all.size() ? ' ' : '-')) {
            std::abort();
        }
        for (std::size_t i = 0; i + 2 < line.size(); ++i) {
            const auto c = static_cast<unsigned char>(line[i]);
            if (c < 0x20 || c > 0x7e) {
                std::abort();
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The first byte picks line_max, so longer limits get explored too.
    const std::size_t line_max = size > 0 && (data[0] & 1) ? 512 : 128;
    FuzzHost host;
    mctp::SessionSettings settings{"fuzz", line_max, 3, std::chrono::milliseconds(0)};
    mctp::Session session(settings, host, "192.0.2.1");
    check(session.start(mctp::PeerVerdict::accepted), line_max);
    mctp::LineFramer framer(line_max, mctp::sasl_line_max);
    framer.feed(std::span<const char>(reinterpret_cast<const char*>(data), size),
                [&](mctp::FrameEvent ev, std::string_view line) {
                    if (session.closed()) {
                        std::abort();  // the framer must have stopped
                    }
                    check(ev == mctp::FrameEvent::line ? session.on_line(line)
                                                       : session.on_overflow(),
                          line_max);
                    framer.set_long_lines(session.long_lines());
                    return !session.closed();
                });
    if (!session.closed()) {
        check(session.on_timeout(), line_max);
    }
    return 0;
}
