// The confinement of mpasswdd's network child (see mpasswdd(8),
// PRIVILEGE SEPARATION), and the parent's checks of what it needs.
#pragma once

#include <sys/types.h>

#include <stdexcept>
#include <string>

namespace mpasswdd {

struct SandboxError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Jail {
    bool change_ids = false;  // only when running as root
    uid_t uid = 0;
    gid_t gid = 0;
    std::string root;  // chroot here; empty: none (not root)
};

// In this order: chroot(root) and chdir("/"); setgroups to gid alone,
// setresgid, setresuid (each checked); no capability left in any set;
// no_new_privs; not dumpable; the parent-death signal (SIGKILL) and a
// check that parent_pid is still the parent; resource limits (NOFILE 16,
// NPROC 0, FSIZE 0, CORE 0); the seccomp allow-list (anything else kills
// the process). Throws SandboxError naming the step that failed; the
// caller must then not touch the network.
void confine(const Jail& jail, pid_t parent_pid);

// The privsep user and folder, for a parent running as root: the user's
// uid and gid (a missing user falls back to `nobody`, and *note then
// says so; uid 0 is refused), and a folder that is a directory owned by
// root, not writable by group or others, and empty. Throws SandboxError
// naming the key. Not root: change_ids false and no folder.
Jail make_jail(const std::string& user, const std::string& directory, std::string* note);

}  // namespace mpasswdd
