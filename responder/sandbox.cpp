#include "sandbox.hpp"

#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <iterator>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <memory>

#include "seccomp_program.h"

namespace mpasswdd {
namespace {

[[noreturn]] void fail(const std::string& step) {
    throw SandboxError(step + ": " + std::strerror(errno));
}

// No capability in any set, and none that could come back.
void drop_capabilities() {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        fail("clearing the ambient capabilities");
    }
    __user_cap_header_struct head{_LINUX_CAPABILITY_VERSION_3, 0};
    std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
    if (syscall(SYS_capset, &head, data.data()) != 0) {
        fail("dropping the capabilities");
    }
    if (syscall(SYS_capget, &head, data.data()) != 0) {
        fail("reading the capabilities");
    }
    for (const auto& d : data) {
        if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
            errno = EPERM;
            fail("a capability is left");
        }
    }
}

void change_ids(uid_t uid, gid_t gid) {
    if (setgroups(1, &gid) != 0) {
        fail("setgroups");
    }
    if (setresgid(gid, gid, gid) != 0) {
        fail("setresgid");
    }
    if (setresuid(uid, uid, uid) != 0) {
        fail("setresuid");
    }
    uid_t r = 0, e = 0, s = 0;
    gid_t rg = 0, eg = 0, sg = 0;
    if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid ||
        getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid) {
        errno = EPERM;
        fail("the user and group ids did not all change");
    }
    // Root cannot be had back.
    if (setresuid(0, 0, 0) == 0) {
        errno = EPERM;
        fail("uid 0 could be regained");
    }
}

void limit(int resource, rlim_t value, const char* name) {
    const rlimit r{value, value};
    if (setrlimit(resource, &r) != 0) {
        fail(std::string("setrlimit ") + name);
    }
}

// The filter seccomp_filter_gen.cpp made with libseccomp at build time
// (its rules and why are there): installed as it is, after no_new_privs.
void install_seccomp() {
    sock_fprog prog{static_cast<unsigned short>(std::size(seccomp_program)),
                    const_cast<sock_filter*>(seccomp_program)};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
        fail("installing the seccomp filter");
    }
}

}  // namespace

void confine(const Jail& jail, pid_t parent_pid) {
    // The time zone, read now: OpenSSL's certificate checks ask for the
    // local time, and /etc/localtime is not in the empty root.
    tzset();
    const time_t now = time(nullptr);
    tm local{};
    localtime_r(&now, &local);
    if (!jail.root.empty()) {
        if (chroot(jail.root.c_str()) != 0) {
            fail("chroot " + jail.root);
        }
    }
    if (chdir("/") != 0) {
        fail("chdir /");
    }
    if (jail.change_ids) {
        change_ids(jail.uid, jail.gid);
    }
    drop_capabilities();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fail("PR_SET_NO_NEW_PRIVS");
    }
    // After the id change, which resets both.
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        fail("PR_SET_DUMPABLE");
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fail("PR_SET_PDEATHSIG");
    }
    if (getppid() != parent_pid) {
        errno = ESRCH;
        fail("the parent is gone");
    }
    limit(RLIMIT_NOFILE, 16, "NOFILE");
    limit(RLIMIT_NPROC, 0, "NPROC");
    limit(RLIMIT_FSIZE, 0, "FSIZE");
    limit(RLIMIT_CORE, 0, "CORE");
    install_seccomp();
}

Jail make_jail(const std::string& user, const std::string& directory, std::string* note) {
    Jail jail;
    if (geteuid() != 0) {
        return jail;  // no id to change to, no chroot to do
    }
    const passwd* pw = getpwnam(user.c_str());
    if (pw == nullptr && user != "nobody") {
        *note = "privsep_user " + user + " does not exist; the network child runs as nobody";
        pw = getpwnam("nobody");
    }
    if (pw == nullptr) {
        throw SandboxError("privsep_user: neither " + user +
                           " nor nobody exists; create the user (see mpasswdd(8))");
    }
    if (pw->pw_uid == 0 || pw->pw_gid == 0) {
        throw SandboxError("privsep_user: " + std::string(pw->pw_name) +
                           " has uid or gid 0; the network child must not be root");
    }
    jail.change_ids = true;
    jail.uid = pw->pw_uid;
    jail.gid = pw->pw_gid;

    struct stat st {};
    const std::string where = "privsep_directory: " + directory + ": ";
    if (stat(directory.c_str(), &st) != 0) {
        throw SandboxError(where + std::strerror(errno) +
                           " (an empty folder owned by root, mode 0755)");
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0) {
        throw SandboxError(where + "must be a folder owned by root and not writable by group "
                                   "or others");
    }
    std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(directory.c_str()), closedir);
    if (!dir) {
        throw SandboxError(where + std::strerror(errno));
    }
    while (const dirent* e = readdir(dir.get())) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
            throw SandboxError(where + "must be empty");
        }
    }
    jail.root = directory;
    return jail;
}

}  // namespace mpasswdd
