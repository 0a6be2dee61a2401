// Resolving and connecting a TCP socket to a target, shared by the tcp
// and tls transports (internal to the controller library).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <vector>

#include "target.hpp"

namespace mpasswd {

// The target's addresses: an IP literal as is, a name through the system
// resolver (cancellable wait).
asio::awaitable<std::vector<asio::ip::tcp::endpoint>> endpoints_of(const Target& target);

// Connects to the first endpoint that answers; TCP_NODELAY set.
asio::awaitable<asio::ip::tcp::socket> connect_to(std::vector<asio::ip::tcp::endpoint> endpoints);

}  // namespace mpasswd
