// The checked reader every configured file of both sides goes through
// (common/config_file) and the TLS files read with it (common/tls_files):
// anything but a regular file is refused at once, without waiting, and
// nothing over the size limit is read.
#include <gtest/gtest.h>

#include "temp_file.hpp"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "config_file.hpp"
#include "tls_files.hpp"

namespace {

using mctp::cfg::ConfigError;

// A temporary folder with a FIFO, a socket and a subfolder in it. Every
// test ends within 10 s: a reader that waits on the FIFO (the bug) is
// killed by SIGALRM instead of hanging the suite.
class SpecialFiles : public ::testing::Test {
protected:
    void SetUp() override {
        alarm(10);
        char tmpl[] = "/tmp/mpasswd-special-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        fifo_ = dir_ + "/fifo";
        ASSERT_EQ(mkfifo(fifo_.c_str(), 0600), 0);
        folder_ = dir_ + "/folder";
        ASSERT_EQ(mkdir(folder_.c_str(), 0700), 0);
        socket_ = dir_ + "/socket";
        sock_fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, socket_.c_str(), sizeof addr.sun_path - 1);
        ASSERT_EQ(bind(sock_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        link_ = dir_ + "/link-to-fifo";
        ASSERT_EQ(symlink(fifo_.c_str(), link_.c_str()), 0);
    }
    void TearDown() override {
        close(sock_fd_);
        for (const auto& p : {fifo_, socket_, link_}) {
            unlink(p.c_str());
        }
        rmdir(folder_.c_str());
        rmdir(dir_.c_str());
        alarm(0);
    }

    std::string dir_, fifo_, folder_, socket_, link_;
    int sock_fd_ = -1;
};

// The message of the ConfigError that read throws, or "(read)".
std::string error_of(const std::function<void()>& read) {
    try {
        read();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(read)";
}

std::string checked(const std::string& path, std::size_t max = mctp::cfg::config_size_max) {
    return error_of([&] { mctp::cfg::read_checked(path, "secret", true, max); });
}

std::string private_(const std::string& path, std::size_t max = 4096) {
    return error_of([&] { mctp::cfg::read_private(path, max); });
}

TEST_F(SpecialFiles, FifoIsRefusedAtOnceWithItsName) {
    EXPECT_EQ(checked(fifo_), fifo_ + ": not a regular file (a FIFO)");
    EXPECT_EQ(private_(fifo_), fifo_ + ": not a regular file (a FIFO)");
}

TEST_F(SpecialFiles, SymlinkIsFollowedAndTheFileItLeadsToChecked) {
    EXPECT_EQ(checked(link_), link_ + ": not a regular file (a FIFO)");
    TempFile real("hosts = a\n", 0644);
    const std::string good = dir_ + "/link-to-file";
    ASSERT_EQ(symlink(real.path().c_str(), good.c_str()), 0);
    EXPECT_EQ(mctp::cfg::read_checked(good, "", true), "hosts = a\n");
    unlink(good.c_str());
}

TEST_F(SpecialFiles, DevicesDirectoriesAndSocketsAreRefused) {
    EXPECT_EQ(checked("/dev/zero"), "/dev/zero: not a regular file (a character device)");
    EXPECT_EQ(private_("/dev/null"), "/dev/null: not a regular file (a character device)");
    EXPECT_EQ(checked(folder_), folder_ + ": not a regular file (a directory)");
    EXPECT_EQ(private_(folder_), folder_ + ": not a regular file (a directory)");
    EXPECT_EQ(checked(socket_), socket_ + ": not a regular file (a socket)");
}

TEST(CheckedReader, SizeLimitOnTheFileAndOnWhatIsRead) {
    TempFile at_limit(std::string(100, 'x'), 0600);
    EXPECT_EQ(mctp::cfg::read_checked(at_limit.path(), "", true, 100), std::string(100, 'x'));
    TempFile over(std::string(101, 'x'), 0600);
    EXPECT_EQ(checked(over.path(), 100), over.path() + ": larger than 100 octets");
    EXPECT_EQ(private_(over.path(), 100), over.path() + ": larger than 100 octets");
    // A file that fstat calls empty but that has more to read (as a file
    // growing after fstat would): what is read is bounded too.
    const std::string status = "/proc/self/status";
    EXPECT_EQ(checked(status, 16), status + ": larger than 16 octets");
    EXPECT_NE(mctp::cfg::read_checked(status, "", true, 1 << 16).find("Name:"),
              std::string::npos);
}

// Only root (or the caller) may change a configuration file: a group
// other than root's may not write it either.
TEST(CheckedReader, WritableByOthersOrByAGroupIsRefused) {
    TempFile f("key = value\n", 0666);
    EXPECT_EQ(checked(f.path(), 100), f.path() + ": writable by other users; it must be owned "
                                                 "by root and not world-writable (chmod 600)");
    if (geteuid() != 0) {
        GTEST_SKIP() << "not root: cannot give the file to another group";
    }
    chmod(f.path().c_str(), 0664);
    ASSERT_EQ(chown(f.path().c_str(), 0, 65534), 0);
    EXPECT_EQ(checked(f.path(), 100),
              f.path() + ": writable by its group; only root may change it (chmod g-w)");
    ASSERT_EQ(chown(f.path().c_str(), 0, 0), 0);
    EXPECT_EQ(mctp::cfg::read_checked(f.path(), "", true, 100), "key = value\n");
}

struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

TEST_F(SpecialFiles, TlsFilesAreReadTheSameWay) {
    const std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_method()));
    ASSERT_TRUE(ctx);
    const std::string fifo = fifo_ + ": not a regular file (a FIFO)";
    EXPECT_EQ(error_of([&] { mctp::tls::use_certificate_chain(ctx.get(), fifo_); }), fifo);
    EXPECT_EQ(error_of([&] { mctp::tls::use_private_key(ctx.get(), fifo_); }), fifo);
    EXPECT_EQ(error_of([&] { mctp::tls::load_trusted(ctx.get(), fifo_); }), fifo);
    EXPECT_EQ(error_of([&] { mctp::tls::load_trusted(ctx.get(), "/dev/zero"); }),
              "/dev/zero: not a regular file (a character device)");
    TempFile big(std::string(mctp::tls::pem_file_max + 1, 'x'), 0600);
    EXPECT_EQ(error_of([&] { mctp::tls::load_trusted(ctx.get(), big.path()); }),
              big.path() + ": larger than 1048576 octets");
    TempFile empty("", 0600);
    EXPECT_EQ(error_of([&] { mctp::tls::load_trusted(ctx.get(), empty.path()); }),
              empty.path() + ": no PEM certificate in it");
    EXPECT_NE(error_of([&] { mctp::tls::use_certificate_chain(ctx.get(), empty.path()); }),
              "(read)");
    EXPECT_NE(error_of([&] { mctp::tls::use_private_key(ctx.get(), empty.path()); }), "(read)");
}

TEST(TlsFiles, EncryptedKeyIsRefusedWithoutAskingForAPassPhrase) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    ASSERT_NE(key, nullptr);
    BIO* bio = BIO_new(BIO_s_mem());
    static const char pass[] = "pass-phrase";
    ASSERT_EQ(PEM_write_bio_PrivateKey(bio, key, EVP_aes_128_cbc(),
                                       reinterpret_cast<const unsigned char*>(pass),
                                       sizeof pass - 1, nullptr, nullptr),
              1);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    TempFile encrypted(std::string(data, static_cast<std::size_t>(len)), 0600);
    BIO_free(bio);
    EVP_PKEY_free(key);
    const std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_method()));
    const std::string why =
        error_of([&] { mctp::tls::use_private_key(ctx.get(), encrypted.path()); });
    EXPECT_EQ(why.rfind(encrypted.path() + ": ", 0), 0U) << why;
}

}  // namespace
