// The journal of runs: records read back, killed runs, bad ids and
// records, unsafe folders, pruning, the caller's file-size limit,
// concurrent runs, and the exit-status table.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "inventory.hpp"
#include "journal.hpp"
#include "temp_file.hpp"

namespace {

using namespace mpasswd;
using namespace mpasswd::journal;
namespace fs = std::filesystem;

std::string journal_of(const TempDir& d) {
    return d.path() + "/runs";
}

std::vector<Target> three_targets() {
    return parse_hosts("127.0.0.1:4242\nweb1.example:4243 tls tls_fingerprint=" +
                           std::string(64, 'a') + "\n[::1]:22 ssh auth=plain\n",
                       "test", TargetDefaults(4242));
}

Settings settings_for(const TempDir& d, unsigned keep_runs = 1000) {
    Settings s;
    s.directory = journal_of(d);
    s.keep_runs = keep_runs;
    return s;
}

Job change_job() {
    Job job;
    job.action = Action::change;
    job.user = "alice";
    return job;
}

Result result(Outcome o, std::string_view phase, int code = 0, bool maybe = false) {
    Result r;
    r.outcome = o;
    r.phase = phase;
    r.code = code;
    r.step = phase == "test" ? "TEST" : "end of data";
    r.text = "why: 100% sure\twith a tab";
    // As the engine decides it (fanout.cpp, per_item): maybe when the
    // change went out with no final reply, yes for an ok change.
    r.maybe_applied = maybe;
    r.applied = maybe                                     ? Applied::maybe
                : o == Outcome::ok && phase == "change" ? Applied::yes
                                                         : Applied::no;
    return r;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(Journal, ARecordReadsBackExactly) {
    TempDir d;
    journal::Run run(settings_for(d), "mpasswd", "change", change_job(), three_targets());
    run.start();
    run.record().who.sudo_user = "carol";
    run.result(0, result(Outcome::ok, "change", 250));
    run.result(1, result(Outcome::timeout, "change", 0, true));
    run.result(2, result(Outcome::unreachable, "change"));
    run.finish();
    const Record back = run.journal()->read(run.id());
    EXPECT_EQ(format(back), format(run.record()));
    EXPECT_EQ(back.user, "alice");
    EXPECT_EQ(back.program, "mpasswd");
    EXPECT_EQ(back.pid, getpid());
    EXPECT_EQ(back.who.uid, getuid());
    EXPECT_EQ(back.who.sudo_user, "carol");
    EXPECT_EQ(back.targets[0].applied, Applied::yes);
    EXPECT_EQ(back.targets[1].applied, Applied::maybe);
    EXPECT_EQ(back.targets[2].applied, Applied::no);
    EXPECT_EQ(back.targets[0].text, "why: 100% sure\\x09with a tab");
    EXPECT_EQ(state_of(back), State::unfinished);
    EXPECT_EQ(exit_status_of(back), exit_status::unknown);
    EXPECT_EQ(unfinished_targets(back), (std::vector<std::size_t>{1, 2}));
    // The targets come back as they were, for --resume.
    const auto again = targets_of(back, {1, 2});
    ASSERT_EQ(again.size(), 2U);
    EXPECT_EQ(again[0].tls_fingerprint, std::string(64, 'a'));
    EXPECT_EQ(again[0].via, Via::tls);
    EXPECT_EQ(again[1].host, "::1");
    EXPECT_EQ(again[1].via, Via::ssh);
    EXPECT_TRUE(again[1].auth_plain);
    // The folder is the owner's only, and so is the record.
    struct stat st {};
    ASSERT_EQ(stat(journal_of(d).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700U);
    ASSERT_EQ(stat((journal_of(d) + "/" + run.id() + ".run").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);
    const std::string line = log_line(back);
    EXPECT_NE(line.find("run " + run.id()), std::string::npos) << line;
    EXPECT_NE(line.find("SUDO_USER carol"), std::string::npos) << line;
    EXPECT_NE(line.find("change of alice on 3 targets: 1 ok, 1 timeout, 1 unreachable, "
                        "1 maybe applied; failed: web1.example:4243 timeout (maybe applied), "
                        "[::1]:22 unreachable"),
              std::string::npos)
        << line;
}

TEST(Journal, ARunKilledAfterTestIsInterruptedWithEveryTargetMaybe) {
    TempDir d;
    std::string id;
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    const pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        journal::Run run(settings_for(d), "mpasswd", "change", change_job(), three_targets());
        run.start();
        run.sending();
        [[maybe_unused]] auto n = write(pipefd[1], run.id().data(), run.id().size());
        _exit(0);  // killed: no finish()
    }
    close(pipefd[1]);
    char buf[64] = {};
    ASSERT_EQ(read(pipefd[0], buf, sizeof buf), 29);
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    Journal j(settings_for(d));
    const Record r = j.read(buf);
    EXPECT_EQ(state_of(r), State::interrupted);
    for (const auto& t : r.targets) {
        EXPECT_EQ(t.applied, Applied::maybe);
        EXPECT_EQ(t.result, "pending");
    }
    EXPECT_EQ(exit_status_of(r), exit_status::unknown);
}

TEST(Journal, AChangeRefusedInTestIsRefusedNotUnfinished) {
    TempDir d;
    journal::Run run(settings_for(d), "mpasswd", "change", change_job(), three_targets());
    run.start();
    run.result(0, result(Outcome::skipped, "test"));
    run.result(1, result(Outcome::refused, "test", 554));
    run.result(2, result(Outcome::skipped, "test"));
    run.finish();
    const Record r = run.journal()->read(run.id());
    EXPECT_EQ(state_of(r), State::refused);
    EXPECT_EQ(exit_status_of(r), exit_status::refused);
    for (const auto& t : r.targets) {
        EXPECT_EQ(t.applied, Applied::no);
    }
}

TEST(Journal, BadIdsAndRecordsAreRefused) {
    TempDir d;
    Journal j(settings_for(d));
    for (const char* id : {"../../etc/shadow", "", "20261206T154247.123Z-0a1b2c3", ".lock",
                           "20261206T154247.123Z-0A1B2C3D", "20261206T154247.123Z-0a1b2c3d/",
                           "20261206T154247.123Z-0a1b2c3d.run"}) {
        EXPECT_THROW((void)j.read(id), JournalError) << id;
    }
    EXPECT_FALSE(is_run_id("../../etc/shadow"));
    journal::Run run(settings_for(d), "mpasswd", "change", change_job(), three_targets());
    run.start();
    run.finish();
    const std::string good = format(run.record());
    const auto put = [&](const std::string& id, const std::string& text) {
        std::ofstream(journal_of(d) + "/" + id + ".run") << text;
    };
    const std::string other = "20261206T154247.123Z-00000001";
    const auto with_id = [&](std::string text) {
        text.replace(text.find(run.id()), run.id().size(), other);
        return text;
    };
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"cut off", with_id(good).substr(0, good.size() / 2)},
        {"text after the end", with_id(good) + "target x\n"},
        {"no end", with_id(good.substr(0, good.size() - 4))},
        {"another id", good},
        {"a target too few", [&] {
             std::string t = with_id(good);
             t.replace(t.find("targets 3"), 9, "targets 4");
             return t;
         }()},
        {"a raw tab", [&] {
             std::string t = with_id(good);
             t.replace(t.find("user alice"), 10, "user al\tce");
             return t;
         }()},
        {"a bad user", [&] {
             std::string t = with_id(good);
             t.replace(t.find("user alice"), 10, "user ../..");
             return t;
         }()},
        {"a bad applied", [&] {
             std::string t = with_id(good);
             t.replace(t.find(" no "), 4, " so ");
             return t;
         }()},
        {"empty", ""},
        {"not a record", "root:x:0:0::/root:/bin/bash\n"},
    };
    for (const auto& [what, text] : bad) {
        put(other, text);
        EXPECT_THROW((void)j.read(other), JournalError) << what;
    }
    // A FIFO in place of a record: refused at once, not waited on.
    unlink((journal_of(d) + "/" + other + ".run").c_str());
    ASSERT_EQ(mkfifo((journal_of(d) + "/" + other + ".run").c_str(), 0600), 0);
    try {
        (void)j.read(other);
        ADD_FAILURE() << "a FIFO was read";
    } catch (const JournalError& e) {
        EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos);
    }
    // A symlink in place of a record (to a file outside) is not followed.
    unlink((journal_of(d) + "/" + other + ".run").c_str());
    ASSERT_EQ(symlink((journal_of(d) + "/" + run.id() + ".run").c_str(),
                      (journal_of(d) + "/" + other + ".run").c_str()),
              0);
    EXPECT_THROW((void)j.read(other), JournalError);
    // --runs lists the good one still.
    const auto ids = j.ids();
    EXPECT_NE(std::find(ids.begin(), ids.end(), run.id()), ids.end());
}

TEST(Journal, AnUnsafeFolderIsRefused) {
    TempDir d;
    Settings s = settings_for(d);
    ASSERT_EQ(mkdir(s.directory.c_str(), 0700), 0);
    ASSERT_EQ(chmod(s.directory.c_str(), 0777), 0);
    EXPECT_THROW(Journal{s}, JournalError);
    ASSERT_EQ(chmod(s.directory.c_str(), 0720), 0);
    EXPECT_THROW(Journal{s}, JournalError);
    ASSERT_EQ(chmod(s.directory.c_str(), 0755), 0);
    EXPECT_NO_THROW(Journal{s});
    // A symlink to a good folder is refused too.
    const std::string link = d.path() + "/link";
    ASSERT_EQ(symlink(s.directory.c_str(), link.c_str()), 0);
    Settings via_link = s;
    via_link.directory = link;
    EXPECT_THROW(Journal{via_link}, JournalError);
    // Another user's folder.
    if (geteuid() == 0) {
        ASSERT_EQ(chown(s.directory.c_str(), 65534, 65534), 0);
        EXPECT_THROW(Journal{s}, JournalError);
    }
    Settings relative = s;
    relative.directory = "runs";
    EXPECT_THROW(Journal{relative}, JournalError);
    // A run with an unsafe journal sends nothing: start() throws.
    ASSERT_EQ(chmod(s.directory.c_str(), 0777), 0);
    journal::Run run(s, "mpasswd", "change", change_job(), three_targets());
    EXPECT_THROW(run.start(), JournalError);
}

TEST(Journal, PruningByCountAndAgeSparesTheCurrentAndRunningRuns) {
    TempDir d;
    const Settings s = settings_for(d, 3);
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        journal::Run run(s, "mpasswd", "change", change_job(), three_targets());
        run.start();
        run.finish();
        ids.push_back(run.id());
    }
    Journal j(s);
    EXPECT_EQ(j.ids(), (std::vector<std::string>{ids[2], ids[3], ids[4]}));
    // An old run (100 days) goes; an old one still running (this pid,
    // no end) stays, and so does the record being written.
    Record old = j.read(ids[2]);
    old.id = "20000101T000000.000Z-00000001";
    old.ended_ms = 1;
    std::ofstream(s.directory + "/" + old.id + ".run") << format(old);
    Record running = old;
    running.id = "20000101T000000.000Z-00000002";
    running.ended_ms = 0;
    running.pid = getpid();
    std::ofstream(s.directory + "/" + running.id + ".run") << format(running);
    Settings by_age = s;
    by_age.keep_runs = 1000;
    by_age.keep_days = 30;
    journal::Run run(by_age, "mpasswd", "change", change_job(), three_targets());
    run.start();
    const auto left = Journal(by_age).ids();
    EXPECT_EQ(left, (std::vector<std::string>{running.id, ids[2], ids[3], ids[4], run.id()}));
    // With keep_runs 1, only the current one and the running one are left.
    Settings one = s;
    one.keep_runs = 1;
    Journal(one).prune(run.id());
    EXPECT_EQ(Journal(one).ids(), (std::vector<std::string>{running.id, run.id()}));
}

// Drops CAP_SYS_RESOURCE from this process, so that a hard limit holds.
void drop_sys_resource() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) {
        return;
    }
    data[CAP_SYS_RESOURCE / 32].effective &= ~(1U << (CAP_SYS_RESOURCE % 32));
    data[CAP_SYS_RESOURCE / 32].permitted &= ~(1U << (CAP_SYS_RESOURCE % 32));
    syscall(SYS_capset, &header, data);
}

// In a child: a record under the caller's RLIMIT_FSIZE (soft, or hard too).
// The child's exit: 0 written whole, 1 refused with JournalError and the
// earlier record kept, 2 something else.
int write_under_fsize_limit(const TempDir& d, bool hard) {
    const pid_t pid = fork();
    if (pid == 0) {
        journal::Run run(settings_for(d), "mpasswd", "change", change_job(), three_targets());
        run.start();  // before the limit: a first record
        const std::string first = format(run.record());
        drop_sys_resource();
        rlimit small{100, hard ? 100 : RLIM_INFINITY};
        if (setrlimit(RLIMIT_FSIZE, &small) != 0) {
            _exit(2);
        }
        run.record().targets[0].result = "ok";
        try {
            run.finish();
        } catch (const JournalError&) {
            const bool kept = read_file(journal_of(d) + "/" + run.id() + ".run") == first;
            _exit(kept ? 1 : 2);
        }
        rlimit now{};
        getrlimit(RLIMIT_FSIZE, &now);
        const bool whole = read_file(journal_of(d) + "/" + run.id() + ".run") ==
                           format(run.record());
        // The caller's limit is back as it was.
        _exit(whole && now.rlim_cur == 100 ? 0 : 2);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST(Journal, TheCallersFileSizeLimitNeitherCutsNorKills) {
    {
        TempDir d;
        EXPECT_EQ(write_under_fsize_limit(d, false), 0);
    }
    TempDir d;
    EXPECT_EQ(write_under_fsize_limit(d, true), 1);
    for (const auto& f : files_in(journal_of(d))) {
        EXPECT_FALSE(f.ends_with(".tmp")) << f;
    }
}

TEST(Journal, FourProcessesTimesTwentyFiveRunsLoseNothing) {
    TempDir d;
    std::vector<pid_t> children;
    for (int p = 0; p < 4; ++p) {
        const pid_t pid = fork();
        if (pid == 0) {
            try {
                for (int i = 0; i < 25; ++i) {
                    journal::Run run(settings_for(d), "mpasswd", "change", change_job(), three_targets());
                    run.start();
                    run.sending();
                    run.result(0, result(Outcome::ok, "change", 250));
                    run.finish();
                }
            } catch (...) {
                _exit(1);
            }
            _exit(0);
        }
        children.push_back(pid);
    }
    for (const pid_t pid : children) {
        int status = 0;
        waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    Journal j(settings_for(d));
    const auto ids = j.ids();
    EXPECT_EQ(ids.size(), 100U);
    for (const auto& id : ids) {
        const Record r = j.read(id);
        EXPECT_NE(r.ended_ms, 0);
        EXPECT_EQ(r.targets[0].result, "ok");
    }
    for (const auto& f : files_in(journal_of(d))) {
        EXPECT_TRUE(f.ends_with(".run") || f == ".lock") << f;
    }
}

TEST(Journal, ExitStatusTable) {
    EXPECT_EQ(exit_status_of("ok", Applied::yes), 0);
    EXPECT_EQ(exit_status_of("ok", Applied::no), 0);
    EXPECT_EQ(exit_status_of("refused", Applied::no), 1);
    EXPECT_EQ(exit_status_of("skipped", Applied::no), 1);
    // --check: another password there; --if-different: already this one.
    EXPECT_EQ(exit_status_of("different", Applied::no), 1);
    EXPECT_EQ(exit_status_of("unchanged", Applied::no), 0);
    // --expire whose EXPR was refused after the CHPW: refused, applied yes.
    EXPECT_EQ(exit_status_of("refused", Applied::yes), 1);
    for (const char* r : {"unreachable", "untrusted", "timeout", "protocol-error", "unsupported",
                          "pending"}) {
        EXPECT_EQ(exit_status_of(r, Applied::no), 3) << r;
        EXPECT_EQ(exit_status_of(r, Applied::maybe), 4) << r;
    }
    Record r;
    r.targets.resize(3);
    r.targets[0].result = "ok";
    r.targets[1].result = "refused";
    r.targets[2].result = "ok";
    EXPECT_EQ(exit_status_of(r), 1);
    r.targets[2].result = "timeout";
    EXPECT_EQ(exit_status_of(r), 3);
    r.targets[0].applied = Applied::maybe;
    r.targets[0].result = "protocol-error";
    EXPECT_EQ(exit_status_of(r), 4);
}

// The account operations' records: the action's own name, the engine's
// applied, unchanged counted as done and different as failed.
TEST(Journal, OperationsRecordTheirActionAndTheEnginesApplied) {
    TempDir d;
    Job job = change_job();
    job.action = Action::expire;
    journal::Run run(settings_for(d), "mpasswd", action_name(job.action), job, three_targets());
    run.start();
    Result refused_expr = result(Outcome::refused, "change", 530);
    refused_expr.step = "EXPR";
    refused_expr.applied = Applied::yes;  // the CHPW was done
    run.result(0, refused_expr);
    run.result(1, result(Outcome::ok, "change", 250));
    run.result(2, result(Outcome::ok, "change", 250));
    run.finish();
    Record back = run.journal()->read(run.id());
    EXPECT_EQ(back.action, "expire");
    EXPECT_EQ(back.targets[0].applied, Applied::yes);
    EXPECT_EQ(exit_status_of(back), exit_status::refused);
    EXPECT_EQ(unfinished_targets(back), (std::vector<std::size_t>{0}));

    job.action = Action::change;
    job.if_different = true;
    journal::Run changed(settings_for(d), "mpasswd", "change", job, three_targets());
    changed.start();
    Result unchanged = result(Outcome::unchanged, "check", 250);
    changed.result(0, unchanged);
    changed.result(1, unchanged);
    changed.result(2, result(Outcome::ok, "change", 250));
    changed.finish();
    back = changed.journal()->read(changed.id());
    EXPECT_TRUE(back.if_different);
    EXPECT_EQ(exit_status_of(back), exit_status::ok);
    EXPECT_EQ(state_of(back), State::done);
    EXPECT_TRUE(unfinished_targets(back).empty());
    EXPECT_EQ(log_line(back).find("failed"), std::string::npos) << log_line(back);

    job.action = Action::check;
    job.if_different = false;
    journal::Run check(settings_for(d), "mpasswd", "check", job, three_targets());
    check.start();
    check.result(0, result(Outcome::ok, "check", 250));
    check.result(1, result(Outcome::different, "check", 535));
    check.result(2, result(Outcome::ok, "check", 250));
    check.finish();
    back = check.journal()->read(check.id());
    EXPECT_EQ(exit_status_of(back), exit_status::refused);
    const std::string line = log_line(back);
    EXPECT_NE(line.find("check of alice on 3 targets: 1 different, 2 ok; failed: "
                        "web1.example:4243 different"),
              std::string::npos)
        << line;
}

// A batch: one record per user, written together, each with its user's
// results; the journal holds no password.
TEST(Journal, ABatchWritesOneRecordPerUser) {
    TempDir d;
    std::vector<std::string> users;
    for (int i = 0; i < 100; ++i) {
        users.push_back("user" + std::to_string(i));
    }
    journal::BatchRun batch(settings_for(d), "mpasswd", users, false, three_targets());
    batch.start();
    const auto files = files_in(journal_of(d));
    ASSERT_EQ(std::count_if(files.begin(), files.end(),
                            [](const std::string& f) { return f.ends_with(".run"); }),
              100);
    for (const auto& r : batch.records()) {
        EXPECT_EQ(state_of(batch.journal()->read(r.id)), State::running);
    }
    batch.sending();
    for (std::size_t u = 0; u < users.size(); ++u) {
        for (std::size_t t = 0; t < 3; ++t) {
            const bool lost = u == 7 && t == 1;
            batch.result(u, t,
                         lost ? result(Outcome::timeout, "change", 0, true)
                              : result(Outcome::ok, "change", 250));
        }
    }
    batch.finish();
    std::set<std::string> ids;
    for (std::size_t u = 0; u < users.size(); ++u) {
        const Record back = batch.journal()->read(batch.records()[u].id);
        ids.insert(back.id);
        EXPECT_EQ(back.user, users[u]);
        EXPECT_EQ(back.action, "change");
        EXPECT_EQ(back.targets.size(), 3U);
        EXPECT_EQ(state_of(back), u == 7 ? State::unfinished : State::done) << u;
        EXPECT_EQ(exit_status_of(back), u == 7 ? exit_status::unknown : exit_status::ok);
    }
    EXPECT_EQ(ids.size(), 100U);
    for (const auto& f : files_in(journal_of(d))) {
        EXPECT_TRUE(f.ends_with(".run") || f == ".lock") << f;  // no temporary file left
    }
}

}  // namespace
