// The SCRAM server side of the tests' fake hosts: controller "ctl" with a
// verifier made from `secret` (fixed salt), run as the monitor runs it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "scram.hpp"
#include "session.hpp"

struct FakeScram {
    // binding: the tls-exporter octets (PLUS offered) or empty.
    std::string binding;
    std::unique_ptr<mctp::scram::Server> server;

    mctp::ScramResult first(std::string_view client_first, const std::string& secret) {
        server = std::make_unique<mctp::scram::Server>(!binding.empty(), binding);
        std::string why;
        const auto name = server->start(client_first, &why);
        if (!name || *name != "ctl") {
            server.reset();
            return {};
        }
        return {mctp::ScramResult::Kind::next,
                server->first(mctp::scram::make_verifier(secret, "0123456789abcdef", 4096)), ""};
    }

    mctp::ScramResult final(std::string_view client_final) {
        if (!server) {
            return {};
        }
        const auto s = std::move(server);
        std::string why;
        auto f = s->final(client_final, &why);
        if (!f) {
            return {};
        }
        return {mctp::ScramResult::Kind::next, std::move(*f), "ctl"};
    }
};
