// Results as people and scripts read them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "fanout.hpp"

namespace mpasswd {

// One JSON object on one line (JSON Lines), no trailing newline:
// {"target":"h:4242","host":"h","port":4242,"user":"alice","action":"change",
//  "result":"ok","code":250,"step":"end of data","auth":"SCRAM-SHA-256","text":"...",
//  "phase":"change","maybe_applied":false,"elapsed_ms":12,"run":"2026...-0a1b2c3d"}
// ("run" is null without a journal).
std::string json_line(const Target& target, const Job& job, const Result& result,
                      std::string_view run = {});

// A table of the targets that did not end ok, with a header; empty when
// every target is ok. With `colour`, each RESULT cell is coloured with an
// SGR sequence (skipped yellow, untrusted bold red, the rest red), the
// columns still aligned; nothing else is.
std::string failure_table(const std::vector<Target>& targets, const std::vector<Result>& results,
                          bool colour = false);

// Whether output to fd gets colour: a terminal, TERM not "dumb", and
// NO_COLOR unset or empty (https://no-color.org).
bool colour_wanted(int fd);

// "alice: password changed on 48 of 50 targets, 2 failed (1 unreachable, 1 timeout)"
std::string summary_line(const Job& job, const std::vector<Result>& results);

// The failures of a summary by result, "(2 refused, 1 timeout)", in the
// order of the results' names; `why` counts failed results by
// outcome_name().
std::string failure_counts(const std::map<std::string_view, std::size_t>& why);

// "12/50 done, 1 failed, 37 pending"
std::string progress_line(std::size_t done, std::size_t failed, std::size_t total);

}  // namespace mpasswd
