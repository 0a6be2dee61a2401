// The account operations of mpasswd-protocol(7) on the host's local
// shadow database: EXPR, LOCK and UNLK edit the user's line in
// /etc/shadow the way shadow-utils does (lckpwdf, a temporary file in the
// same folder with the same owner, group and mode, fsync, rename, fsync
// of the folder, ulckpwdf); CHCK compares a password with the user's hash
// through libxcrypt. Runs in the root monitor only.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "secret.hpp"
#include "session.hpp"

namespace mpasswdd::account {

struct Files {
    std::string shadow = "/etc/shadow";
    // Where LOCK keeps the expiry date it replaced (lock-expiry-USER): a
    // folder owned by root (or this process's user), not writable by
    // group or others; made (0700) when missing.
    std::string state_directory = "/var/lib/mpasswdd";
    // pam_faillock's tally files (its default `dir`); UNLK empties USER's.
    std::string faillock_directory = "/run/faillock";
    // How long UNLK waits for the tally's flock (pam_faillock holds it
    // for a moment); then the tally is left as it is, and said so.
    std::chrono::milliseconds faillock_wait{5000};
    // lckpwdf()/ulckpwdf() around an edit: always on the real database.
    // Off only for tests on a copy (lckpwdf takes /etc/.pwd.lock).
    bool lock_database = true;
    // Days since 1970-01-01; negative: today.
    long today = -1;
    // Tests only: runs after the file was read, before the new one
    // replaces it (another writer that does not take the lock).
    std::function<void()> before_replace;
};

// The longest shadow file read (a larger one is refused: 451).
inline constexpr std::size_t shadow_size_max = 64UL << 20;

// EXPR, LOCK, UNLK on user's line: done, already (nothing written),
// not_local (no line for user), failed (with the reason: the database is
// busy, the line is ambiguous or malformed, the file changed while it was
// edited, a system error). Never throws.
mctp::AccountResult apply(const Files& files, mctp::AccountOp op, std::string_view user);

// CHCK: done when password is user's current one, mismatch when not.
// As pam_unix, any hash libxcrypt takes can match (DES included); a
// locked one never does but is hashed all the same (with its own method
// and cost), and an empty, disabled or unusable one against a stand-in,
// so the time taken does not tell. not_local, failed. Never throws.
mctp::AccountResult check_password(const Files& files, std::string_view user,
                                   const mctp::Secret& password);

}  // namespace mpasswdd::account
