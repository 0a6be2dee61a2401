// Splits a byte stream into lines of at most line_max octets.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

namespace mctp {

enum class FrameEvent {
    line,      // a complete line, LF and one CR before it removed
    overflow,  // the line reached line_max without an LF; the rest of it,
               // up to and including the next LF, is discarded unread
};

// Holds at most one partial line, in a buffer that is wiped after each
// line is handed out (data lines are passwords). No I/O.
//
// The SASL exception (mpasswd-protocol(7), RFC 4954): a line that starts
// with "AUTH " (any case), and every line while long lines are switched
// on (during an AUTH exchange), may be up to long_max octets; every other
// line keeps line_max.
class LineFramer {
public:
    explicit LineFramer(std::size_t line_max, std::size_t long_max = 0);
    ~LineFramer();
    LineFramer(const LineFramer&) = delete;
    LineFramer& operator=(const LineFramer&) = delete;

    // Feeds bytes. For each complete line or overflow, calls
    // sink(FrameEvent, std::string_view line) (the view is valid only
    // during the call; empty for overflow). If sink returns false,
    // stops and returns the number of bytes consumed so far.
    template <class Sink>
    std::size_t feed(std::span<const char> bytes, Sink&& sink);

    // True while part of a line (or a discarded over-long line) is held.
    [[nodiscard]] bool mid_line() const noexcept { return used_ > 0 || discarding_; }
    [[nodiscard]] std::size_t line_max() const noexcept { return line_max_; }
    // Every line may be up to long_max octets (the session is in an AUTH
    // exchange), or only AUTH lines.
    void set_long_lines(bool on) noexcept { long_lines_ = on; }

private:
    void reset_line() noexcept;
    [[nodiscard]] std::size_t limit() const noexcept;

    std::size_t line_max_;
    std::size_t long_max_;
    bool long_lines_ = false;
    std::unique_ptr<char[]> buffer_;  // line_max - 1 octets: the line before LF
    std::size_t used_ = 0;
    bool discarding_ = false;
};

template <class Sink>
std::size_t LineFramer::feed(std::span<const char> bytes, Sink&& sink) {
    std::size_t i = 0;
    while (i < bytes.size()) {
        const char c = bytes[i++];
        if (discarding_) {
            discarding_ = c != '\n';
            continue;
        }
        if (c == '\n') {
            std::size_t len = used_;
            if (len > 0 && buffer_[len - 1] == '\r') {
                --len;
            }
            const bool more = sink(FrameEvent::line, std::string_view(buffer_.get(), len));
            reset_line();
            if (!more) {
                return i;
            }
            continue;
        }
        // The LF must still fit: line_max counts the terminator.
        if (used_ + 1 >= limit()) {
            reset_line();
            discarding_ = true;
            if (!sink(FrameEvent::overflow, std::string_view())) {
                return i;
            }
            continue;
        }
        buffer_[used_++] = c;
    }
    return i;
}

}  // namespace mctp
