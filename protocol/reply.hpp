// Reply codes and the formatting of reply lines.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mctp {

enum class Code : int {
    ready = 220,              // greeting
    closing = 221,            // QUIT
    ok = 250,                 // command done
    auth_challenge = 334,     // a SASL challenge (AUTH SCRAM-SHA-256)
    start_data = 354,         // DATA accepted, send the password
    continue_data = 355,      // data line received
    unavailable = 421,        // disabled, timeout, too many failures; closes
    local_error = 451,        // change aborted by a local or temporary failure
    unknown_command = 500,    // no such verb
    syntax_error = 501,       // bad argument, over-long line, bad data
    bad_sequence = 503,       // command not allowed in this state
    controller_rejected = 521,// peer matches no controller; closes
    access_denied = 530,      // wrong secret, or policy forbids the user
    user_unknown = 551,       // no such user
    transaction_failed = 554, // the host's PAM policy refused the password
};

// The SASL exception to line_max (RFC 4954 makes the same): the AUTH
// line, the client's responses during an AUTH exchange and the 334
// challenges may be up to this many octets, CRLF included.
inline constexpr std::size_t sasl_line_max = 1024;

// EHLO's reply is at most this many lines.
inline constexpr std::size_t ehlo_lines_max = 16;

constexpr int number(Code c) { return static_cast<int>(c); }

struct Reply {
    Code code;
    std::string text;
    // Wait this long before sending (failed AUTH), so guessing is slow.
    std::chrono::milliseconds delay{0};
    // Close the connection once the reply is sent.
    bool close = false;
    // More lines of the same reply (EHLO), after `text`: every line but
    // the last is sent as "NNN-text", the last as "NNN text".
    std::vector<std::string> more{};
    // A 334 challenge: up to sasl_line_max octets whatever line_max is.
    bool long_line = false;
};

// Reduces text to printable ASCII: white space and control characters
// become one space, every other non-ASCII character (a UTF-8 sequence or
// a stray byte) one '?'. Leading and trailing spaces go.
std::string printable_ascii(std::string_view text);

// "NNN text\r\n", text made printable and cut so that the whole line,
// CRLF included, is at most line_max octets (sasl_line_max for a
// long_line reply). With `more`, one "NNN-text\r\n" line per line but the
// last, each cut the same way.
std::string format_reply(const Reply& reply, std::size_t line_max);

// A reply line as a client reads it.
struct ParsedReply {
    Code code = Code::ok;  // any three digits 200-599, named or not
    std::string text;      // printable ASCII, as format_reply makes it
    bool more = false;     // a "NNN-" line: more lines of this reply follow
};

// Parses one reply line (terminator already removed): "NNN text", "NNN",
// or the continuation "NNN-text" of a multi-line reply. The code is three
// digits 200-599; the text is reduced to printable ASCII. Anything else
// (letters, a bare number, another separator) is nullopt.
std::optional<ParsedReply> parse_reply_line(std::string_view line);

// As parse_reply_line, for a single-line reply: a continuation is nullopt.
std::optional<ParsedReply> parse_reply(std::string_view line);

}  // namespace mctp
