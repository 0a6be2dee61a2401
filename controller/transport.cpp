// The transport the engine is given: each target's own, by its `via`.
#include "transport.hpp"

#include <algorithm>

#include "controller_config.hpp"

namespace mpasswd {

namespace {

class ViaTransport final : public Transport {
public:
    ViaTransport(SshSettings ssh, const TlsSettings& tls, const std::vector<Target>& targets)
        : tcp_(make_tcp_transport()) {
        const auto uses = [&](Via via) {
            return std::any_of(targets.begin(), targets.end(),
                               [via](const Target& t) { return t.via == via; });
        };
        if (uses(Via::tls)) {
            tls_ = make_tls_transport(tls);  // throws TransportError
        }
        if (uses(Via::ssh)) {
            ssh_ = make_ssh_transport(std::move(ssh));  // throws TransportError
        }
    }

    asio::awaitable<std::unique_ptr<Stream>> connect(const Target& target) override {
        co_return co_await pick(target.via).connect(target);
    }

private:
    Transport& pick(Via via) {
        switch (via) {
        case Via::ssh:
            if (!ssh_) {
                throw TransportError("an ssh target that the transport was not made for");
            }
            return *ssh_;
        case Via::tls:
            if (!tls_) {
                throw TransportError("a tls target that the transport was not made for");
            }
            return *tls_;
        case Via::tcp: break;
        }
        return *tcp_;
    }

    std::unique_ptr<Transport> tcp_;
    std::unique_ptr<Transport> ssh_;
    std::unique_ptr<Transport> tls_;
};

}  // namespace

std::unique_ptr<Transport> make_transport(SshSettings ssh, const TlsSettings& tls,
                                          const std::vector<Target>& targets) {
    return std::make_unique<ViaTransport>(std::move(ssh), tls, targets);
}

// Here rather than in controller_config.cpp, which the controller's fuzz
// target builds without the transports.
std::unique_ptr<Transport> ControllerConfig::transport_for(
    const std::vector<Target>& targets) const {
    try {
        return make_transport(ssh_settings(), tls_settings(), targets);
    } catch (const TransportError& e) {
        throw ConfigError(path + ": " + e.what());
    }
}

}  // namespace mpasswd
