// mpasswd --batch: `user:password` lines (chpasswd's format) from standard
// input, each checked before anything is sent, and the report of a batch
// (one row per user and target that did not end ok).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "fanout.hpp"
#include "operations.hpp"
#include "secret.hpp"

namespace mpasswd {

struct BatchEntry {
    std::string user;
    mctp::Secret password;
    std::size_t line = 0;  // 1-based
};

// A bad batch: the message names the line, never its user or password.
struct BatchError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads every line of fd. Each line is USER:PASSWORD (a CR before the LF
// is dropped; the password is everything after the first ':'): a valid
// user name given once, a non-empty password of valid UTF-8 text of at
// most limits::password_max octets. At most batch_users_max lines; no
// empty line. Throws BatchError for the first bad line.
std::vector<BatchEntry> read_batch(int fd);

// The rows of the pairs that did not end ok or unchanged, with a header;
// empty when every pair is ok.
std::string batch_failure_table(const std::vector<BatchUser>& users,
                                const std::vector<Target>& targets,
                                const std::vector<std::vector<Result>>& results);

// "batch of 3 users on 2 targets: 5 of 6 changed, 1 failed (1 refused)"
// and, when TEST stopped it, why nothing was changed.
std::string batch_summary(const std::vector<std::vector<Result>>& results,
                          std::size_t targets);

}  // namespace mpasswd
