#include "reply.hpp"

#include <algorithm>
#include <string>

namespace mctp {

std::string printable_ascii(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool pending_space = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == ' ' || c < 0x20 || c == 0x7f) {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) {
            out.push_back(' ');
            pending_space = false;
        }
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            continue;
        }
        // One '?' per UTF-8 sequence: skip its continuation bytes.
        out.push_back('?');
        while (i + 1 < text.size() &&
               (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80 && c >= 0xC0) {
            ++i;
        }
    }
    return out;
}

namespace {

std::string format_line(Code code, char sep, std::string_view raw, std::size_t line_max) {
    std::string line = std::to_string(number(code));
    const std::string text = printable_ascii(raw);
    if (!text.empty() || sep == '-') {
        line.push_back(sep);
        line += text;
    }
    if (line_max >= 6 && line.size() + 2 > line_max) {
        line.resize(line_max - 2);
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
    }
    line += "\r\n";
    return line;
}

}  // namespace

std::string format_reply(const Reply& reply, std::size_t line_max) {
    if (reply.long_line) {
        line_max = std::max(line_max, sasl_line_max);
    }
    if (reply.more.empty()) {
        return format_line(reply.code, ' ', reply.text, line_max);
    }
    std::string out = format_line(reply.code, '-', reply.text, line_max);
    for (std::size_t i = 0; i < reply.more.size(); ++i) {
        out += format_line(reply.code, i + 1 == reply.more.size() ? ' ' : '-', reply.more[i],
                           line_max);
    }
    return out;
}

std::optional<ParsedReply> parse_reply_line(std::string_view line) {
    if (line.size() < 3) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < 3; ++i) {
        if (line[i] < '0' || line[i] > '9') {
            return std::nullopt;
        }
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code < 200 || code > 599) {
        return std::nullopt;
    }
    if (line.size() > 3 && line[3] != ' ' && line[3] != '-') {
        return std::nullopt;
    }
    return ParsedReply{static_cast<Code>(code),
                       printable_ascii(line.size() > 4 ? line.substr(4) : ""),
                       line.size() > 3 && line[3] == '-'};
}

std::optional<ParsedReply> parse_reply(std::string_view line) {
    auto r = parse_reply_line(line);
    if (r && r->more) {
        return std::nullopt;
    }
    return r;
}

}  // namespace mctp
