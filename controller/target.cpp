#include "target.hpp"

#include <arpa/inet.h>

#include <set>
#include <sstream>

#include "config_file.hpp"
#include "controller_limits.hpp"
#include "fingerprint.hpp"
#include "text.hpp"

namespace mpasswd {
namespace {

// inet_pton reads a C string: a NUL inside would let "::\0anything" pass
// as "::" (read_checked refuses a file with a NUL, parse_hosts alone does
// not).
bool is_ipv4(const std::string& s) {
    in_addr a{};
    return s.find('\0') == std::string::npos && inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& s) {
    in6_addr a{};
    return s.find('\0') == std::string::npos && inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

bool is_host_name(std::string_view s) {
    if (s.empty() || s.size() > 253) {
        return false;
    }
    std::size_t label = 0;
    char prev = '.';
    for (const char c : s) {
        const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '.') {
            if (prev == '.' || prev == '-') {
                return false;
            }
            label = 0;
        } else if (alnum || c == '-' || c == '_') {
            if (c == '-' && prev == '.') {
                return false;
            }
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
        prev = c;
    }
    return prev != '-';
}

bool parse_port(std::string_view s, std::uint16_t* port) {
    return mctp::cfg::parse_uint(s, std::uint16_t{1}, std::uint16_t{65535}, port);
}

// A target reached by `via`: the port for that transport unless the text
// names one.
std::optional<Target> target_via(std::string_view text, Via via, bool insecure,
                                 const TargetDefaults& defaults, std::string* why) {
    auto t = parse_target(text, via == Via::ssh ? defaults.ssh_port : defaults.port, why);
    if (t) {
        t->via = via;
        t->insecure_plaintext = insecure;
    }
    return t;
}

}  // namespace

std::string_view via_name(Via via) noexcept {
    switch (via) {
    case Via::ssh: return "ssh";
    case Via::tls: return "tls";
    case Via::tcp: break;
    }
    return "tcp";
}

std::string Target::label() const {
    const std::string p = std::to_string(port);
    return host.find(':') != std::string::npos ? "[" + host + "]:" + p : host + ":" + p;
}

std::optional<Target> parse_target(std::string_view text, std::uint16_t default_port,
                                   std::string* why) {
    Target t;
    t.port = default_port;
    std::string_view host = text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            *why = "'[' without ']'";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        const auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (!rest.starts_with(':') || !parse_port(rest.substr(1), &t.port)) {
                *why = "after ']' comes ':PORT', a port from 1 to 65535";
                return std::nullopt;
            }
        }
        t.host = host;
        if (!is_ipv6(t.host)) {
            *why = "'" + mctp::printable(t.host, 128) + "' in brackets is not an IPv6 address";
            return std::nullopt;
        }
        return t;
    }
    const auto colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
        // Two colons or more: a bare IPv6 address, no port.
        t.host = text;
        if (!is_ipv6(t.host)) {
            *why = "'" + mctp::printable(t.host, 128) +
                   "' is not an IPv6 address (write [ADDRESS]:PORT for a port)";
            return std::nullopt;
        }
        return t;
    }
    if (colon != std::string_view::npos) {
        host = text.substr(0, colon);
        if (!parse_port(text.substr(colon + 1), &t.port)) {
            *why = "'" + mctp::printable(text.substr(colon + 1), 128) +
                   "' is not a port from 1 to 65535";
            return std::nullopt;
        }
    }
    t.host = host;
    if (!is_ipv4(t.host) && !is_host_name(t.host)) {
        *why = "'" + mctp::printable(t.host, 128) + "' is neither a host name nor an IP address";
        return std::nullopt;
    }
    return t;
}

std::optional<std::vector<Target>> parse_target_args(const std::vector<std::string>& args,
                                                     const TargetDefaults& defaults,
                                                     std::string* why) {
    std::vector<Target> out;
    std::set<std::string> labels;
    for (const auto& arg : args) {
        if (out.size() >= limits::targets_max) {
            *why = "more than " + std::to_string(limits::targets_max) + " targets";
            return std::nullopt;
        }
        std::string what;
        auto t = target_via(arg, defaults.via, defaults.insecure_plaintext, defaults, &what);
        if (!t) {
            *why = "-H " + arg + ": " + what;
            return std::nullopt;
        }
        t->origin = "-H";
        if (!labels.insert(t->label()).second) {
            *why = "-H " + arg + ": " + t->label() + " is given twice";
            return std::nullopt;
        }
        out.push_back(std::move(*t));
    }
    return out;
}

std::optional<Target> parse_hosts_line(std::string_view line, const TargetDefaults& defaults,
                                      std::string* why) {
    std::istringstream words{std::string(line)};
    std::string word;
    words >> word;
    Via via = defaults.via;
    bool insecure = defaults.insecure_plaintext;
    bool plain = false;
    std::string pin;
    std::string option;
    while (words >> option) {
        if (option == "ssh") {
            via = Via::ssh;
        } else if (option == "tcp") {
            via = Via::tcp;
        } else if (option == "tls") {
            via = Via::tls;
        } else if (option == "insecure_plaintext") {
            insecure = true;
        } else if (option == "auth=plain") {
            plain = true;
        } else if (option.starts_with("tls_fingerprint=")) {
            const auto hex = mctp::normalize_sha256(option.substr(16));
            if (!hex) {
                *why = "tls_fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons "
                       "allowed";
                return std::nullopt;
            }
            pin = *hex;
            via = Via::tls;
        } else {
            *why = "unknown option '" + mctp::printable(option, 128) +
                   "' (HOST[:PORT] then tcp, tls, ssh, insecure_plaintext, auth=plain or "
                   "tls_fingerprint=SHA256)";
            return std::nullopt;
        }
    }
    if (!pin.empty() && via != Via::tls) {
        *why = "tls_fingerprint goes with tls only";
        return std::nullopt;
    }
    auto target = target_via(word, via, insecure, defaults, why);
    if (target) {
        target->auth_plain = plain;
        target->tls_fingerprint = pin;
    }
    return target;
}

}  // namespace mpasswd
