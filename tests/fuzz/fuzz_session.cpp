// libFuzzer target: arbitrary bytes through the line framer and the
// session, as the responder feeds them. Checks the protocol's promises on
// every reply: one line of printable ASCII within line_max, nothing read
// after close; ASan and UBSan check the memory. (That no secret reaches a
// reply or the log is tested in tests/unit: here the fuzzer may send the
// same bytes as a password and as a HELO name, which is then rightly
// logged, so a byte search cannot tell a leak from an echo.)
#include <cstddef>
#include <cstdint>
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
    void log(mctp::LogLevel, std::string_view m) override {
        if (m.empty()) {
            std::abort();
        }
    }
};

void check(const mctp::Reply& r, std::size_t line_max) {
    const std::string line = mctp::format_reply(r, line_max);
    if (line.size() > line_max || line.size() < 5 || !line.ends_with("\r\n")) {
        std::abort();
    }
    for (std::size_t i = 0; i + 2 < line.size(); ++i) {
        const auto c = static_cast<unsigned char>(line[i]);
        if (c < 0x20 || c > 0x7e) {
            std::abort();
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
    mctp::LineFramer framer(line_max);
    framer.feed(std::span<const char>(reinterpret_cast<const char*>(data), size),
                [&](mctp::FrameEvent ev, std::string_view line) {
                    if (session.closed()) {
                        std::abort();  // the framer must have stopped
                    }
                    check(ev == mctp::FrameEvent::line ? session.on_line(line)
                                                       : session.on_overflow(),
                          line_max);
                    return !session.closed();
                });
    if (!session.closed()) {
        check(session.on_timeout(), line_max);
    }
    return 0;
}
