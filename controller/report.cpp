#include "report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>

#include "controller_limits.hpp"
#include "text.hpp"

namespace mpasswd {
namespace {

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u >= 0x7f) {
            // Texts are printable ASCII already; this keeps the line valid
            // JSON (and free of control bytes) whatever comes: an octet
            // from 0x7F, even one of invalid UTF-8, becomes the code point
            // of the same number.
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", u);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace

std::string json_line(const Target& target, const Job& job, const Result& r,
                      std::string_view run) {
    std::ostringstream o;
    o << "{\"target\":" << json_string(target.label()) << ",\"host\":" << json_string(target.host)
      << ",\"port\":" << target.port
      << ",\"transport\":" << json_string(std::string(via_name(target.via)))
      << ",\"user\":" << json_string(job.user)
      << ",\"action\":" << json_string(action_name(job.action))
      << ",\"result\":" << json_string(outcome_name(r.outcome)) << ",\"code\":";
    if (r.code != 0) {
        o << r.code;
    } else {
        o << "null";
    }
    o << ",\"step\":" << json_string(r.step) << ",\"auth\":";
    if (r.auth.empty()) {
        o << "null";
    } else {
        o << json_string(r.auth);
    }
    o << ",\"phase\":";
    if (r.phase.empty()) {
        o << "null";
    } else {
        o << json_string(r.phase);
    }
    o << ",\"text\":" << json_string(r.text)
      << ",\"maybe_applied\":" << (r.maybe_applied ? "true" : "false")
      << ",\"elapsed_ms\":" << r.elapsed.count() << ",\"run\":";
    if (run.empty()) {
        o << "null";
    } else {
        o << json_string(run);
    }
    o << "}";
    return o.str();
}

namespace {

// The SGR sequence for a RESULT cell.
std::string_view outcome_colour(Outcome o) noexcept {
    switch (o) {
    case Outcome::ok: return "\x1b[32m";
    case Outcome::skipped: return "\x1b[33m";
    case Outcome::untrusted: return "\x1b[1;31m";
    default: return "\x1b[31m";
    }
}

}  // namespace

bool colour_wanted(int fd) {
    const char* no_colour = std::getenv("NO_COLOR");
    const char* term = std::getenv("TERM");
    return isatty(fd) == 1 && (no_colour == nullptr || *no_colour == '\0') &&
           (term == nullptr || std::string_view(term) != "dumb");
}

std::string failure_table(const std::vector<Target>& targets, const std::vector<Result>& results,
                          bool colour) {
    std::vector<std::size_t> failed;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (results[i].outcome != Outcome::ok) {
            failed.push_back(i);
        }
    }
    if (failed.empty()) {
        return {};
    }
    // Every cell reaches a terminal: escaped, whatever made it (the
    // engine escapes its texts already; this is the last line of defence).
    // A label is at most a 253-octet host name and a port.
    const auto cell = [](std::string_view s) { return mctp::printable(s, 320); };
    std::size_t target_w = 6;
    std::size_t step_w = 4;
    for (const auto i : failed) {
        target_w = std::max(target_w, cell(targets[i].label()).size());
        step_w = std::max(step_w, cell(results[i].step).size());
    }
    const auto pad = [](std::string s, std::size_t w) {
        s.resize(std::max(s.size(), w), ' ');
        return s;
    };
    // Padded before it is coloured, so that the columns stay aligned.
    const auto result_cell = [&](Outcome o) {
        const std::string name(outcome_name(o));
        std::string padded = pad(name, 14);
        if (!colour) {
            return padded;
        }
        return std::string(outcome_colour(o)) + name + "\x1b[0m" + padded.substr(name.size());
    };
    std::string out = pad("TARGET", target_w) + "  " + pad("RESULT", 14) + "  CODE  " +
                      pad("STEP", step_w) + "  REASON\n";
    for (const auto i : failed) {
        const Result& r = results[i];
        out += pad(cell(targets[i].label()), target_w) + "  " +
               result_cell(r.outcome) + "  " +
               pad(r.code != 0 ? std::to_string(r.code) : "-", 4) + "  " +
               pad(cell(r.step), step_w) + "  " +
               mctp::printable(r.text, limits::result_text_max + 64) + "\n";
    }
    return out;
}

std::string summary_line(const Job& job, const std::vector<Result>& results) {
    std::size_t ok = 0;
    std::size_t unchanged = 0;
    std::map<std::string_view, std::size_t> why;
    for (const auto& r : results) {
        if (r.outcome == Outcome::ok) {
            ++ok;
        } else if (r.outcome == Outcome::unchanged) {
            ++unchanged;
        } else {
            ++why[outcome_name(r.outcome)];
        }
    }
    const bool changing = job.action == Action::change || job.action == Action::expire;
    const bool gated = changing && std::any_of(results.begin(), results.end(), [](const Result& r) {
                           return r.phase == "test";
                       });
    const char* done = "verified on ";
    switch (job.action) {
    case Action::change: done = "password changed on "; break;
    case Action::test: done = "password acceptable on "; break;
    case Action::expire: done = "one-time password set on "; break;
    case Action::lock: done = "locked on "; break;
    case Action::unlock: done = "unlocked on "; break;
    case Action::check: done = "password is the current one on "; break;
    case Action::verify: break;
    }
    std::string out = mctp::printable(job.user, 64) + ": " + done + std::to_string(ok) + " of " +
                      std::to_string(results.size()) +
                      (results.size() == 1 ? " target" : " targets");
    if (unchanged > 0) {
        out += ", already on " + std::to_string(unchanged);
    }
    const std::size_t failed = results.size() - ok - unchanged;
    if (failed > 0) {
        out += ", " + std::to_string(failed) +
               (job.action == Action::check ? " not " : " failed ") + failure_counts(why);
    }
    if (gated) {
        out += "; TEST did not pass on every target, so no target was sent the change";
    }
    return out;
}

std::string failure_counts(const std::map<std::string_view, std::size_t>& why) {
    std::string out = "(";
    for (const auto& [name, n] : why) {
        out += (out.size() > 1 ? ", " : "") + std::to_string(n) + " " + std::string(name);
    }
    return out + ")";
}

std::string progress_line(std::size_t done, std::size_t failed, std::size_t total) {
    return std::to_string(done) + "/" + std::to_string(total) + " done, " +
           std::to_string(failed) + " failed, " + std::to_string(total - done) + " pending";
}

}  // namespace mpasswd
