// The shadow edits of EXPR, LOCK, UNLK and the CHCK comparison, on a
// temporary copy of a shadow file (the database lock is off: lckpwdf
// takes /etc/.pwd.lock).
#include <gtest/gtest.h>

#include <crypt.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "account_ops.hpp"

namespace {

namespace fs = std::filesystem;
using mctp::AccountOp;
using Kind = mctp::AccountResult::Kind;

std::string yescrypt(const char* password) {
    char* salt = crypt_gensalt_ra("$y$", 0, nullptr, 0);
    crypt_data cd{};
    std::string out = crypt_r(password, salt, &cd);
    free(salt);
    return out;
}

constexpr long today = 20'000;

class Shadow : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/mpasswd-shadow-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        files_.shadow = dir_ + "/etc/shadow";
        files_.state_directory = dir_ + "/state";
        files_.faillock_directory = dir_ + "/faillock";
        files_.lock_database = false;
        files_.today = today;
        fs::create_directory(dir_ + "/etc");
        fs::create_directory(files_.faillock_directory);
        hash_ = yescrypt("Current-Passw0rd");
        write("root:*:19000:0:99999:7:::\n"
              "alice:" + hash_ + ":19500:0:99999:7:::\n"
              "# a comment\n"
              "bob:!:19500:0:99999:7::25000:\n"
              "carol::19500:0:99999:7:::\n"
              "dave:" + hash_ + ":19500:0:99999:7::100:\n");
    }
    void TearDown() override { fs::remove_all(dir_); }

    void write(const std::string& text) {
        std::ofstream(files_.shadow, std::ios::trunc) << text;
        chmod(files_.shadow.c_str(), 0640);
    }
    [[nodiscard]] std::string read(const std::string& path) const {
        std::ifstream in(path);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    [[nodiscard]] std::string text() const { return read(files_.shadow); }
    // The user's line.
    [[nodiscard]] std::string line(const std::string& user) const {
        std::istringstream in(text());
        for (std::string l; std::getline(in, l);) {
            if (l.starts_with(user + ":")) {
                return l;
            }
        }
        return "";
    }
    // Field i (0-based) of the user's line.
    [[nodiscard]] std::string field(const std::string& user, int i) const {
        std::string l = line(user);
        for (int k = 0; k < i; ++k) {
            l = l.substr(l.find(':') + 1);
        }
        return l.substr(0, l.find(':'));
    }
    [[nodiscard]] std::string kept(const std::string& user) const {
        return read(files_.state_directory + "/lock-expiry-" + user);
    }
    mctp::AccountResult apply(AccountOp op, const std::string& user) {
        return mpasswdd::account::apply(files_, op, user);
    }
    mctp::AccountResult check(const std::string& user, const std::string& pw) {
        return mpasswdd::account::check_password(files_, user, mctp::Secret(pw));
    }
    // Every line but the user's, in order.
    [[nodiscard]] std::string others(const std::string& user) const {
        std::istringstream in(text());
        std::string out;
        for (std::string l; std::getline(in, l);) {
            if (!l.starts_with(user + ":")) {
                out += l + "\n";
            }
        }
        return out;
    }

    std::string dir_;
    std::string hash_;
    mpasswdd::account::Files files_;
};

TEST_F(Shadow, ExprSetsLastChangeToZeroAndTouchesNothingElse) {
    const std::string before = others("alice");
    const std::string old_line = line("alice");
    EXPECT_EQ(apply(AccountOp::expire, "alice").kind, Kind::done);
    EXPECT_EQ(line("alice"), "alice:" + hash_ + ":0:0:99999:7:::");
    EXPECT_EQ(others("alice"), before);
    EXPECT_NE(line("alice"), old_line);
}

TEST_F(Shadow, AnEditKeepsModeAndLeavesNoTemporaryFile) {
    ASSERT_EQ(apply(AccountOp::expire, "alice").kind, Kind::done);
    struct stat st {};
    ASSERT_EQ(stat(files_.shadow.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640U);
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ + "/etc")) {
        ++n;
    }
    EXPECT_EQ(n, 1U);
}

TEST_F(Shadow, AnEditKeepsThePosixAclAndLabel) {
    // The new file must carry what the old one had beyond its mode: a
    // POSIX ACL here, an SELinux label (the same code) where SELinux is.
    // user::rw- user:65534:r-- group::r-- mask::r-- other::---
    const auto entry = [](std::uint16_t tag, std::uint16_t perm, std::uint32_t id) {
        std::string e(8, '\0');
        std::memcpy(e.data(), &tag, 2);
        std::memcpy(e.data() + 2, &perm, 2);
        std::memcpy(e.data() + 4, &id, 4);
        return e;
    };
    const std::uint32_t version = 2;
    std::string acl(reinterpret_cast<const char*>(&version), 4);
    acl += entry(0x01, 6, ~0U) + entry(0x02, 4, 65534) + entry(0x04, 4, ~0U) +
           entry(0x10, 4, ~0U) + entry(0x20, 0, ~0U);
    if (setxattr(files_.shadow.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0) !=
        0) {
        GTEST_SKIP() << "no POSIX ACL on " << dir_ << ": " << std::strerror(errno);
    }
    ASSERT_EQ(apply(AccountOp::expire, "alice").kind, Kind::done);
    std::string got(256, '\0');
    const ssize_t n =
        getxattr(files_.shadow.c_str(), "system.posix_acl_access", got.data(), got.size());
    ASSERT_GE(n, 0) << "the ACL is gone: " << std::strerror(errno);
    got.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(got, acl);
    struct stat st {};
    ASSERT_EQ(stat(files_.shadow.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640U);
}

TEST_F(Shadow, AnEditRemovesTheTemporaryFilesOfCrashedRuns) {
    // A run killed between creating its temporary file and the rename
    // leaves a copy of every hash, named after its own PID.
    const std::string old = dir_ + "/etc/.shadow.mpasswdd.99999";
    std::ofstream(old) << text();
    const std::string other = dir_ + "/etc/.shadow.mpasswdd.99999.keep";
    std::ofstream(other) << "not ours";
    ASSERT_EQ(apply(AccountOp::expire, "alice").kind, Kind::done);
    EXPECT_FALSE(fs::exists(old));
    EXPECT_TRUE(fs::exists(other));  // not one of our names: left alone
}

TEST_F(Shadow, ASecondExprIsAlreadyAndWritesNothing) {
    ASSERT_EQ(apply(AccountOp::expire, "alice").kind, Kind::done);
    struct stat a {};
    ASSERT_EQ(stat(files_.shadow.c_str(), &a), 0);
    EXPECT_EQ(apply(AccountOp::expire, "alice").kind, Kind::already);
    struct stat b {};
    ASSERT_EQ(stat(files_.shadow.c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);  // not replaced
}

TEST_F(Shadow, LockPrefixesTheHashAndExpiresTheAccount) {
    EXPECT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    EXPECT_EQ(field("alice", 1), "!" + hash_);
    EXPECT_EQ(field("alice", 7), "1");
    EXPECT_FALSE(fs::exists(files_.state_directory + "/lock-expiry-alice"));
    EXPECT_EQ(apply(AccountOp::lock, "alice").kind, Kind::already);
    EXPECT_EQ(field("alice", 1), "!" + hash_);  // not "!!"
    EXPECT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::done);
    EXPECT_EQ(line("alice"), "alice:" + hash_ + ":19500:0:99999:7:::");
    EXPECT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::already);
}

TEST_F(Shadow, LockKeepsAFutureExpiryDateAndUnlockRestoresIt) {
    // bob: password "!" (never set), expires on day 25000, after today.
    EXPECT_EQ(apply(AccountOp::lock, "bob").kind, Kind::done);
    EXPECT_EQ(field("bob", 7), "1");
    EXPECT_EQ(kept("bob"), "25000\n");
    struct stat st {};
    ASSERT_EQ(stat(files_.state_directory.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700U);
    // bob's password is "!" alone: unlocking it would leave it empty.
    const auto r = apply(AccountOp::unlock, "bob");
    EXPECT_EQ(r.kind, Kind::failed);
    EXPECT_NE(r.message.find("empty password"), std::string::npos) << r.message;
    EXPECT_EQ(field("bob", 7), "1");
}

TEST_F(Shadow, UnlockRestoresTheKeptDate) {
    write("alice:" + hash_ + ":19500:0:99999:7::25000:\n");
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    ASSERT_EQ(kept("alice"), "25000\n");
    EXPECT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::done);
    EXPECT_EQ(line("alice"), "alice:" + hash_ + ":19500:0:99999:7::25000:");
    EXPECT_FALSE(fs::exists(files_.state_directory + "/lock-expiry-alice"));
}

TEST_F(Shadow, AnEarlierExpiryDateStaysThroughLockAndUnlock) {
    // dave expired on day 100, long before today: the account is expired
    // as it is; LOCK locks the password only, UNLK leaves the date.
    EXPECT_EQ(apply(AccountOp::lock, "dave").kind, Kind::done);
    EXPECT_EQ(field("dave", 1), "!" + hash_);
    EXPECT_EQ(field("dave", 7), "100");
    EXPECT_EQ(apply(AccountOp::unlock, "dave").kind, Kind::done);
    EXPECT_EQ(line("dave"), "dave:" + hash_ + ":19500:0:99999:7::100:");
}

TEST_F(Shadow, ADateSetAfterLockStaysAndTheKeptOneIsForgotten) {
    write("alice:" + hash_ + ":19500:0:99999:7::25000:\n");
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    write("alice:!" + hash_ + ":19500:0:99999:7::19000:\n");  // the admin's own date
    EXPECT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::done);
    EXPECT_EQ(line("alice"), "alice:" + hash_ + ":19500:0:99999:7::19000:");
    EXPECT_FALSE(fs::exists(files_.state_directory + "/lock-expiry-alice"));
}

TEST_F(Shadow, AKeptDateUnlockedByHandIsNotBroughtBackByALaterUnlock) {
    // LOCK keeps 25000; the admin unlocks by hand and removes the expiry
    // date; a later LOCK finds no date to keep. Its UNLK must clear the
    // expiry, not restore the stale 25000 of the first LOCK.
    write("alice:" + hash_ + ":19500:0:99999:7::25000:\n");
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    ASSERT_EQ(kept("alice"), "25000\n");
    write("alice:" + hash_ + ":19500:0:99999:7:::\n");  // usermod -U -e ''
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    EXPECT_FALSE(fs::exists(files_.state_directory + "/lock-expiry-alice"));
    ASSERT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::done);
    EXPECT_EQ(line("alice"), "alice:" + hash_ + ":19500:0:99999:7:::");
}

TEST_F(Shadow, ASecondLockKeepsTheDateOfTheFirst) {
    write("alice:" + hash_ + ":19500:0:99999:7::25000:\n");
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    EXPECT_EQ(apply(AccountOp::lock, "alice").kind, Kind::already);
    ASSERT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::done);
    EXPECT_EQ(field("alice", 7), "25000");
}

TEST_F(Shadow, UnlockEmptiesTheFaillockTally) {
    const std::string tally = files_.faillock_directory + "/alice";
    std::ofstream(tally) << std::string(64, 'x');
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    EXPECT_EQ(fs::file_size(tally), 64U);  // LOCK leaves it
    const auto r = apply(AccountOp::unlock, "alice");
    EXPECT_EQ(r.kind, Kind::done);
    EXPECT_EQ(fs::file_size(tally), 0U);
    EXPECT_NE(r.message.find("faillock"), std::string::npos) << r.message;
    // Already unlocked: still reset.
    std::ofstream(tally) << std::string(64, 'x');
    EXPECT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::already);
    EXPECT_EQ(fs::file_size(tally), 0U);
}

TEST_F(Shadow, AFaillockSymlinkIsNotFollowed) {
    const std::string target = dir_ + "/victim";
    std::ofstream(target) << "keep me";
    fs::create_symlink(target, files_.faillock_directory + "/alice");
    apply(AccountOp::unlock, "alice");
    EXPECT_EQ(read(target), "keep me");
}

TEST_F(Shadow, AnAccountWithoutALineIsNotLocal) {
    const std::string before = text();
    for (auto op : {AccountOp::expire, AccountOp::lock, AccountOp::unlock}) {
        EXPECT_EQ(apply(op, "erin").kind, Kind::not_local);
    }
    EXPECT_EQ(check("erin", "x").kind, Kind::not_local);
    // A comment naming her is no line.
    write(before + "#erin:x:1:0:99999:7:::\n");
    EXPECT_EQ(apply(AccountOp::expire, "erin").kind, Kind::not_local);
}

TEST_F(Shadow, AnAmbiguousLineChangesNothing) {
    // nss_files skips the leading blank: two lines for alice.
    const std::string doubled = text() + "  alice:x:1:0:99999:7:::\n";
    write(doubled);
    for (auto op : {AccountOp::expire, AccountOp::lock, AccountOp::unlock}) {
        const auto r = apply(op, "alice");
        EXPECT_EQ(r.kind, Kind::failed);
        EXPECT_NE(r.message.find("2 lines"), std::string::npos) << r.message;
    }
    EXPECT_EQ(check("alice", "Current-Passw0rd").kind, Kind::failed);
    EXPECT_EQ(text(), doubled);
}

TEST_F(Shadow, ALineWithBlanksOrWrongFieldsChangesNothing) {
    for (const std::string& bad :
         {std::string(" erin:x:1:0:99999:7:::\n"), std::string("erin :x:1:0:99999:7:::\n"),
          std::string("erin:x:1:0:99999:7::\n"), std::string("erin:x:1:0:99999:7::::\n")}) {
        write("alice:x:1:0:99999:7:::\n" + bad);
        EXPECT_EQ(apply(AccountOp::expire, "erin").kind, Kind::failed) << bad;
        EXPECT_EQ(text(), "alice:x:1:0:99999:7:::\n" + bad);
    }
}

TEST_F(Shadow, AFileChangedWhileEditedIsNotReplaced) {
    files_.before_replace = [this] { write(text() + "erin:x:1:0:99999:7:::\n"); };
    const auto r = apply(AccountOp::expire, "alice");
    EXPECT_EQ(r.kind, Kind::failed);
    EXPECT_NE(r.message.find("changed while"), std::string::npos) << r.message;
    EXPECT_EQ(field("alice", 2), "19500");
    EXPECT_NE(line("erin"), "");  // the other writer's change survives
}

TEST_F(Shadow, AnUnsafeStateFolderIsRefused) {
    write("alice:" + hash_ + ":19500:0:99999:7::25000:\n");
    fs::create_directory(files_.state_directory);
    chmod(files_.state_directory.c_str(), 0777);
    const auto r = apply(AccountOp::lock, "alice");
    EXPECT_EQ(r.kind, Kind::failed);
    EXPECT_EQ(field("alice", 7), "25000");  // nothing changed
}

TEST_F(Shadow, AKeptDateIsNeverASymlink) {
    write("alice:" + hash_ + ":19500:0:99999:7::25000:\n");
    fs::create_directory(files_.state_directory);
    chmod(files_.state_directory.c_str(), 0700);
    const std::string target = dir_ + "/victim";
    std::ofstream(target) << "keep me";
    fs::create_symlink(target, files_.state_directory + "/lock-expiry-alice");
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);  // renamed over the link
    EXPECT_EQ(read(target), "keep me");
    EXPECT_EQ(kept("alice"), "25000\n");
    // And a link at read time is refused, not followed.
    fs::remove(files_.state_directory + "/lock-expiry-alice");
    fs::create_symlink(target, files_.state_directory + "/lock-expiry-alice");
    EXPECT_EQ(apply(AccountOp::unlock, "alice").kind, Kind::failed);
}

TEST_F(Shadow, CheckTellsTheCurrentPasswordFromAnother) {
    const std::string before = text();
    EXPECT_EQ(check("alice", "Current-Passw0rd").kind, Kind::done);
    EXPECT_EQ(check("alice", "Old-Passw0rd").kind, Kind::mismatch);
    EXPECT_EQ(check("alice", "Current-Passw0rd ").kind, Kind::mismatch);
    EXPECT_EQ(text(), before);
}

TEST_F(Shadow, CheckJudgesEveryHashPamUnixAccepts) {
    // pam_unix hands any hash not starting with '!' or '*' to crypt():
    // an old DES hash is still the current password there.
    crypt_data cd{};
    const std::string des = crypt_r("Des-Pw", "ab", &cd);
    ASSERT_EQ(des.size(), 13U);
    write("erin:" + des + ":19500:0:99999:7:::\n");
    EXPECT_EQ(check("erin", "Des-Pw").kind, Kind::done);
    EXPECT_EQ(check("erin", "Other").kind, Kind::mismatch);
    // Locked, it never matches.
    write("erin:!" + des + ":19500:0:99999:7:::\n");
    EXPECT_EQ(check("erin", "Des-Pw").kind, Kind::mismatch);
}

TEST_F(Shadow, ALockedOrEmptyHashNeverMatches) {
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    EXPECT_EQ(check("alice", "Current-Passw0rd").kind, Kind::mismatch);
    EXPECT_EQ(check("carol", "anything").kind, Kind::mismatch);  // empty hash
    EXPECT_EQ(check("bob", "!").kind, Kind::mismatch);
    EXPECT_EQ(check("root", "*").kind, Kind::mismatch);
}

TEST_F(Shadow, ALockedHashTakesAsLongAsARealOne) {
    // Not a timing assertion: only that the stand-in hash is really
    // hashed (a locked account does not answer in microseconds).
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    const auto t0 = std::chrono::steady_clock::now();
    check("alice", "Current-Passw0rd");
    const auto locked = std::chrono::steady_clock::now() - t0;
    EXPECT_GT(locked, std::chrono::milliseconds(1));
}

TEST_F(Shadow, AKeptDateIsNeverAnotherUsersFile) {
    // "alice.new" is a user name too: alice's temporary file must not be
    // hers, nor the other way round.
    write("alice:" + hash_ + ":19500:0:99999:7::25000:\n"
          "alice.new:" + hash_ + ":19500:0:99999:7::26000:\n");
    ASSERT_EQ(apply(AccountOp::lock, "alice.new").kind, Kind::done);
    ASSERT_EQ(apply(AccountOp::lock, "alice").kind, Kind::done);
    EXPECT_EQ(kept("alice.new"), "26000\n");
    EXPECT_EQ(kept("alice"), "25000\n");
    ASSERT_EQ(apply(AccountOp::unlock, "alice.new").kind, Kind::done);
    EXPECT_EQ(field("alice.new", 7), "26000");
}

TEST_F(Shadow, AHeldFaillockTallyIsNotWaitedForEver) {
    const std::string tally = files_.faillock_directory + "/alice";
    std::ofstream(tally) << std::string(64, 'x');
    const int fd = open(tally.c_str(), O_RDONLY);
    ASSERT_EQ(flock(fd, LOCK_EX), 0);  // another process would hold it so
    files_.faillock_wait = std::chrono::milliseconds(100);
    const auto r = [&] {
        // flock locks belong to the open file: a second open conflicts.
        return apply(AccountOp::unlock, "alice");
    }();
    close(fd);
    EXPECT_EQ(r.kind, Kind::already);
    EXPECT_NE(r.message.find("busy: not reset"), std::string::npos) << r.message;
    EXPECT_EQ(fs::file_size(tally), 64U);
}

TEST(AccountNames, DotAndDotDotAreNoUserNames) {
    mpasswdd::account::Files f;
    f.shadow = "/nonexistent/shadow";
    f.lock_database = false;
    for (const char* name : {".", "..", "a/b", ""}) {
        const auto r = mpasswdd::account::apply(f, AccountOp::unlock, name);
        EXPECT_EQ(r.kind, Kind::failed) << name;
        EXPECT_EQ(r.message, "not a valid user name") << name;
    }
}

}  // namespace
