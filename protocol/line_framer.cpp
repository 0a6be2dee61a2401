#include "line_framer.hpp"

#include "secret.hpp"

namespace mctp {

LineFramer::LineFramer(std::size_t line_max)
    : line_max_(line_max < 2 ? 2 : line_max), buffer_(new char[line_max_ - 1]) {}

LineFramer::~LineFramer() { wipe(buffer_.get(), line_max_ - 1); }

void LineFramer::reset_line() noexcept {
    wipe(buffer_.get(), used_);
    used_ = 0;
}

}  // namespace mctp
