#include "line_framer.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "secret.hpp"

namespace mctp {

LineFramer::LineFramer(std::size_t line_max, std::size_t long_max)
    : line_max_(line_max < 2 ? 2 : line_max), long_max_(std::max(line_max_, long_max)),
      buffer_(new char[long_max_ - 1]) {}

LineFramer::~LineFramer() { wipe(buffer_.get(), long_max_ - 1); }

std::size_t LineFramer::limit() const noexcept {
    if (long_max_ == line_max_ || long_lines_) {
        return long_max_;
    }
    // Only consulted once the line has reached line_max - 1 octets, which
    // is at least 1: the first five tell whether it is an AUTH line.
    constexpr std::string_view auth = "AUTH ";
    if (used_ < auth.size()) {
        return line_max_;
    }
    for (std::size_t i = 0; i < auth.size(); ++i) {
        if (std::toupper(static_cast<unsigned char>(buffer_[i])) != auth[i]) {
            return line_max_;
        }
    }
    return long_max_;
}

void LineFramer::reset_line() noexcept {
    wipe(buffer_.get(), used_);
    used_ = 0;
}

}  // namespace mctp
