#include "batch.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

#include "controller_limits.hpp"
#include "operations.hpp"
#include "report.hpp"
#include "secret_line.hpp"
#include "text.hpp"

namespace mpasswd {
namespace {

// A user name, ':' and the longest password.
constexpr std::size_t batch_line_max = 32 + 1 + limits::password_max;

[[noreturn]] void bad_line(std::size_t line, const std::string& why) {
    throw BatchError("batch line " + std::to_string(line) + ": " + why);
}

}  // namespace

std::vector<BatchEntry> read_batch(int fd) {
    std::vector<BatchEntry> entries;
    std::unordered_map<std::string, std::size_t> seen;
    for (std::size_t n = 1;; ++n) {
        mctp::SecretLine line;
        try {
            line = mctp::read_secret_line(fd, batch_line_max);
        } catch (const mctp::SecretInputError& e) {
            throw BatchError(std::string("cannot read the batch: ") + std::strerror(e.error));
        }
        if (!line.got) {
            break;
        }
        if (line.too_long) {
            bad_line(n, "longer than " + std::to_string(batch_line_max) + " octets");
        }
        if (entries.size() == batch_users_max) {
            bad_line(n, "more than " + std::to_string(batch_users_max) + " users in one batch");
        }
        const std::string_view text = line.text.view();
        if (text.empty()) {
            bad_line(n, "empty line (each line is user:password)");
        }
        const auto colon = text.find(':');
        if (colon == std::string_view::npos) {
            bad_line(n, "no ':' (each line is user:password)");
        }
        const std::string_view user = text.substr(0, colon);
        const std::string_view password = text.substr(colon + 1);
        // Neither column is ever quoted: with the columns swapped, the
        // "user" is the password.
        if (!mctp::is_user_name(user)) {
            bad_line(n, std::string("not a valid user name before the ':'") +
                            (mctp::is_user_name(password)
                                 ? " (each line is user:password; are the columns swapped?)"
                                 : ""));
        }
        if (password.empty()) {
            bad_line(n, "empty password");
        }
        if (password.size() > limits::password_max) {
            bad_line(n, "password longer than " + std::to_string(limits::password_max) +
                            " octets");
        }
        if (!mctp::is_password_text(password)) {
            bad_line(n, "the password is not valid UTF-8 text (control characters cannot be "
                        "sent)");
        }
        const auto [at, fresh] = seen.emplace(std::string(user), n);
        if (!fresh) {
            bad_line(n, "the same user as line " + std::to_string(at->second));
        }
        entries.push_back({std::string(user), mctp::Secret(password), n});
    }
    if (entries.empty()) {
        throw BatchError("no user:password lines on standard input");
    }
    return entries;
}

std::string batch_failure_table(const std::vector<BatchUser>& users,
                                const std::vector<Target>& targets,
                                const std::vector<std::vector<Result>>& results) {
    const auto cell = [](std::string_view s) { return mctp::printable(s, 320); };
    std::size_t target_w = 6;
    std::size_t step_w = 4;
    std::vector<std::pair<std::size_t, std::size_t>> failed;
    for (std::size_t u = 0; u < results.size(); ++u) {
        for (std::size_t t = 0; t < results[u].size(); ++t) {
            const auto o = results[u][t].outcome;
            if (o != Outcome::ok && o != Outcome::unchanged) {
                failed.emplace_back(u, t);
                target_w = std::max(target_w, cell(targets[t].label()).size());
                step_w = std::max(step_w, cell(results[u][t].step).size());
            }
        }
    }
    if (failed.empty()) {
        return {};
    }
    const auto pad = [](std::string s, std::size_t w) {
        s.resize(std::max(s.size(), w), ' ');
        return s;
    };
    std::string out = pad("USER", 32) + "  " + pad("TARGET", target_w) + "  " +
                      pad("RESULT", 14) + "  CODE  " + pad("STEP", step_w) + "  REASON\n";
    for (const auto& [u, t] : failed) {
        const Result& r = results[u][t];
        out += pad(users[u].user, 32) + "  " + pad(cell(targets[t].label()), target_w) + "  " +
               pad(std::string(outcome_name(r.outcome)), 14) + "  " +
               pad(r.code != 0 ? std::to_string(r.code) : "-", 4) + "  " +
               pad(cell(r.step), step_w) + "  " +
               mctp::printable(r.text, limits::result_text_max + 64) + "\n";
    }
    return out;
}

std::string batch_summary(const std::vector<std::vector<Result>>& results, std::size_t targets) {
    std::size_t ok = 0;
    std::size_t pairs = 0;
    bool tested = false;
    std::map<std::string_view, std::size_t> why;
    for (const auto& user : results) {
        for (const auto& r : user) {
            ++pairs;
            tested = tested || r.phase == "test";
            if (r.outcome == Outcome::ok) {
                ++ok;
            } else {
                ++why[outcome_name(r.outcome)];
            }
        }
    }
    std::string out = "batch of " + std::to_string(results.size()) +
                      (results.size() == 1 ? " user" : " users") + " on " +
                      std::to_string(targets) + (targets == 1 ? " target" : " targets") + ": " +
                      std::to_string(ok) + " of " + std::to_string(pairs) + " changed";
    if (ok < pairs) {
        out += ", " + std::to_string(pairs - ok) + " failed " + failure_counts(why);
    }
    if (tested) {
        out += "; TEST did not pass for every user on every target, so no one was changed";
    }
    return out;
}

}  // namespace mpasswd
