// mpasswd --batch's input (cli/batch.*): every line checked before
// anything is sent; errors name the line and never quote a password.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "batch.hpp"
#include "temp_file.hpp"

namespace {

using namespace mpasswd;

std::vector<BatchEntry> read_text(const std::string& text) {
    TempFile f(text);
    const int fd = open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    struct Close {
        int fd;
        ~Close() { close(fd); }
    } closer{fd};
    return read_batch(fd);
}

std::string error_of(const std::string& text) {
    try {
        read_text(text);
    } catch (const BatchError& e) {
        return e.what();
    }
    return "(accepted)";
}

TEST(BatchInput, ChpasswdLines) {
    const auto entries = read_text("alice:Pw:with:colons\r\nbob:b0b-Pw\ncarol:.dot");
    ASSERT_EQ(entries.size(), 3U);
    EXPECT_EQ(entries[0].user, "alice");
    EXPECT_EQ(entries[0].password.view(), "Pw:with:colons");  // after the first ':'
    EXPECT_EQ(entries[0].line, 1U);
    EXPECT_EQ(entries[1].password.view(), "b0b-Pw");
    EXPECT_EQ(entries[2].user, "carol");
    EXPECT_EQ(entries[2].password.view(), ".dot");  // no LF at the end is fine
    EXPECT_EQ(entries[2].line, 3U);
}

TEST(BatchInput, BadLinesNameTheLineOnly) {
    EXPECT_EQ(error_of(""), "no user:password lines on standard input");
    EXPECT_EQ(error_of("alice:x1\n\nbob:x2\n"),
              "batch line 2: empty line (each line is user:password)");
    EXPECT_EQ(error_of("alice:x1\nbob x2\n"), "batch line 2: no ':' (each line is user:password)");
    EXPECT_EQ(error_of("alice:x1\nbob:\n"), "batch line 2: empty password");
    EXPECT_EQ(error_of(":Hunter 2\n"), "batch line 1: not a valid user name before the ':'");
    EXPECT_EQ(error_of("al ice:x 1\n"), "batch line 1: not a valid user name before the ':'");
    EXPECT_EQ(error_of("alice:x1\nbob:a\tb\n"),
              "batch line 2: the password is not valid UTF-8 text (control characters cannot "
              "be sent)");
    EXPECT_EQ(error_of("alice:x1\nbob:x2\nalice:x3\n"), "batch line 3: the same user as line 1");
    EXPECT_EQ(error_of("alice:" + std::string(4094, 'x') + "\n"),
              "batch line 1: password longer than 4093 octets");
    EXPECT_EQ(error_of("alice:" + std::string(5000, 'x') + "\n"),
              "batch line 1: longer than 4126 octets");
}

// A line with the columns swapped holds the password where the user
// should be: the message must not show it, nor any other column.
TEST(BatchInput, SwappedColumnsNeverEchoThePassword) {
    const std::string secret = "S3cret!Pw";
    const std::string m = error_of("alice:x1\n" + secret + ":bob\n");
    EXPECT_EQ(m, "batch line 2: not a valid user name before the ':' (each line is "
                 "user:password; are the columns swapped?)");
    // A password that looks like a user name, swapped, given twice: the
    // duplicate message names lines, not the "user".
    const std::string dup = error_of("Summer2024:alice\nSummer2024:bob\n");
    EXPECT_EQ(dup, "batch line 2: the same user as line 1");
    for (const auto& text : {m, dup, error_of("bob:" + secret + "\x01\n"),
                             error_of(secret + "\n")}) {
        EXPECT_EQ(text.find(secret), std::string::npos) << text;
        EXPECT_EQ(text.find("Summer2024"), std::string::npos) << text;
    }
}

TEST(BatchInput, AtMostTenThousandUsers) {
    std::string text;
    for (int i = 0; i < 10'000; ++i) {
        text += "u" + std::to_string(i) + ":pw\n";
    }
    EXPECT_EQ(read_text(text).size(), 10'000U);
    EXPECT_EQ(error_of(text + "last:pw\n"),
              "batch line 10001: more than 10000 users in one batch");
}

}  // namespace
