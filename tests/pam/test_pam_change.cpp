// The PAM layer of mpasswdd against real libpam, through pam_wrapper
// (service files from a private folder, never /etc/pam.d) with pam_matrix
// as the password store and the real pam_pwquality as the policy.
//
// pam_matrix checks the old password in PAM_PRELIM_CHECK. mpasswdd runs
// as root and never knows the old password, exactly as pam_unix lets root
// change a password without it; the test stacks model that by ignoring
// pam_matrix's auth_err in the preliminary phase only. In the update
// phase every failure of pam_matrix still fails the change.
#include <gtest/gtest.h>

#include <security/pam_appl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "pam_change.hpp"

namespace fs = std::filesystem;
using Kind = mctp::ChangeResult::Kind;

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// pam_wrapper reads the service folder once per process: one folder for
// the whole run, with the passdb reset before each test.
struct Fixture {
    fs::path dir, services, passdb;
    std::string pwquality;

    Fixture() {
        char tmpl[] = "/tmp/mpasswdd-pam-XXXXXX";
        dir = mkdtemp(tmpl);
        services = dir / "services";
        fs::create_directory(services);
        passdb = dir / "passdb";
        const std::string matrix = env("PAM_MATRIX_MODULE");
        const std::string prelim_root =
            "password [success=ok auth_err=ignore default=bad] " + matrix + " passdb=" +
            passdb.string() + "\npassword required pam_permit.so\n";
        write("other", "auth required pam_deny.so\npassword required pam_deny.so\n");
        write("mpasswdd-matrix", prelim_root);
        write("mpasswdd-echo", "password [success=ok auth_err=ignore default=bad] " + matrix +
                                   " echo passdb=" + passdb.string() +
                                   "\npassword required pam_permit.so\n");
        write("login-matrix", "auth required " + matrix + " passdb=" + passdb.string() +
                                  "\naccount required pam_permit.so\n");
        pwquality = env("PWQUALITY_MODULE");
        if (!pwquality.empty() && fs::exists(pwquality)) {
            write("mpasswdd-quality",
                  "password requisite " + pwquality + " enforce_for_root retry=1\n" + prelim_root);
        }
        setenv("PAM_WRAPPER_SERVICE_DIR", services.c_str(), 1);
    }
    ~Fixture() { fs::remove_all(dir); }
    Fixture(const Fixture&) = delete;
    Fixture& operator=(const Fixture&) = delete;

    void write(const std::string& name, const std::string& text) const {
        std::ofstream(services / name) << text;
    }
};

class PamChange : public ::testing::Test {
protected:
    void SetUp() override {
        if (env("PAM_WRAPPER") != "1") {
            GTEST_SKIP() << "not running under pam_wrapper (run through meson test)";
        }
        static Fixture fixture;
        passdb_ = fixture.passdb;
        pwquality_ = fixture.pwquality;
        std::ofstream(passdb_, std::ios::trunc) << "alice:Old-Passw0rd-1:mpasswdd-matrix\n"
                                                   "bob:Bobs-Old-Pw-22:mpasswdd-matrix\n";
    }

    static mctp::ChangeResult change(const std::string& service, const std::string& user,
                                     const char* password) {
        return mpasswdd::change_password({service, user, "192.0.2.7", "ctl"},
                                         mctp::Secret(password));
    }

    // pam_authenticate through pam_matrix: does this password work?
    static int login(const std::string& user, const char* password) {
        struct Data {
            const char* pw;
        } data{password};
        const pam_conv conv{
            [](int n, const pam_message** msg, pam_response** resp, void* app) -> int {
                auto* r = static_cast<pam_response*>(calloc(static_cast<size_t>(n), sizeof(pam_response)));
                for (int i = 0; i < n; ++i) {
                    if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
                        r[i].resp = strdup(static_cast<Data*>(app)->pw);
                    }
                }
                *resp = r;
                return PAM_SUCCESS;
            },
            &data};
        pam_handle_t* h = nullptr;
        int rc = pam_start("login-matrix", user.c_str(), &conv, &h);
        if (rc == PAM_SUCCESS) {
            rc = pam_authenticate(h, 0);
        }
        pam_end(h, rc);
        return rc;
    }

    fs::path passdb_;
    std::string pwquality_;
};

TEST_F(PamChange, ChangesThePasswordInThePassdb) {
    ASSERT_EQ(login("alice", "Old-Passw0rd-1"), PAM_SUCCESS);
    const auto r = change("mpasswdd-matrix", "alice", "N3w-Passw0rd!");
    EXPECT_EQ(r.kind, Kind::changed) << r.message;
    EXPECT_EQ(login("alice", "N3w-Passw0rd!"), PAM_SUCCESS);
    EXPECT_EQ(login("alice", "Old-Passw0rd-1"), PAM_AUTH_ERR);
    // Only alice's line changed.
    EXPECT_EQ(login("bob", "Bobs-Old-Pw-22"), PAM_SUCCESS);
    EXPECT_NE(slurp(passdb_).find("alice:N3w-Passw0rd!:"), std::string::npos);
}

TEST_F(PamChange, QualityPolicyRefusesWithPamsOwnMessage) {
    if (pwquality_.empty() || !fs::exists(pwquality_)) {
        if (env("CI") == "true") {
            FAIL() << "pam_pwquality.so not found (" << pwquality_
                   << "); scripts/install-deps provides it";
        }
        GTEST_SKIP() << "pam_pwquality.so not found; run scripts/install-deps";
    }
    const auto r = change("mpasswdd-quality", "alice", "abc");
    EXPECT_EQ(r.kind, Kind::refused);
    EXPECT_NE(r.message.find("shorter than"), std::string::npos) << r.message;
    EXPECT_EQ(r.message.find("abc"), std::string::npos) << r.message;
    // Nothing changed: the old password still works.
    EXPECT_EQ(login("alice", "Old-Passw0rd-1"), PAM_SUCCESS);
    EXPECT_EQ(login("alice", "abc"), PAM_AUTH_ERR);
    // And a good password passes the same stack.
    const auto ok = change("mpasswdd-quality", "alice", "Tr1cky-Lantern-Oboe");
    EXPECT_EQ(ok.kind, Kind::changed) << ok.message;
    EXPECT_EQ(login("alice", "Tr1cky-Lantern-Oboe"), PAM_SUCCESS);
}

TEST_F(PamChange, EchoOnPromptIsNeverAnswered) {
    const auto r = change("mpasswdd-echo", "alice", "N3w-Passw0rd!");
    EXPECT_EQ(r.kind, Kind::failed) << r.message;
    EXPECT_EQ(login("alice", "Old-Passw0rd-1"), PAM_SUCCESS);
}

TEST_F(PamChange, MissingServiceFallsBackToOtherAndChangesNothing) {
    const auto r = change("no-such-service", "alice", "N3w-Passw0rd!");
    EXPECT_NE(r.kind, Kind::changed);
    EXPECT_EQ(login("alice", "Old-Passw0rd-1"), PAM_SUCCESS);
}

TEST(PamResults, MapToReplyKinds) {
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_SUCCESS), Kind::changed);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_AUTHTOK_ERR), Kind::refused);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_AUTHTOK_RECOVERY_ERR), Kind::refused);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_MAXTRIES), Kind::refused);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_USER_UNKNOWN), Kind::unknown);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_PERM_DENIED), Kind::forbidden);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_AUTHTOK_LOCK_BUSY), Kind::failed);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_TRY_AGAIN), Kind::failed);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_SYSTEM_ERR), Kind::failed);
    EXPECT_EQ(mpasswdd::classify_pam_result(PAM_CONV_ERR), Kind::failed);
}

}  // namespace

// Whether a module whose path ends in name is mapped in this process.
bool module_loaded(const std::string& name) {
    const std::string maps = slurp("/proc/self/maps");
    return maps.find("/" + name + "\n") != std::string::npos;
}

TEST_F(PamChange, ResidentStackKeepsTheModulesLoadedBetweenChanges) {
    ASSERT_FALSE(module_loaded("pam_matrix.so")) << "loaded before any change";
    // Each change loads and unloads its stack on its own.
    ASSERT_EQ(change("mpasswdd-matrix", "alice", "N3w-Passw0rd!").kind, Kind::changed);
    EXPECT_FALSE(module_loaded("pam_matrix.so"));
    {
        mpasswdd::ResidentStack stack;
        stack.hold("mpasswdd-matrix");
        ASSERT_TRUE(stack.held());
        EXPECT_TRUE(module_loaded("pam_matrix.so"));
        // Every change still gets a handle of its own and still works;
        // its pam_end leaves the modules where they are.
        EXPECT_EQ(change("mpasswdd-matrix", "alice", "Second-Passw0rd!").kind, Kind::changed);
        EXPECT_EQ(change("mpasswdd-matrix", "bob", "Bobs-N3w-Pw-33").kind, Kind::changed);
        EXPECT_TRUE(module_loaded("pam_matrix.so"));
        EXPECT_EQ(login("alice", "Second-Passw0rd!"), PAM_SUCCESS);
        EXPECT_EQ(login("bob", "Bobs-N3w-Pw-33"), PAM_SUCCESS);
        stack.hold("mpasswdd-matrix");  // held already: no second handle
        EXPECT_TRUE(stack.held());
    }
    // The session's end lets them go.
    EXPECT_FALSE(module_loaded("pam_matrix.so"));
}
