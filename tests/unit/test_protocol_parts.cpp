// The protocol engine's parts: framer, text rules, replies, secrets.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "line_framer.hpp"
#include "reply.hpp"
#include "secret.hpp"
#include "text.hpp"

namespace {

struct Collected {
    std::vector<std::string> lines;  // "!" marks an overflow
};

Collected frame(mctp::LineFramer& f, std::string_view bytes) {
    Collected c;
    f.feed(std::span<const char>(bytes.data(), bytes.size()),
           [&](mctp::FrameEvent ev, std::string_view line) {
               c.lines.emplace_back(ev == mctp::FrameEvent::line ? std::string(line) : "!");
               return true;
           });
    return c;
}

TEST(LineFramer, SplitsOnLfAndDropsOneCr) {
    mctp::LineFramer f(128);
    EXPECT_EQ(frame(f, "a\r\nb\nc\r\r\n\n").lines,
              (std::vector<std::string>{"a", "b", "c\r", ""}));
    EXPECT_FALSE(f.mid_line());
}

TEST(LineFramer, BoundaryIsLineMaxWithTerminator) {
    mctp::LineFramer f(128);
    EXPECT_EQ(frame(f, std::string(127, 'x') + "\n").lines.at(0).size(), 127U);
    EXPECT_EQ(frame(f, std::string(126, 'x') + "\r\n").lines.at(0).size(), 126U);
    EXPECT_EQ(frame(f, std::string(127, 'x') + "\r\nok\n").lines,
              (std::vector<std::string>{"!", "ok"}));
    EXPECT_EQ(frame(f, std::string(128, 'x') + "\n").lines, (std::vector<std::string>{"!"}));
}

TEST(LineFramer, DiscardsTheRestOfAnOverLongLineAcrossFeeds) {
    mctp::LineFramer f(128);
    EXPECT_EQ(frame(f, std::string(200, 'x')).lines, (std::vector<std::string>{"!"}));
    EXPECT_TRUE(f.mid_line());
    EXPECT_TRUE(frame(f, std::string(5000, 'y')).lines.empty());
    EXPECT_EQ(frame(f, "QUIT\r\nNOOP\r\n").lines, (std::vector<std::string>{"NOOP"}));
}

TEST(LineFramer, StopsWhenTheSinkSaysSo) {
    mctp::LineFramer f(128);
    std::vector<std::string> got;
    const std::string in = "one\ntwo\nthree\n";
    const auto used = f.feed(std::span<const char>(in.data(), in.size()),
                             [&](mctp::FrameEvent, std::string_view l) {
                                 got.emplace_back(l);
                                 return got.size() < 2;
                             });
    EXPECT_EQ(got, (std::vector<std::string>{"one", "two"}));
    EXPECT_EQ(used, 8U);
}

TEST(Text, UserNames) {
    const std::string longest(32, 'u');
    for (const char* ok : {"alice", "a", "_svc", "a.b-c_d", "host$", "0day", longest.c_str()}) {
        EXPECT_TRUE(mctp::is_user_name(ok)) << ok;
    }
    for (const char* bad : {"", "-x", "a b", "a/b", "$", "ab$c", "caf\xc3\xa9", "a:b"}) {
        EXPECT_FALSE(mctp::is_user_name(bad)) << bad;
    }
    EXPECT_FALSE(mctp::is_user_name(std::string(33, 'u')));
}

TEST(Text, PasswordText) {
    EXPECT_TRUE(mctp::is_password_text("plain ascii with spaces"));
    EXPECT_TRUE(mctp::is_password_text("\xf0\x9f\x94\x91 key"));
    EXPECT_FALSE(mctp::is_password_text("\x7f"));
    EXPECT_FALSE(mctp::is_password_text("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(mctp::is_password_text("\xf4\x90\x80\x80"));  // > U+10FFFF
    EXPECT_FALSE(mctp::is_password_text("\xe2\x82"));          // truncated
    EXPECT_FALSE(mctp::is_password_text("\xe0\x80\xaf"));      // overlong
}

TEST(Reply, FormatIsCodeSpaceTextCrLf) {
    EXPECT_EQ(mctp::format_reply({mctp::Code::ok, "fine"}, 128), "250 fine\r\n");
    EXPECT_EQ(mctp::format_reply({mctp::Code::closing, ""}, 128), "221\r\n");
}

TEST(Reply, TextIsCutToLineMax) {
    const auto line = mctp::format_reply({mctp::Code::transaction_failed, std::string(500, 'm')}, 128);
    EXPECT_EQ(line.size(), 128U);
    EXPECT_TRUE(line.ends_with("\r\n"));
    EXPECT_TRUE(line.starts_with("554 mmm"));
}

TEST(Reply, TextIsPrintableAscii) {
    EXPECT_EQ(mctp::printable_ascii("a\r\nb\tc\x01\xff\xc3\xa9z  "), "a b c ??z");
}

TEST(Secret, HoldsMovesAndClears) {
    mctp::Secret a("hunter2-abc");
    EXPECT_EQ(a.view(), "hunter2-abc");
    EXPECT_STREQ(a.c_str(), "hunter2-abc");
    mctp::Secret b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(b.view(), "hunter2-abc");
    b.clear();
    EXPECT_TRUE(b.empty());
    EXPECT_STREQ(b.c_str(), "");
}

TEST(Secret, WipeOverwrites) {
    char buf[] = "sensitive";
    mctp::wipe(buf, sizeof buf);
    for (const char c : buf) {
        EXPECT_EQ(c, '\0');
    }
}

TEST(Secret, ConstantTimeEqual) {
    EXPECT_TRUE(mctp::constant_time_equal("abc", "abc"));
    EXPECT_FALSE(mctp::constant_time_equal("abc", "abd"));
    EXPECT_FALSE(mctp::constant_time_equal("abc", "abcd"));
    EXPECT_TRUE(mctp::constant_time_equal("", ""));
}

// ---- mctp::printable: how any outside text is shown ----

bool only_printable_ascii(const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) <= 0x7E;
    });
}

TEST(Printable, KeepsPrintableAsciiAsItIs) {
    const std::string all = [] {
        std::string s;
        for (int c = 0x20; c <= 0x7E; ++c) {
            s.push_back(static_cast<char>(c));
        }
        return s;
    }();
    EXPECT_EQ(mctp::printable(all), all);
    EXPECT_EQ(mctp::printable(""), "");
    EXPECT_EQ(mctp::printable("a\\x1b b"), "a\\x1b b");  // a backslash stays one
}

TEST(Printable, EscapesTerminalSequencesAndLineBreaks) {
    // A title change (OSC ... BEL) and a screen clear (CSI 2 J), a forged
    // second line, a TAB, a CR.
    EXPECT_EQ(mctp::printable("\x1b]0;pwned\x07\x1b[2J"), "\\x1b]0;pwned\\x07\\x1b[2J");
    EXPECT_EQ(mctp::printable("bad\nalice: password changed"),
              "bad\\x0aalice: password changed");
    EXPECT_EQ(mctp::printable("a\tb\rc"), "a\\x09b\\x0dc");
    EXPECT_EQ(mctp::printable(std::string("nul\0x", 5)), "nul\\x00x");
    EXPECT_EQ(mctp::printable("del\x7f"), "del\\x7f");
}

TEST(Printable, EscapesEveryOctetFrom0x80) {
    // C1 controls (CSI as U+009B, both as one byte and in UTF-8), valid
    // UTF-8 and invalid UTF-8 alike.
    EXPECT_EQ(mctp::printable("\x9b" "2J"), "\\x9b2J");
    EXPECT_EQ(mctp::printable("\xc2\x9b" "2J"), "\\xc2\\x9b2J");
    EXPECT_EQ(mctp::printable("caf\xc3\xa9"), "caf\\xc3\\xa9");
    EXPECT_EQ(mctp::printable("\xff\xfe\xc3"), "\\xff\\xfe\\xc3");
    for (int c = 0; c < 256; ++c) {
        const std::string one(1, static_cast<char>(c));
        const std::string shown = mctp::printable(one);
        EXPECT_TRUE(only_printable_ascii(shown)) << c;
        EXPECT_EQ(shown.size(), c >= 0x20 && c <= 0x7E ? 1U : 4U) << c;
    }
}

TEST(Printable, BoundsTheLengthBetweenEscapes) {
    EXPECT_EQ(mctp::printable("abcdef", 6), "abcdef");
    EXPECT_EQ(mctp::printable("abcdefg", 6), "abc...");
    // "a" + "\x1b" is 5 octets; with "..." it does not fit in 7: the
    // escape is left out whole, never cut in two.
    EXPECT_EQ(mctp::printable("a\x1b" "bcdef", 7), "a...");
    EXPECT_EQ(mctp::printable("a\x1b", 5), "a\\x1b");
    EXPECT_EQ(mctp::printable("abcdef", 3), "...");
    EXPECT_EQ(mctp::printable("abcdef", 0), "");
    const std::string huge(100'000, '\x1b');
    const std::string shown = mctp::printable(huge);
    EXPECT_LE(shown.size(), mctp::limits::shown_text_max);
    EXPECT_TRUE(shown.ends_with("\\x1b..."));
    EXPECT_TRUE(only_printable_ascii(shown));
}

}  // namespace
