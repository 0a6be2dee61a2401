// A Transport whose every stream plays back a script, for the engine's
// tests and the control-side fuzzer: the bytes a target sends, in chunks,
// then how the stream ends (end of stream, or an error such as the ssh
// transport's, whose text is ssh's last line of errors). Nothing waits, so
// a dialogue runs through at once.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>

#include "transport.hpp"

namespace mpasswd::fake {

struct MemoryScript {
    std::string bytes;         // what the target says, all of it
    std::size_t chunk = 4096;  // at most this many bytes per read (0 counts as 1)
    enum class End { eof, transport_error, untrusted, system_error } end = End::eof;
    std::string end_text;       // the text of the error that ends the stream
    bool fail_connect = false;  // connect() throws that error instead

    [[noreturn]] void throw_end() const {
        switch (end) {
        case End::transport_error: throw TransportError(end_text);
        case End::untrusted: throw UntrustedError(end_text);
        case End::system_error:
            throw std::system_error(std::make_error_code(std::errc::connection_reset), end_text);
        case End::eof: break;
        }
        throw std::system_error(asio::error::eof);
    }
};

class MemoryStream final : public Stream {
public:
    MemoryStream(const MemoryScript& script, std::string* written)
        : script_(script), written_(written) {}

    asio::awaitable<std::size_t> read_some(std::span<char> buffer) override {
        if (pos_ >= script_.bytes.size() || buffer.empty()) {
            script_.throw_end();
        }
        const std::size_t n = std::min({std::max<std::size_t>(script_.chunk, 1), buffer.size(),
                                        script_.bytes.size() - pos_});
        std::memcpy(buffer.data(), script_.bytes.data() + pos_, n);
        pos_ += n;
        co_return n;
    }

    asio::awaitable<void> write_all(std::span<const char> bytes) override {
        written_->append(bytes.data(), bytes.size());
        co_return;
    }

    void close() noexcept override {}

private:
    const MemoryScript& script_;
    std::string* written_;
    std::size_t pos_ = 0;
};

class MemoryTransport final : public Transport {
public:
    explicit MemoryTransport(MemoryScript script) : script_(std::move(script)) {}

    asio::awaitable<std::unique_ptr<Stream>> connect(const Target&) override {
        if (script_.fail_connect) {
            script_.throw_end();
        }
        co_return std::make_unique<MemoryStream>(script_, &written_);
    }

    // Everything the engine wrote, on every stream.
    [[nodiscard]] const std::string& written() const { return written_; }

private:
    MemoryScript script_;
    std::string written_;
};

}  // namespace mpasswd::fake
