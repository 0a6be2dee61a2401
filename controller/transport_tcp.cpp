// Plain TCP. The engine bounds every call with a timer and cancels on
// expiry; everything here is cancellable, including name resolution,
// which asio cannot cancel: that wait is made cancellable here.
#include <asio/experimental/as_tuple.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <vector>

#include "tcp_connect.hpp"
#include "transport.hpp"

namespace mpasswd {
namespace {

using asio::ip::tcp;

class TcpStream final : public Stream {
public:
    explicit TcpStream(tcp::socket socket) : socket_(std::move(socket)) {}
    ~TcpStream() override { close(); }

    asio::awaitable<std::size_t> read_some(std::span<char> buffer) override {
        co_return co_await socket_.async_read_some(asio::buffer(buffer.data(), buffer.size()),
                                                   asio::use_awaitable);
    }

    asio::awaitable<void> write_all(std::span<const char> bytes) override {
        co_await asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                                   asio::use_awaitable);
    }

    void close() noexcept override {
        asio::error_code ignored;
        socket_.close(ignored);
    }

private:
    tcp::socket socket_;
};

// getaddrinfo runs on asio's resolver thread and cannot be interrupted.
// The coroutine waits on a timer that the resolver's handler cancels, so
// a cancelled wait returns at once; the shared state outlives it until
// the resolver's handler has run.
asio::awaitable<std::vector<tcp::endpoint>> resolve(const Target& target) {
    struct State {
        explicit State(const asio::any_io_executor& ex)
            : resolver(ex), done(ex, asio::steady_timer::time_point::max()) {}
        tcp::resolver resolver;
        asio::steady_timer done;
        asio::error_code ec;
        std::vector<tcp::endpoint> endpoints;
        bool finished = false;
    };
    auto state = std::make_shared<State>(co_await asio::this_coro::executor);
    state->resolver.async_resolve(
        target.host, std::to_string(target.port), tcp::resolver::numeric_service,
        [state](const asio::error_code& ec, const tcp::resolver::results_type& results) {
            state->ec = ec;
            for (const auto& r : results) {
                state->endpoints.push_back(r.endpoint());
            }
            state->finished = true;
            state->done.cancel();
        });
    co_await state->done.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    if (!state->finished) {
        state->resolver.cancel();
        throw std::system_error(asio::error::operation_aborted);
    }
    if (state->ec) {
        throw std::system_error(state->ec);
    }
    co_return std::move(state->endpoints);
}

bool is_loopback(const asio::ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) {
        return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).is_loopback();
    }
    return a.is_loopback();
}

}  // namespace

asio::awaitable<std::vector<tcp::endpoint>> endpoints_of(const Target& target) {
    asio::error_code ec;
    const auto address = asio::ip::make_address(target.host, ec);
    if (!ec) {
        co_return std::vector<tcp::endpoint>{tcp::endpoint(address, target.port)};
    }
    co_return co_await resolve(target);
}

asio::awaitable<tcp::socket> connect_to(std::vector<tcp::endpoint> endpoints) {
    tcp::socket socket(co_await asio::this_coro::executor);
    co_await asio::async_connect(socket, endpoints, asio::use_awaitable);
    asio::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    co_return socket;
}

namespace {

class TcpTransport final : public Transport {
public:
    asio::awaitable<std::unique_ptr<Stream>> connect(const Target& target) override {
        auto endpoints = co_await endpoints_of(target);
        if (!target.insecure_plaintext) {
            for (const auto& e : endpoints) {
                if (!is_loopback(e.address())) {
                    throw UntrustedError(
                        "plain TCP to " + e.address().to_string() +
                        ", which is not loopback, is refused: use transport ssh, or set "
                        "insecure_plaintext for a network you trust");
                }
            }
        }
        co_return std::make_unique<TcpStream>(co_await connect_to(std::move(endpoints)));
    }
};

}  // namespace

std::unique_ptr<Transport> make_tcp_transport() { return std::make_unique<TcpTransport>(); }

}  // namespace mpasswd
