// Drop-in configuration: mpasswd.conf.d/*.conf and mpasswdd.conf.d/*.conf
// beside the main files, read in byte order of their names, each checked
// as the main file, the folder checked as the file is.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "config.hpp"
#include "config_file.hpp"
#include "controller_config.hpp"
#include "scram.hpp"

namespace {

namespace fs = std::filesystem;
using mctp::cfg::ConfigError;

// A folder with a main configuration file CONF and its CONF.d, removed at
// scope end.
class Configs {
public:
    explicit Configs(const std::string& conf_name) {
        char tmpl[] = "/tmp/mpasswd-dropins-XXXXXX";
        dir_ = mkdtemp(tmpl);
        conf_ = dir_ + "/" + conf_name;
        d_ = conf_ + ".d";
    }
    ~Configs() { fs::remove_all(dir_); }
    Configs(const Configs&) = delete;
    Configs& operator=(const Configs&) = delete;

    void main(const std::string& text, mode_t mode = 0600) const { write(conf_, text, mode); }
    std::string dropin(const std::string& name, const std::string& text,
                       mode_t mode = 0600) const {
        mkdir(d_.c_str(), 0755);
        write(d_ + "/" + name, text, mode);
        return d_ + "/" + name;
    }
    [[nodiscard]] const std::string& conf() const { return conf_; }
    [[nodiscard]] const std::string& folder() const { return d_; }
    [[nodiscard]] const std::string& dir() const { return dir_; }

private:
    static void write(const std::string& path, const std::string& text, mode_t mode) {
        std::ofstream(path) << text;
        chmod(path.c_str(), mode);
    }
    std::string dir_, conf_, d_;
};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

const std::string& verifier() {
    static const std::string v = mctp::scram::format_verifier(
        mctp::scram::make_verifier("drop-in-secret", "0123456789abcdef", 4096));
    return v;
}

TEST(Dropins, NamesAreFilteredAndReadInByteOrder) {
    EXPECT_TRUE(mctp::cfg::is_dropin_name("10-web.conf"));
    EXPECT_TRUE(mctp::cfg::is_dropin_name("A_b-9.conf"));
    for (const char* bad : {".conf", ".hidden.conf", "a.b.conf", "x.conf~", "x.conf.dpkg-old",
                            "x.dpkg-new", "x conf.conf", "README", "#x.conf#"}) {
        EXPECT_FALSE(mctp::cfg::is_dropin_name(bad)) << bad;
    }
    Configs c("mpasswd.conf");
    EXPECT_EQ(mctp::cfg::dropin_files(c.folder()), std::vector<std::string>{});  // none
    for (const char* name : {"b.conf", "9-x.conf", "10-y.conf", "B.conf", "x.conf~",
                             ".h.conf", "notes.txt"}) {
        c.dropin(name, "");
    }
    EXPECT_EQ(mctp::cfg::dropin_files(c.folder()),
              (std::vector<std::string>{c.folder() + "/10-y.conf", c.folder() + "/9-x.conf",
                                        c.folder() + "/B.conf", c.folder() + "/b.conf"}));
}

TEST(Dropins, TheFolderIsCheckedAsTheFileIs) {
    Configs c("mpasswd.conf");
    c.dropin("a.conf", "");
    chmod(c.folder().c_str(), 0777);
    EXPECT_EQ(error_of([&] { mctp::cfg::dropin_files(c.folder()); }),
              c.folder() + ": writable by other users; it must be owned by root and not "
                           "world-writable (chmod 755)");
    chmod(c.folder().c_str(), 0775);
    ASSERT_EQ(chown(c.folder().c_str(), 0, 100), 0);  // a group other than root's
    EXPECT_EQ(error_of([&] { mctp::cfg::dropin_files(c.folder()); }),
              c.folder() + ": writable by its group; only root may change it (chmod g-w)");
    chmod(c.folder().c_str(), 0755);
    EXPECT_EQ(mctp::cfg::dropin_files(c.folder()).size(), 1U);
    // Not a folder.
    const std::string file = c.dir() + "/file.d";
    std::ofstream(file) << "";
    EXPECT_EQ(error_of([&] { mctp::cfg::dropin_files(file); }), file + ": not a folder");
    // At most 256 drop-ins (other names are not counted).
    for (int i = 0; i < 256; ++i) {
        c.dropin("f" + std::to_string(i) + ".conf", "");
    }
    c.dropin("skipped.txt", "");
    EXPECT_EQ(error_of([&] { mctp::cfg::dropin_files(c.folder()); }),
              c.folder() + ": more than 256 drop-in files");
}

TEST(Dropins, ControllerKeysFromDropinsAndOnePlacePerKey) {
    Configs c("mpasswd.conf");
    c.main("secret = Main-Secret-1\nport = 4300\n");
    c.dropin("10-timeouts.conf", "reply_timeout = 20\nconnect_timeout = 2\n", 0644);
    c.dropin("20-name.conf", "[mpasswd]\nname = control1\ninventory = inventory.ini\n", 0644);
    const auto config = mpasswd::load_controller_config(c.conf());
    EXPECT_EQ(config.port, 4300);
    EXPECT_EQ(config.reply_timeout.count(), 20000);
    EXPECT_EQ(config.connect_timeout.count(), 2000);
    EXPECT_EQ(config.name, "control1");
    // Relative names are taken from the main file's folder.
    EXPECT_EQ(config.inventory, c.dir() + "/inventory.ini");
    const std::string shown = mpasswd::describe(config);
    EXPECT_NE(shown.find("# and of " + c.folder() + "/10-timeouts.conf\n# and of " +
                         c.folder() + "/20-name.conf\n"),
              std::string::npos)
        << shown;
    // A key in two files: both places named.
    c.dropin("30-port.conf", "# again\nport = 4400\n", 0644);
    EXPECT_EQ(error_of([&] { mpasswd::load_controller_config(c.conf()); }),
              c.folder() + "/30-port.conf:2: port: already set in " + c.conf() + ":2");
    c.dropin("30-port.conf", "\n\nname = other\n", 0644);
    EXPECT_EQ(error_of([&] { mpasswd::load_controller_config(c.conf()); }),
              c.folder() + "/30-port.conf:3: name: already set in " + c.folder() +
                  "/20-name.conf:2");
    // Each drop-in is checked as the main file: one holding the secret
    // must be private; a bad line is named by file and line.
    fs::remove(c.folder() + "/30-port.conf");
    c.main("port = 4300\n");
    c.dropin("00-secret.conf", "secret = Drop-Secret-1\n", 0644);
    EXPECT_EQ(error_of([&] { mpasswd::load_controller_config(c.conf()); }),
              c.folder() + "/00-secret.conf: holds secrets but is readable by other users; "
                           "chmod 600 " + c.folder() + "/00-secret.conf");
    chmod((c.folder() + "/00-secret.conf").c_str(), 0600);
    EXPECT_EQ(mpasswd::load_controller_config(c.conf()).secret.view(), "Drop-Secret-1");
    c.dropin("40-bad.conf", "\nparallel = lots\n", 0644);
    EXPECT_EQ(error_of([&] { mpasswd::load_controller_config(c.conf()); }),
              c.folder() + "/40-bad.conf:2: parallel: must be auto or a number from 1 to 4096");
    fs::remove(c.folder() + "/40-bad.conf");
    mkfifo((c.folder() + "/50-fifo.conf").c_str(), 0600);
    EXPECT_EQ(error_of([&] { mpasswd::load_controller_config(c.conf()); }),
              c.folder() + "/50-fifo.conf: not a regular file (a FIFO)");
}

TEST(Dropins, OneFilePerResponderController) {
    Configs c("mpasswdd.conf");
    c.main("host_name = t1\n[controller main]\nfrom = local\nsecret_verifier = " + verifier() +
           "\n");
    c.dropin("control1.conf",
             "# written by configuration management\n[controller control1]\nfrom = 10.0.0.1\n"
             "secret_verifier = " + verifier() + "\n");
    c.dropin("control2.conf", "[controller control2]\nfrom = 10.0.0.2\nsecret_verifier = " +
                                  verifier() + "\nusers = alice\n");
    auto config = mpasswdd::load_config(c.conf());
    ASSERT_EQ(config.controllers.size(), 3U);
    EXPECT_EQ(config.controllers[1].name, "control1");
    EXPECT_EQ(config.controllers[2].users, std::vector<std::string>{"alice"});
    EXPECT_EQ(config.host_name, "t1");
    const auto error = [&] { return error_of([&] { mpasswdd::load_config(c.conf()); }); };
    // A controller in two files: both places named.
    c.dropin("control3.conf", "[controller main]\nfrom = local\n");
    EXPECT_EQ(error(), c.folder() + "/control3.conf:1: [controller main] is already defined in " +
                           c.conf() + ":2");
    c.dropin("control3.conf", "\n[controller control1]\nusers = bob\n");
    EXPECT_EQ(error(), c.folder() + "/control3.conf:2: [controller control1] is already "
                                    "defined in " + c.folder() + "/control1.conf:2");
    // Only [controller NAME] sections.
    c.dropin("control3.conf", "[mpasswdd]\nenabled = no\n");
    EXPECT_EQ(error(), c.folder() + "/control3.conf:1: [mpasswdd]: only [controller NAME] "
                                    "sections go in a drop-in file");
    c.dropin("control3.conf", "enabled = no\n");
    EXPECT_EQ(error(), c.folder() + "/control3.conf:1: enabled: only [controller NAME] sections "
                                    "go in a drop-in file");
    // Checked as the main file: every key, a missing from, the modes.
    c.dropin("control3.conf", "[controller c3]\nsecret_verifier = " + verifier() + "\n");
    EXPECT_EQ(error(), c.folder() + "/control3.conf:1: [controller c3] has no 'from' key");
    c.dropin("control3.conf", "[controller c3]\nfrom = nowhere\n");
    EXPECT_NE(error().find(c.folder() + "/control3.conf:2: from: "), std::string::npos)
        << error();
    c.dropin("control3.conf", "[controller c3]\nfrom = local\nsecret_verifier = " + verifier() +
                                  "\n", 0644);
    EXPECT_EQ(error(), c.folder() + "/control3.conf: holds secrets but is readable by every "
                                    "user; chmod 600 " + c.folder() + "/control3.conf");
    chmod((c.folder() + "/control3.conf").c_str(), 0600);
    EXPECT_EQ(mpasswdd::load_config(c.conf()).controllers.size(), 4U);
    chmod(c.folder().c_str(), 0757);
    EXPECT_NE(error().find(c.folder() + ": writable by other users"), std::string::npos)
        << error();
}

}  // namespace
