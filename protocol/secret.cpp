#include "secret.hpp"

#include <cstring>
#include <string.h>
#include <utility>

namespace mctp {

void wipe(void* data, std::size_t size) noexcept {
    if (data != nullptr && size > 0) {
        explicit_bzero(data, size);
    }
}

Secret::Secret(std::string_view text) : data_(new char[text.size() + 1]), size_(text.size()) {
    if (!text.empty()) {  // an empty view may hold a null pointer
        std::memcpy(data_.get(), text.data(), text.size());
    }
    data_[size_] = '\0';
}

Secret Secret::join(std::initializer_list<std::string_view> parts) {
    std::size_t size = 0;
    for (const auto part : parts) {
        size += part.size();
    }
    Secret s;
    s.data_.reset(new char[size + 1]);
    s.size_ = size;
    std::size_t at = 0;
    for (const auto part : parts) {
        if (!part.empty()) {
            std::memcpy(s.data_.get() + at, part.data(), part.size());
        }
        at += part.size();
    }
    s.data_[size] = '\0';
    return s;
}

Secret::~Secret() { clear(); }

Secret::Secret(Secret&& other) noexcept
    : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
    if (this != &other) {
        clear();
        data_ = std::move(other.data_);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void Secret::clear() noexcept {
    if (data_) {
        wipe(data_.get(), size_ + 1);
        data_.reset();
    }
    size_ = 0;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    }
    // Keep the compiler from turning the loop into an early exit.
    volatile unsigned char result = diff;
    return result == 0;
}

}  // namespace mctp
