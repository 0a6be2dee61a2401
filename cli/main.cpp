// mpasswd: sets or verifies a user's password on many MCTP targets at once.
#include <getopt.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "batch.hpp"
#include "config_keys.hpp"
#include "controller_config.hpp"
#include "fanout.hpp"
#include "journal.hpp"
#include "inventory.hpp"
#include "operations.hpp"
#include "password_input.hpp"
#include "report.hpp"
#include "resources.hpp"
#include "runs.hpp"
#include "text.hpp"

namespace {

using namespace mpasswd;

// The exit codes are the contract with scripts (mpasswd(1), EXIT STATUS);
// the rest are journal::exit_status's.
constexpr int exit_all_ok = journal::exit_status::ok;
constexpr int exit_usage = journal::exit_status::usage;

const char* const usage_text =
    "usage: mpasswd [options] USER\n"
    "       mpasswd [options] --resume [RUN]\n"
    "       mpasswd [-c FILE] --runs [RUN]\n"
    "       mpasswd [options] --expire|--lock|--unlock|--check USER\n"
    "       mpasswd [options] --batch < USER:PASSWORD-LINES\n"
    "       mpasswd [-c FILE] --check-config\n"
    "Sets USER's password on every target (or only checks with --verify).\n"
    "\n"
    "  -c, --config FILE   controller configuration (default " MPASSWD_SYSCONFDIR
    "/mpasswd/mpasswd.conf)\n"
    "  -H, --host HOST[:PORT]  a target; repeat for more (replaces the hosts file)\n"
    "      --hosts FILE    the hosts file (default: 'hosts' in the configuration)\n"
    "  -i, --inventory FILE  an Ansible INI inventory instead of the hosts file\n"
    "  -l, --limit PATTERN   only these groups and hosts (Ansible's host patterns)\n"
    "      --verify        only check that USER exists and may be managed everywhere\n"
    "      --expire        set the password and make it one-time (changed at next login)\n"
    "      --lock          lock USER's password and expire the account (key logins too)\n"
    "      --unlock        undo --lock, and reset pam_faillock's count\n"
    "      --check         which targets hold this password (ok) and which not (different)\n"
    "      --if-different  change it only where --check would say different\n"
    "      --batch         change many users: user:password lines on standard input\n"
    "      --stdin         read the new password as one line from standard input\n"
    "      --best-effort   change it wherever it is accepted, without first TESTing it\n"
    "                      on every target (by default no target is changed unless\n"
    "                      every target accepts the password in TEST)\n"
    "      --parallel N|auto  talk to at most N targets at once (default auto: as\n"
    "                      many as the descriptor limit allows, up to 1024)\n"
    "      --timeout S     seconds allowed to connect and for each reply\n"
    "      --json          one JSON object per target on standard output\n"
    "      --check-config  validate the configuration, print the effective settings\n"
    "      --runs [RUN]    list the recent runs from the journal, or one run's targets\n"
    "      --resume [RUN]  run a change again on the targets it did not finish (default:\n"
    "                      the newest unfinished run; with --stdin, RUN is needed)\n"
    "  -q, --quiet         no progress and no summary; failed targets only\n"
    "  -h, --help          this text\n"
    "  -V, --version       the version\n"
    "\n"
    "Exit status: 0 every target ok (or, with --if-different, unchanged); 1 refused\n"
    "by a target's policy (or, with --check, some target holds another password); 2\n"
    "usage, configuration, input or journal error (nothing was sent); 3 some target\n"
    "unreachable, untrusted or timed out before the change was sent; 4 the change\n"
    "was sent to some target and no final reply came. The most serious applies.\n";

struct Options {
    std::string config = default_config_path;
    std::vector<std::string> hosts;
    std::optional<std::string> hosts_file;
    std::optional<std::string> inventory;
    std::optional<std::string> limit;
    bool verify = false;
    std::optional<Action> operation;  // --expire, --lock, --unlock, --check
    bool if_different = false;
    bool batch = false;
    bool from_stdin = false;
    bool best_effort = false;
    std::optional<unsigned> parallel;
    std::optional<std::chrono::milliseconds> timeout;
    bool json = false;
    bool quiet = false;
    bool check_config = false;
    bool runs = false;
    bool resume = false;
    std::optional<std::string> run_id;  // --runs RUN, --resume RUN
    std::string user;
};

// Every message mpasswd writes to standard error goes through here: what
// it quotes (an argument, a file's line, ssh's or a library's words) is
// shown escaped, so nothing can write control sequences to the terminal.
void error_line(std::string_view message) {
    std::cerr << "mpasswd: " << mctp::printable(message, mctp::limits::shown_text_max) << "\n";
}

[[noreturn]] void usage_error(const std::string& message) {
    error_line(message);
    std::cerr << "Try 'mpasswd --help'.\n";
    std::exit(exit_usage);
}

// getopt's own messages (opterr = 0), in mpasswd's words and with its
// prefix: ARG is the word getopt stopped at ("--ver", "--verify=x", "-c").
// `problem` is given for a missing argument; otherwise it is found here:
// an ambiguous abbreviation, an argument to an option that takes none, or
// an unknown option.
std::string option_error(std::string_view arg, const option* options, const char* problem) {
    if (!arg.starts_with("--")) {  // a short option: "-c", "-qc"
        return "option '-" + std::string(1, static_cast<char>(optopt)) + "' " + problem;
    }
    const std::string_view name = arg.substr(2, arg.find('=') - 2);
    if (name.empty()) {
        return "unrecognized option '" + std::string(arg) + "'";
    }
    const bool has_value = arg.find('=') != std::string_view::npos;
    std::string exact;
    std::vector<std::string> matches;
    for (const option* o = options; o->name != nullptr; ++o) {
        const std::string_view candidate = o->name;
        if (candidate == name) {
            exact = candidate;
        } else if (candidate.starts_with(name)) {
            matches.emplace_back(candidate);
        }
    }
    if (exact.empty() && matches.size() == 1) {
        exact = matches.front();
    }
    if (problem != nullptr) {
        return "option '--" + (exact.empty() ? std::string(name) : exact) + "' " + problem;
    }
    if (exact.empty() && matches.size() > 1) {
        std::string text = "option '--" + std::string(name) + "' is ambiguous; possibilities:";
        for (const auto& m : matches) {
            text += " '--" + m + "'";
        }
        return text;
    }
    if (!exact.empty() && has_value) {
        return "option '--" + exact + "' takes no argument";
    }
    return "unrecognized option '" + std::string(arg) + "'";
}

void set_operation(Options& o, Action a) {
    if (o.operation && *o.operation != a) {
        usage_error("--" + std::string(action_name(*o.operation)) + " and --" +
                    std::string(action_name(a)) + " do not go together");
    }
    o.operation = a;
}

// Which options go with --expire, --lock, --unlock, --check, --if-different
// and --batch.
void check_operation(const Options& o) {
    const std::string op = o.operation ? "--" + std::string(action_name(*o.operation)) : "";
    if (o.operation && o.verify) {
        usage_error("--verify and " + op + " do not go together");
    }
    if (o.batch && (o.operation || o.verify || o.if_different || o.from_stdin)) {
        usage_error("--batch changes passwords from standard input; it does not go with " +
                    std::string(o.operation ? op
                                : o.verify  ? "--verify"
                                : o.if_different ? "--if-different"
                                                 : "--stdin"));
    }
    if (o.if_different && (o.verify || o.operation)) {
        usage_error("--if-different goes with a change only, not with " +
                    (o.verify ? std::string("--verify") : op));
    }
    const bool no_password = o.operation == Action::lock || o.operation == Action::unlock;
    if (no_password && o.from_stdin) {
        usage_error(op + " sends no password; --stdin does not go with it");
    }
    if ((no_password || o.operation == Action::check) && o.best_effort) {
        usage_error(op + " is one step; --best-effort does not go with it");
    }
}

Options parse_options(int argc, char** argv) {
    enum {
        opt_hosts = 256,
        opt_verify,
        opt_stdin,
        opt_parallel,
        opt_timeout,
        opt_json,
        opt_check_config,
        opt_best_effort,
        opt_runs,
        opt_resume,
        opt_expire,
        opt_lock,
        opt_unlock,
        opt_check,
        opt_if_different,
        opt_batch
    };
    static const option long_options[] = {
        {"config", required_argument, nullptr, 'c'},
        {"host", required_argument, nullptr, 'H'},
        {"hosts", required_argument, nullptr, opt_hosts},
        {"inventory", required_argument, nullptr, 'i'},
        {"limit", required_argument, nullptr, 'l'},
        {"verify", no_argument, nullptr, opt_verify},
        {"stdin", no_argument, nullptr, opt_stdin},
        {"best-effort", no_argument, nullptr, opt_best_effort},
        {"expire", no_argument, nullptr, opt_expire},
        {"lock", no_argument, nullptr, opt_lock},
        {"unlock", no_argument, nullptr, opt_unlock},
        {"check", no_argument, nullptr, opt_check},
        {"if-different", no_argument, nullptr, opt_if_different},
        {"batch", no_argument, nullptr, opt_batch},
        {"parallel", required_argument, nullptr, opt_parallel},
        {"timeout", required_argument, nullptr, opt_timeout},
        {"json", no_argument, nullptr, opt_json},
        {"check-config", no_argument, nullptr, opt_check_config},
        {"runs", no_argument, nullptr, opt_runs},
        {"resume", no_argument, nullptr, opt_resume},
        {"quiet", no_argument, nullptr, 'q'},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},
        {nullptr, 0, nullptr, 0},
    };
    static const char short_options[] = "+:c:H:i:l:qhV";
    Options o;
    int c = 0;
    opterr = 0;  // getopt's own messages would quote the argument raw
    for (;;) {
        c = getopt_long(argc, argv, short_options, long_options, nullptr);
        if (c == -1) {
            // --runs RUN and --resume RUN take options after RUN too
            // (mpasswd --resume RUN --stdin).
            if ((o.runs || o.resume) && !o.run_id && optind < argc) {
                o.run_id = argv[optind++];
                continue;
            }
            break;
        }
        switch (c) {
        case 'c': o.config = optarg; break;
        case 'H':
            if (o.hosts.size() >= limits::targets_max) {
                usage_error("more than " + std::to_string(limits::targets_max) + " targets");
            }
            o.hosts.emplace_back(optarg);
            break;
        case opt_hosts: o.hosts_file = optarg; break;
        case 'i': o.inventory = optarg; break;
        case 'l': o.limit = optarg; break;
        case opt_verify: o.verify = true; break;
        case opt_stdin: o.from_stdin = true; break;
        case opt_best_effort: o.best_effort = true; break;
        case opt_expire: set_operation(o, Action::expire); break;
        case opt_lock: set_operation(o, Action::lock); break;
        case opt_unlock: set_operation(o, Action::unlock); break;
        case opt_check: set_operation(o, Action::check); break;
        case opt_if_different: o.if_different = true; break;
        case opt_batch: o.batch = true; break;
        case opt_parallel: {
            unsigned n = 0;
            if (!parse_parallel(optarg, &n)) {
                usage_error("--parallel " + parallel_range_text());
            }
            o.parallel = n;
            break;
        }
        case opt_timeout: {
            std::chrono::milliseconds t{};
            if (!mctp::cfg::parse_seconds(optarg, limits::timeout_min, limits::timeout_max, &t)) {
                usage_error("--timeout must be " +
                            mctp::cfg::seconds_range_text(limits::timeout_min, limits::timeout_max));
            }
            o.timeout = t;
            break;
        }
        case opt_json: o.json = true; break;
        case opt_check_config: o.check_config = true; break;
        case opt_runs: o.runs = true; break;
        case opt_resume: o.resume = true; break;
        case 'q': o.quiet = true; break;
        case 'h': std::cout << usage_text; std::exit(exit_all_ok);
        case 'V': std::cout << "mpasswd " MPASSWD_VERSION "\n"; std::exit(exit_all_ok);
        case ':': usage_error(option_error(argv[optind - 1], long_options, "requires an argument"));
        default:
            // A short option's letter (a char: negative from 0x80), or a
            // long option's value, or 0 for an unknown long option.
            if (std::strncmp(argv[optind - 1], "--", 2) == 0) {
                usage_error(option_error(argv[optind - 1], long_options, nullptr));
            }
            if (optopt != 0 && optopt < 256 &&
                std::strchr(short_options + 2, static_cast<unsigned char>(optopt)) == nullptr) {
                usage_error("invalid option -- '" + std::string(1, static_cast<char>(optopt)) +
                            "'");
            }
            usage_error("unrecognized option '" + std::string(argv[optind - 1]) + "'");
        }
    }
    if (o.check_config) {
        if (optind != argc) {
            usage_error("--check-config takes no USER");
        }
        return o;
    }
    if (o.runs || o.resume) {
        const char* const name = o.runs ? "--runs" : "--resume";
        if (o.runs && o.resume) {
            usage_error("--runs and --resume do not go together");
        }
        if (optind < argc) {
            usage_error(std::string(name) + " takes at most one RUN (and no USER)");
        }
        if (o.runs && (o.from_stdin || o.verify || o.best_effort || o.json ||
                       !o.hosts.empty() || o.hosts_file)) {
            usage_error("--runs only reads the journal; it takes no other option but -c");
        }
        if (o.runs && (o.operation || o.if_different || o.batch)) {
            usage_error("--runs only reads the journal; it takes no other option but -c");
        }
        if (o.resume && (o.verify || o.best_effort || !o.hosts.empty() || o.hosts_file ||
                         o.operation || o.if_different || o.batch)) {
            usage_error("--resume takes the targets, the user, the action and --best-effort "
                        "from the run");
        }
        if (o.resume && o.from_stdin && !o.run_id) {
            // The newest unfinished run may be another user's: a script
            // must say which run its password is for.
            usage_error("--resume --stdin needs the RUN to resume");
        }
        return o;
    }
    check_operation(o);
    if (o.batch) {
        if (optind != argc) {
            usage_error("--batch reads its users from standard input; no USER");
        }
        return o;
    }
    if (optind + 1 != argc) {
        usage_error(optind == argc ? "no USER given" : "one USER only");
    }
    o.user = argv[optind];
    if (o.verify && o.from_stdin) {
        usage_error("--verify sends no password; --stdin does not go with it");
    }
    if (o.verify && o.best_effort) {
        usage_error("--verify changes nothing; --best-effort does not go with it");
    }
    if (static_cast<int>(o.hosts_file.has_value()) + static_cast<int>(!o.hosts.empty()) +
            static_cast<int>(o.inventory.has_value()) >
        1) {
        usage_error("give targets with one of -H, --hosts and --inventory");
    }
    if (o.limit && !o.hosts.empty()) {
        usage_error("--limit selects from an inventory or the hosts file, not from -H");
    }
    return o;
}

// The password must not end up in a core file.
void no_core_dumps() {
    const rlimit none{0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

class Progress {
public:
    Progress(bool on, std::size_t total) : on_(on), total_(total) { draw(); }
    void add(bool failed) {
        ++done_;
        failed_ += failed ? 1 : 0;
        draw();
    }
    void clear() {
        if (on_) {
            std::fputs("\r\033[K", stderr);
            std::fflush(stderr);
        }
    }

private:
    void draw() {
        if (on_) {
            std::fprintf(stderr, "\r\033[K%s", progress_line(done_, failed_, total_).c_str());
            std::fflush(stderr);
        }
    }
    bool on_;
    std::size_t total_;
    std::size_t done_ = 0;
    std::size_t failed_ = 0;
};

std::vector<Target> load_targets(const Options& o, const ControllerConfig& config) {
    std::vector<Target> targets =
        choose_targets(config, TargetChoice{o.hosts, o.hosts_file, o.inventory, o.limit});
    if (targets.empty()) {
        usage_error("no targets: the hosts file lists none and no -H was given");
    }
    return targets;
}

// The action a journal record names (for --resume).
Action action_from_name(std::string_view name) {
    for (const Action a : {Action::change, Action::expire, Action::lock, Action::unlock}) {
        if (action_name(a) == name) {
            return a;
        }
    }
    throw journal::JournalError("a run of action '" + mctp::printable(name, 32) +
                                "' cannot be resumed");
}

// Says how to finish runs that ended 3 or 4 (on standard error).
void tell_resume(const std::vector<const journal::Record*>& unfinished) {
    constexpr std::size_t named_max = 10;
    for (std::size_t i = 0; i < unfinished.size() && i < named_max; ++i) {
        std::cerr << "mpasswd: run " << unfinished[i]->id << ": to finish it, mpasswd --resume "
                  << unfinished[i]->id << "\n";
    }
    if (unfinished.size() > named_max) {
        std::cerr << "mpasswd: and " << unfinished.size() - named_max
                  << " more unfinished runs (mpasswd --runs lists them)\n";
    }
}

// --batch: every line read and checked before anything is sent; one
// result (and JSON line) per user and target; one journal record and one
// log line per user, the records written together (one sync per round).
int run_batch(const Options& o, const ControllerConfig& config, const std::vector<Target>& targets,
              const EngineSettings& settings, Transport& transport) {
    std::vector<BatchEntry> entries = read_batch(STDIN_FILENO);
    std::vector<BatchUser> users;
    users.reserve(entries.size());
    std::vector<std::string> names;
    names.reserve(entries.size());
    for (const auto& e : entries) {
        users.push_back({e.user, &e.password});
        names.push_back(e.user);
    }
    check_batch(settings, users, targets.size());

    // The records are written before anything is sent: a journal that
    // cannot take them stops the batch here (exit 2).
    journal::BatchRun records(config.journal, "mpasswd", names, o.best_effort, targets);
    records.start();

    Progress progress(!o.quiet && !o.json && isatty(STDERR_FILENO) == 1,
                      users.size() * targets.size());
    Job each{Action::change, "", nullptr, o.best_effort};
    const auto results = mpasswd::run_batch(
        targets, settings, users, o.best_effort, transport,
        [&](std::size_t u, std::size_t t, const Result& r) {
            records.result(u, t, r);
            if (o.json) {
                each.user = users[u].user;
                std::cout << json_line(targets[t], each, r, records.records()[u].id) << "\n";
            }
            progress.add(r.outcome != Outcome::ok);
        },
        [&records] { records.sending(); });
    progress.clear();
    for (auto& u : users) {
        u.password = nullptr;
    }
    entries.clear();  // the passwords, wiped
    for (std::size_t u = 0; u < results.size(); ++u) {
        for (std::size_t t = 0; t < results[u].size(); ++t) {
            records.result(u, t, results[u][t]);
        }
    }
    std::optional<std::string> journal_failed;
    try {
        records.finish();
    } catch (const journal::JournalError& e) {
        journal_failed = e.what();
    }
    int status = exit_all_ok;
    std::vector<const journal::Record*> unfinished;
    for (const auto& r : records.records()) {
        log_run(r);
        const int one = journal::exit_status_of(r);
        status = std::max(status, one);
        if (one >= journal::exit_status::unreachable) {
            unfinished.push_back(&r);
        }
    }
    if (!o.json) {
        std::cout << batch_failure_table(users, targets, results);
        if (!o.quiet) {
            std::cout << batch_summary(results, targets.size()) << "\n";
        }
    }
    std::cout.flush();
    if (journal_failed) {
        error_line("the batch's last records were not written: " + *journal_failed);
    }
    if (records.journal() != nullptr) {
        tell_resume(unfinished);
    }
    return status;
}

int run(const Options& o) {
    ControllerConfig config = load_controller_config(o.config);
    if (o.check_config) {
        std::cout << describe(config) << std::flush;
        return exit_all_ok;
    }
    if (o.runs) {
        return list_runs(config.journal, o.run_id);
    }
    std::optional<journal::Record> resumed;
    std::vector<Target> targets;
    if (o.resume) {
        resumed = run_to_resume(config.journal, o.run_id);
        targets = journal::targets_of(*resumed, journal::unfinished_targets(*resumed));
    } else {
        targets = load_targets(o, config);
    }
    EngineSettings settings = config.engine_settings(o.timeout);
    const DescriptorRoom room(o.parallel.value_or(config.parallel));
    settings.parallel = room.parallel();
    // TLS files are checked before a password is asked for.
    const std::unique_ptr<Transport> transport = config.transport_for(targets);

    if (o.batch) {
        return run_batch(o, config, targets, settings, *transport);
    }
    Job job;
    job.action = resumed  ? action_from_name(resumed->action)
                 : o.verify ? Action::verify
                            : o.operation.value_or(Action::change);
    job.user = resumed ? resumed->user : o.user;
    job.best_effort = resumed ? resumed->best_effort : o.best_effort;
    job.if_different = resumed ? resumed->if_different : o.if_different;
    check_job(settings, Job{Action::verify, job.user, nullptr});
    if (resumed && !o.quiet && !o.json) {
        std::cerr << "mpasswd: resuming run " << resumed->id << ": " << job.user << " on "
                  << targets.size() << " of " << resumed->targets.size() << " targets\n";
    }
    if (resumed && o.from_stdin && !needs_password(job.action)) {
        throw journal::JournalError("run " + resumed->id + " is a " + resumed->action +
                                    ": it sends no password; --stdin does not go with it");
    }
    std::optional<mctp::Secret> password;
    if (needs_password(job.action)) {
        password = o.from_stdin ? read_password_line(STDIN_FILENO)
                                : read_password_from_terminal(job.user, job.action != Action::check);
        job.password = &*password;
    }
    check_job(settings, job);

    // The record is written before anything is sent: a journal that
    // cannot take it stops the run here (exit 2).
    journal::Run record(config.journal, "mpasswd", action_name(job.action), job, targets);
    record.start(resumed ? resumed->id : std::string());
    job.before_change = [&record] { record.sending(); };

    Progress progress(!o.quiet && !o.json && isatty(STDERR_FILENO) == 1, targets.size());
    const auto results = run(targets, settings, job, *transport,
                             [&](std::size_t i, const Result& r) {
                                 record.result(i, r);
                                 if (o.json) {
                                     std::cout << json_line(targets[i], job, r, record.id())
                                               << std::endl;
                                 }
                                 progress.add(r.outcome != Outcome::ok);
                             });
    progress.clear();
    password.reset();
    for (std::size_t i = 0; i < results.size(); ++i) {
        record.result(i, results[i]);
    }
    std::optional<std::string> journal_failed;
    try {
        record.finish();
    } catch (const journal::JournalError& e) {
        journal_failed = e.what();
    }
    log_run(record.record());

    if (!o.json) {
        std::cout << failure_table(targets, results, colour_wanted(STDOUT_FILENO));
        if (!o.quiet) {
            std::cout << summary_line(job, results) << "\n";
        }
        std::cout.flush();
    }
    const int status = journal::exit_status_of(record.record());
    if (journal_failed) {
        error_line("the run's last record was not written: " + *journal_failed);
    }
    if (record.journal() != nullptr && status >= journal::exit_status::unreachable &&
        job.action != Action::verify && job.action != Action::check) {
        tell_resume({&record.record()});
    }
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    no_core_dumps();
    const Options o = parse_options(argc, argv);
    try {
        return run(o);
    } catch (const std::exception& e) {
        // Configuration, job, input and journal errors, all thrown before
        // anything is sent.
        error_line(e.what());
    }
    return exit_usage;
}
