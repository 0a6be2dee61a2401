// A secret (controller secret, password) that wipes itself.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string_view>

namespace mctp {

// Overwrites memory so that the compiler cannot drop the write.
void wipe(void* data, std::size_t size) noexcept;

// Holds a secret in one heap buffer of exactly its size, NUL-terminated
// for C APIs. Never copied (so no stray copies exist), wiped on
// destruction, clear() and move. It never grows: growing a std::string
// leaves the old buffer behind unwiped.
class Secret {
public:
    Secret() = default;
    explicit Secret(std::string_view text);
    // The parts one after another, built in place (no temporary copy):
    // for wire lines such as "AUTH " + secret + "\r\n".
    static Secret join(std::initializer_list<std::string_view> parts);
    ~Secret();

    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    Secret(Secret&& other) noexcept;
    Secret& operator=(Secret&& other) noexcept;

    [[nodiscard]] std::string_view view() const noexcept { return {data_.get(), size_}; }
    [[nodiscard]] const char* c_str() const noexcept { return data_ ? data_.get() : ""; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    void clear() noexcept;

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
};

// Compares in time that depends only on the lengths, not on where the
// first difference is.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace mctp
