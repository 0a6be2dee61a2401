#!/usr/bin/env python3
"""mpasswd (and its fan-out engine) end to end against 50 socket-activated
mpasswdd responders on 127.0.0.1, each with its own pam_wrapper/pam_matrix
stack: one port closed, one target with another secret, one refusing the
user by policy, one that accepts and never answers."""
import fcntl
import glob
import json
import os
import pty
import re
import shutil
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from fleet import Fleet, fleet_env  # noqa: E402
from mctp_client import (Client, FakeTarget, ScriptedTarget, StagedTarget,  # noqa: E402
                         answer_prompts, control_octets)

MPASSWD = os.environ["MPASSWD"]
SECRET = "Fleet-Secret-0042"
NEW = "N3w-Fleet-Pw!"
TIMEOUT = 2.0
N = 50
CLOSED, OTHER_SECRET, DENY_ALICE, SILENT, STRICT = 7, 19, 31, 43, 12
# STRICT: its check service (TEST) refuses every password; its store takes any.
SPECIAL = {CLOSED: "closed", OTHER_SECRET: "other-secret", DENY_ALICE: "deny-alice",
           SILENT: "silent", STRICT: "strict"}
EXPECTED = {CLOSED: ("unreachable", None, "connect"),
            # It holds the verifier of another secret: it cannot prove
            # itself, and nothing goes to it after the proof.
            OTHER_SECRET: ("untrusted", 530, "SCRAM proof"),
            DENY_ALICE: ("refused", 530, "CHPW"),
            SILENT: ("timeout", None, "banner")}
RUN_ID = r"\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}"



class Controller(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = Fleet(fleet_env(), N, SECRET, SPECIAL)
        cls.normal = [i for i in range(N) if i not in SPECIAL]

    @classmethod
    def tearDownClass(cls):
        cls.fleet.stop()
        logs = "".join(cls.fleet.log_text(i) for i in range(N))
        # Every record of the journal, and whatever else is in its folder.
        journal = ""
        for path in glob.glob(os.path.join(cls.fleet.journal, "*")) + glob.glob(
                os.path.join(cls.fleet.journal, ".*")):
            with open(path, "rb") as f:
                journal += f.read().decode("utf-8", "replace")
        cls.fleet.remove()
        assert "mpasswd-run 1" in journal, "no journal records"
        for secret in (SECRET, NEW, "Typed-Pw-77"):
            assert secret not in logs, "a secret in a responder's log"
            assert secret not in journal, "a secret in the journal"

    def setUp(self):
        self.fleet.reset()

    def mpasswd(self, *args, stdin=None, config=True):
        cmd = [MPASSWD] + (["-c", self.fleet.config] if config else []) + list(args)
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        for secret in (SECRET, NEW):
            self.assertNotIn(secret, r.stdout + r.stderr)
        return r

    def test_fifty_targets_every_result_right_in_about_the_timeout(self):
        start = time.monotonic()
        # --best-effort: no TEST first; CHPW wherever it goes.
        r = self.mpasswd("--stdin", "--best-effort", "--json", "--timeout", str(TIMEOUT),
                         "alice", stdin=NEW + "\n")
        took = time.monotonic() - start
        # Unreachable, untrusted and timed out before the password: 3.
        self.assertEqual(r.returncode, 3, r.stderr)
        results = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(results), N)
        run = results[0]["run"]
        self.assertRegex(run, RUN_ID)
        self.assertEqual(r.stderr, "mpasswd: run %s: to finish it, mpasswd --resume %s\n"
                         % (run, run))
        for o in results:
            self.assertEqual((o["run"], o["maybe_applied"]), (run, False), o)
        by_port = {o["port"]: o for o in results}
        for i, port in enumerate(self.fleet.ports):
            o = by_port[port]
            self.assertEqual(o["target"], "127.0.0.1:%d" % port)
            self.assertEqual(o["user"], "alice")
            self.assertEqual(o["action"], "change")
            want = EXPECTED.get(i, ("ok", 250, "end of data"))
            self.assertEqual((o["result"], o["code"], o["step"]), want, o)
            self.assertEqual(o["phase"], "change", o)
            self.assertEqual(o["auth"], None if i in (CLOSED, SILENT) else "SCRAM-SHA-256", o)
            if i in self.normal or i == STRICT:
                self.assertEqual(self.fleet.password_of(i, "alice"), NEW)
                self.assertEqual(self.fleet.password_of(i, "bob"), "Old-Passw0rd-1")
            elif i in (OTHER_SECRET, DENY_ALICE):
                self.assertEqual(self.fleet.password_of(i, "alice"), "Old-Passw0rd-1")
        self.assertEqual(by_port[self.fleet.ports[SILENT]]["text"], "no banner within 2 s")
        self.assertGreaterEqual(by_port[self.fleet.ports[SILENT]]["elapsed_ms"], 2000)
        # One silent target costs its own timeout, not the others' time:
        # the whole run ends in about TIMEOUT (a sequential run would wait
        # for each target in turn).
        self.assertLess(took, 3 * TIMEOUT, "took %.1f s" % took)
        self.assertIn("AUTH ok: controller control-test (SCRAM-SHA-256)",
                      self.fleet.log_text(self.normal[0]))
        other = self.fleet.log_text(OTHER_SECRET)
        self.assertIn("AUTH SCRAM-SHA-256 failed", other)
        self.assertNotIn("CHPW", other)

    def test_table_and_summary_for_people(self):
        targets = self.fleet.targets([0, 1, CLOSED, DENY_ALICE])
        args = sum([["-H", t] for t in targets], [])
        r = self.mpasswd(*args, "--best-effort", "--stdin", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 3)
        # No progress line when stderr is not a terminal: only the run.
        self.assertRegex(r.stderr, r"\Ampasswd: run %s: to finish it, mpasswd --resume %s\n\Z"
                         % (RUN_ID, RUN_ID))
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("TARGET"))
        self.assertIn("127.0.0.1:%d" % self.fleet.ports[CLOSED], lines[1])
        self.assertIn("unreachable", lines[1])
        self.assertIn("Connection refused", lines[1])
        self.assertIn("refused", lines[2])
        self.assertIn("530", lines[2])
        self.assertIn("alice may not be managed", lines[2])
        self.assertEqual(lines[3], "alice: password changed on 2 of 4 targets, "
                                   "2 failed (1 refused, 1 unreachable)")
        self.assertEqual(self.fleet.password_of(0, "alice"), NEW)

    def test_a_stricter_target_refuses_in_test_and_no_store_changes(self):
        indexes = [0, 1, STRICT]
        args = sum([["-H", t] for t in self.fleet.targets(indexes)], [])
        before = [len(self.fleet.log_text(i)) for i in indexes]
        r = self.mpasswd(*args, "--stdin", "--json", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        by_port = {o["port"]: o for o in map(json.loads, r.stdout.splitlines())}
        strict = by_port[self.fleet.ports[STRICT]]
        self.assertEqual((strict["result"], strict["code"], strict["step"], strict["phase"]),
                         ("refused", 554, "TEST", "test"), strict)
        self.assertIn("shorter than", strict["text"])  # pam_pwquality's own reason
        for i in (0, 1):
            o = by_port[self.fleet.ports[i]]
            self.assertEqual((o["result"], o["step"], o["phase"]), ("skipped", "TEST", "test"), o)
        for n, i in enumerate(indexes):
            self.assertEqual(self.fleet.password_of(i, "alice"), "Old-Passw0rd-1", i)
            log = self.fleet.log_text(i)[before[n]:]
            self.assertIn("TEST alice", log)
            self.assertNotIn("CHPW", log)
        # The table names the refusal, its step and reason; nothing changed.
        r = self.mpasswd(*args, "--stdin", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        row = [line for line in r.stdout.splitlines()
               if line.startswith("127.0.0.1:%d " % self.fleet.ports[STRICT])]
        self.assertEqual(len(row), 1, r.stdout)
        self.assertRegex(row[0], r"refused +554 +TEST +BAD PASSWORD: .*shorter than")
        self.assertIn("no target was sent the change", r.stdout.splitlines()[-1])
        for i in indexes:
            self.assertEqual(self.fleet.password_of(i, "alice"), "Old-Passw0rd-1", i)
        # --best-effort: no TEST; the change goes everywhere it is taken.
        r = self.mpasswd(*args, "--best-effort", "--stdin", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for i in indexes:
            self.assertEqual(self.fleet.password_of(i, "alice"), NEW, i)

    def test_all_ok_exit_0_and_quiet(self):
        args = sum([["-H", t] for t in self.fleet.targets(self.normal[:5])], [])
        r = self.mpasswd(*args, "--stdin", "bob", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "bob: password changed on 5 of 5 targets\n")
        for i in self.normal[:5]:
            self.assertEqual(self.fleet.password_of(i, "bob"), NEW)
        self.fleet.reset()
        r = self.mpasswd(*args, "-q", "--stdin", "bob", stdin=NEW + "\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""))
        r = self.mpasswd("-H", self.fleet.targets([CLOSED])[0], "-q", "--verify", "bob")
        self.assertEqual(r.returncode, 3)
        self.assertEqual(len(r.stdout.splitlines()), 2)  # header and the failed target only

    def test_verify_checks_and_changes_nothing(self):
        before = [self.fleet.password_of(i, "alice") for i in self.normal]
        r = self.mpasswd("--verify", "--json", "--timeout", "3", "alice")
        self.assertEqual(r.returncode, 3)
        results = {o["port"]: o for o in map(json.loads, r.stdout.splitlines())}
        for i in self.normal:
            o = results[self.fleet.ports[i]]
            self.assertEqual((o["result"], o["step"], o["action"]), ("ok", "VRFY", "verify"))
        self.assertEqual(results[self.fleet.ports[DENY_ALICE]]["step"], "VRFY")
        self.assertEqual(results[self.fleet.ports[DENY_ALICE]]["code"], 530)
        self.assertEqual(before, [self.fleet.password_of(i, "alice") for i in self.normal])
        args = sum([["-H", t] for t in self.fleet.targets(self.normal[:3])], [])
        r = self.mpasswd(*args, "--verify", "nosuchuser")
        self.assertEqual(r.returncode, 1)
        self.assertIn("551", r.stdout)

    def test_check_config_prints_settings_without_the_secret(self):
        r = self.mpasswd("--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("# effective settings of "), r.stdout)
        self.assertIn("\nsecret = (read from secret_file)\n", r.stdout)
        self.assertIn("\nsecret_file = /", r.stdout)
        self.assertIn("\nreply_timeout = ", r.stdout)
        r = self.mpasswd("--check-config", "alice")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--check-config takes no USER", r.stderr)
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write("secret = x1\nport = 0\n")
            f.flush()
            os.chmod(f.name, 0o600)
            r = self.mpasswd("-c", f.name, "--check-config", config=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn(":2: port: must be a port from 1 to 65535", r.stderr)

    def test_usage_and_config_errors_exit_2_and_send_nothing(self):
        connections = sum(self.fleet.log_text(i).count("Connection from") for i in range(N))
        cases = [
            ([], None, "no USER given"),
            (["a", "b"], None, "one USER only"),
            (["--verify", "--stdin", "alice"], None, "--stdin does not go with it"),
            (["-H", "bad host", "alice"], None, "-H bad host: "),
            (["-H", "h:99999", "alice"], None, "not a port"),
            (["--parallel", "0", "alice"], None, "--parallel must be"),
            (["--timeout", "x", "alice"], None, "--timeout must be"),
            (["--bogus", "alice"], None, "mpasswd: unrecognized option '--bogus'"),
            (["--parallel", "auto0", "alice"], None, "--parallel must be auto or a number"),
            # getopt's cases, in mpasswd's words and with its prefix.
            (["--ver", "alice"], None,
             "mpasswd: option '--ver' is ambiguous; possibilities: '--verify' '--version'\n"),
            (["--verif=yes", "alice"], None, "mpasswd: option '--verify' takes no argument\n"),
            (["--timeout"], None,
             "mpasswd: option '--timeout' requires an argument\n"),
            (["-qc"], None, "mpasswd: option '-c' requires an argument\n"),
            (["--stdin", "alice"], "\n", "the new password is empty"),
            (["--stdin", "alice"], "", "no password on standard input"),
            (["--stdin", "alice"], "tab\tinside\n", "not valid UTF-8 text"),
            (["--stdin", "alice"], "x" * 5000 + "\n", "longer than 4093 octets"),
            (["--stdin", "alice;id"], NEW + "\n", "is not a valid user name"),
            (["alice"], None, "no terminal to ask for the password on; use --stdin"),
        ]
        for args, stdin, message in cases:
            r = subprocess.run([MPASSWD, "-c", self.fleet.config] + args, input=stdin or "",
                               capture_output=True, text=True, timeout=30,
                               start_new_session=True)  # no controlling terminal
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(message, r.stderr, args)
            self.assertTrue(r.stderr.startswith("mpasswd: "), (args, r.stderr))
        hosts = os.path.join(self.fleet.dir, "bad-hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1:%d\n# fine\nweb1 web2\n" % self.fleet.ports[0])
        r = self.mpasswd("--hosts", hosts, "--verify", "alice")
        self.assertEqual(r.returncode, 2)
        self.assertIn(hosts + ":3: unknown option 'web2'", r.stderr)
        r = self.mpasswd("-c", "/nonexistent.conf", "--verify", "alice", config=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent.conf: cannot open", r.stderr)
        self.fleet.write_config("reply_timeout = never\n")
        try:
            r = self.mpasswd("--verify", "alice")
            self.assertEqual(r.returncode, 2)
            self.assertIn(self.fleet.config + ":5: reply_timeout: must be seconds", r.stderr)
        finally:
            self.fleet.write_config()
        os.chmod(self.fleet.secret_file, 0o644)
        try:
            r = self.mpasswd("--verify", "alice")
            self.assertEqual(r.returncode, 2)
            self.assertIn("chmod 600", r.stderr)
        finally:
            os.chmod(self.fleet.secret_file, 0o600)
        after = sum(self.fleet.log_text(i).count("Connection from") for i in range(N))
        self.assertEqual(connections, after, "a usage error must not connect anywhere")

    def write_inventories(self):
        """A hosts file and an Ansible inventory over the same responders:
        web (3), db (2) under prod, and one in no group."""
        web, db, solo = self.normal[:3], self.normal[3:5], self.normal[5]
        hosts = os.path.join(self.fleet.dir, "grouped-hosts")
        with open(hosts, "w") as f:
            f.write("%s  # in no group\n[web]\n%s\n[db]\n%s\n[prod:children]\nweb\ndb\n" % (
                self.fleet.targets([solo])[0], "\n".join(self.fleet.targets(web)),
                "\n".join(self.fleet.targets(db))))
        inventory = os.path.join(self.fleet.dir, "inventory.ini")
        line = "%s ansible_host=127.0.0.1 mpasswd_port=%d ansible_user=deploy\n"
        with open(inventory, "w") as f:
            f.write("solo ansible_host=127.0.0.1 mpasswd_port=%d\n" % self.fleet.ports[solo])
            f.write("[web]\n" + "".join(line % ("web%d.example.org" % (n + 1), self.fleet.ports[i])
                                        for n, i in enumerate(web)))
            f.write("[db]\n" + "".join(line % ("db%d" % (n + 1), self.fleet.ports[i])
                                       for n, i in enumerate(db)))
            f.write("[eu]\nweb1.example.org\ndb1\n[prod:children]\nweb\ndb\n"
                    "[prod:vars]\nansible_python_interpreter=/usr/bin/python3\n")
        return hosts, inventory, web, db, solo

    def changed(self):
        return [i for i in range(N) if i not in (CLOSED, SILENT)
                and self.fleet.password_of(i, "alice") == NEW]

    def test_limit_selects_groups_of_the_hosts_file(self):
        hosts, _, web, db, solo = self.write_inventories()
        for pattern, want in (("web", web), ("prod:!db", web), ("ungrouped", [solo]),
                              ("prod", web + db), ("all:!prod", [solo]),
                              ("127.0.0.1:%d,db" % self.fleet.ports[solo], db + [solo])):
            self.fleet.reset()
            r = self.mpasswd("--hosts", hosts, "--limit", pattern, "--stdin", "--json", "alice",
                             stdin=NEW + "\n")
            self.assertEqual(r.returncode, 0, (pattern, r.stderr))
            got = sorted(json.loads(line)["port"] for line in r.stdout.splitlines())
            self.assertEqual(got, sorted(self.fleet.ports[i] for i in want), pattern)
            self.assertEqual(self.changed(), sorted(want), pattern)

    def test_limit_over_an_ansible_inventory(self):
        _, inventory, web, db, solo = self.write_inventories()
        for args, want in ((["-i", inventory, "-l", "web:&eu"], [web[0]]),
                           (["--inventory", inventory, "--limit", "web*.example.org:db2"],
                            web + [db[1]]),
                           (["-i", inventory, "-l", "!prod"], [solo]),
                           (["-i", inventory], web + db + [solo])):
            self.fleet.reset()
            r = self.mpasswd(*args, "--stdin", "--json", "alice", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            got = sorted(json.loads(line)["port"] for line in r.stdout.splitlines())
            self.assertEqual(got, sorted(self.fleet.ports[i] for i in want), args)
            self.assertEqual(self.changed(), sorted(want), args)
        # The configuration's inventory key, never guessed from the file.
        self.fleet.reset()
        self.fleet.write_config("inventory = %s\n" % inventory)
        try:
            with open(self.fleet.config) as f:
                text = f.read()
            with open(self.fleet.config, "w") as f:
                f.write("".join(l for l in text.splitlines(True) if not l.startswith("hosts =")))
            r = self.mpasswd("-l", "db", "--stdin", "--json", "alice", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.changed(), sorted(db))
            r = self.mpasswd("--check-config")
            self.assertIn("\ninventory = %s\n" % inventory, r.stdout)
        finally:
            self.fleet.write_config()

    def test_limit_typos_exit_2_and_reach_no_responder(self):
        hosts, inventory, web, db, solo = self.write_inventories()
        bad = os.path.join(self.fleet.dir, "bad-inventory.ini")
        with open(bad, "w") as f:
            f.write("[web]\nweb[01:50.example.org\n")
        connections = sum(self.fleet.log_text(i).count("Connection from") for i in range(N))
        cases = [
            (["--hosts", hosts, "-l", "webz"], "--limit webz: 'webz' matches no group or host"),
            (["--hosts", hosts, "-l", "web:!dbz"], "'dbz' matches no group or host"),
            (["--hosts", hosts, "-l", "web:&db"], "--limit web:&db: selects no target"),
            (["-l", "nothing"], "'nothing' matches no group or host"),
            (["-i", inventory, "-l", "web1"], "'web1' matches no group or host"),
            (["-i", inventory, "-l", "~web"], "regular expressions (~) are not supported"),
            (["-i", inventory, "-l", "web[0]"], "subscripts (web[0]) are not supported"),
            (["-i", bad], bad + ":2: 'web[01:50.example.org': '[' without ']'"),
            (["-i", "/nonexistent.ini"], "/nonexistent.ini: cannot open"),
            (["-i", inventory, "--hosts", hosts], "one of -H, --hosts and --inventory"),
            (["-H", "127.0.0.1", "-l", "web"], "--limit selects from an inventory"),
            (["-i", inventory, "-l", ""], "--limit : no group or host named"),
        ]
        for args, message in cases:
            r = self.mpasswd(*args, "--stdin", "alice", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(message, r.stderr, args)
            self.assertEqual(r.stdout, "", args)
        self.assertEqual(self.changed(), [])
        after = sum(self.fleet.log_text(i).count("Connection from") for i in range(N))
        self.assertEqual(connections, after, "a selection error must not connect anywhere")
        # The count sees a session: one right selection, one connection more.
        r = self.mpasswd("--hosts", hosts, "-l", "ungrouped", "--verify", "alice")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sum(self.fleet.log_text(i).count("Connection from") for i in range(N)),
                         after + 1)

    def test_a_responders_controller_in_a_drop_in(self):
        # mpasswdd reads its configuration at every connection: the
        # controller section moved to mpasswdd.conf.d/ is still honoured,
        # and the same controller in both files refuses every session.
        i = self.normal[0]
        conf = os.path.join(self.fleet.dir, "t%d" % i, "mpasswdd.conf")
        with open(conf) as f:
            text = f.read()
        head, section = text.split("[controller ", 1)
        folder = conf + ".d"
        dropin = os.path.join(folder, "control-test.conf")
        os.mkdir(folder, 0o755)
        try:
            for path, body in ((conf, head), (dropin, "[controller " + section)):
                with open(path, "w") as f:
                    f.write(body)
                os.chmod(path, 0o600)
            target = self.fleet.targets([i])[0]
            r = self.mpasswd("-H", target, "--stdin", "--json", "alice", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(self.fleet.password_of(i, "alice"), NEW)
            with open(conf, "w") as f:
                f.write(text)
            r = self.mpasswd("-H", target, "--verify", "--json", "alice")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertEqual(json.loads(r.stdout)["code"], 421, r.stdout)
            line = text[:text.index("[controller ")].count("\n") + 1
            self.assertIn("%s:1: [controller %s is already defined in %s:%d" % (
                dropin, section.split("\n", 1)[0], conf, line), self.fleet.log_text(i))
        finally:
            with open(conf, "w") as f:
                f.write(text)
            shutil.rmtree(folder)

    def mpasswd_bytes(self, *args, stdin=b""):
        """mpasswd with bytes for arguments and output, no terminal."""
        r = subprocess.run([MPASSWD.encode(), b"-c", self.fleet.config.encode()] + list(args),
                           input=stdin, capture_output=True, timeout=60, start_new_session=True)
        for secret in (SECRET, NEW):
            self.assertNotIn(secret.encode(), r.stdout + r.stderr)
        return r

    def test_a_fake_target_gets_no_secret_no_reusable_proof_no_password(self):
        fake = FakeTarget()
        try:
            r = self.mpasswd("-H", fake.target(), "--best-effort", "--stdin", "--json", "alice",
                             stdin=NEW + "\n")
        finally:
            fake.stop()
        self.assertEqual(r.returncode, 3, r.stderr)
        [o] = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual((o["result"], o["step"], o["auth"]),
                         ("untrusted", "SCRAM proof", "SCRAM-SHA-256"), o)
        self.assertNotIn(SECRET.encode(), fake.received)
        self.assertNotIn(NEW.encode(), fake.received)
        self.assertEqual([line[:4] for line in fake.lines],
                         ["EHLO", "AUTH", fake.lines[2][:4], "QUIT"], fake.lines)
        # The proof it got is for its own nonce: a real target, which
        # picks another, refuses it.
        real = Client("127.0.0.1", self.fleet.ports[self.normal[0]])
        try:
            real.reply()
            real.ehlo("x")
            self.assertTrue(real.send(fake.lines[1]).startswith("334 "))
            self.assertEqual(real.send(fake.lines[2]), "530 authentication failed")
        finally:
            real.close()
        self.assertEqual(self.fleet.password_of(self.normal[0], "alice"), "Old-Passw0rd-1")

    def test_a_hostile_targets_text_reaches_the_terminal_escaped(self):
        target = ScriptedTarget(secret=SECRET)  # it holds our verifier: it gets to VRFY/CHPW
        try:
            args = [b"-H", target.target().encode()]
            for action in ([b"--stdin", b"--best-effort"], [b"--verify"]):
                r = self.mpasswd_bytes(*args, *action, b"alice", stdin=NEW.encode() + b"\n")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(control_octets(r.stdout), [], r.stdout)
                self.assertEqual(control_octets(r.stderr), [], r.stderr)
                # Header, the target's row and mpasswd's own summary: the
                # forged line stays inside the row.
                lines = r.stdout.split(b"\n")
                self.assertEqual(len(lines), 4, r.stdout)
                self.assertIn(b"554", lines[1])
                self.assertIn(b"pwned", lines[1])
                self.assertTrue(lines[2].startswith(b"alice: %s on 0 of 1 target" % (
                    b"password changed" if action[0] == b"--stdin" else b"verified")), lines)
                r = self.mpasswd_bytes(*args, *action, b"--json", b"alice",
                                       stdin=NEW.encode() + b"\n")
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(control_octets(r.stdout), [], r.stdout)
                self.assertEqual(r.stderr, b"")
                [o] = [json.loads(line) for line in r.stdout.decode("ascii").splitlines()]
                self.assertEqual((o["result"], o["code"]), ("refused", 554), o)
                self.assertIn("pwned", o["text"])
                self.assertEqual(control_octets(o["text"].encode("utf-8")), [], o)
        finally:
            target.stop()

    def test_arguments_and_file_lines_in_errors_are_escaped(self):
        hosts = os.path.join(self.fleet.dir, "hostile-hosts")
        with open(hosts, "wb") as f:
            f.write(b"127.0.0.1:%d \x1b[2J\x9b\n" % self.fleet.ports[0])
        config = os.path.join(self.fleet.dir, "hostile.conf")
        with open(config, "wb") as f:
            f.write(b"secret = s3cret\nna\x1b]0;pwned\x07me = x\n")
        os.chmod(config, 0o600)
        cases = [
            ([b"-H", b"h\x1b]0;pwned\x07\x1b[2J", b"alice"], b"-H h\\x1b]0;pwned\\x07\\x1b[2J: "),
            ([b"-H", b"h:\n9", b"alice"], b"'\\x0a9' is not a port"),
            ([b"--bo\x1b[2Jgus", b"alice"], b"unrecognized option '--bo\\x1b[2Jgus'"),
            ([b"-\x9b", b"alice"], b"invalid option -- '\\x9b'"),
            ([b"--hosts", hosts.encode(), b"--verify", b"alice"],
             b":1: unknown option '\\x1b[2J\\x9b'"),
            ([b"-c", config.encode(), b"--verify", b"alice"], b":2: na\\x1b]0;pwned\\x07me: unknown key"),
            ([b"--hosts", b"/nonexistent/\x1b[2J", b"--verify", b"alice"],
             b"/nonexistent/\\x1b[2J: cannot open"),
        ]
        for args, message in cases:
            r = self.mpasswd_bytes(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertEqual(control_octets(r.stderr), [], (args, r.stderr))
            self.assertIn(message, r.stderr, args)

    def test_fifo_device_folder_or_huge_file_is_refused_at_once(self):
        # Opening a FIFO for reading waits for a writer: mpasswd used to
        # hang there. Each run is bounded, so that fails instead of hanging.
        fifo = os.path.join(self.fleet.dir, "fifo")
        os.mkfifo(fifo, 0o600)
        folder = os.path.join(self.fleet.dir, "folder")
        os.mkdir(folder, 0o700)
        huge = os.path.join(self.fleet.dir, "huge-hosts")
        with open(huge, "w") as f:
            f.write("# padding\n" * (1 << 17))  # 1.25 MiB
        config = os.path.join(self.fleet.dir, "special.conf")
        try:
            cases = [
                (["--hosts", fifo], None, fifo + ": not a regular file (a FIFO)"),
                (["--hosts", "/dev/zero"], None,
                 "/dev/zero: not a regular file (a character device)"),
                (["--hosts", folder], None, folder + ": not a regular file (a directory)"),
                (["--hosts", huge], None, huge + ": larger than 1048576 octets"),
                ([], fifo, fifo + ": not a regular file (a FIFO)"),
                ([], "secret_file = %s\nhosts = %s\n" % (fifo, os.path.join(self.fleet.dir, "hosts")),
                 fifo + ": not a regular file (a FIFO)"),
                ([], "secret_file = /dev/zero\n",
                 "/dev/zero: not a regular file (a character device)"),
            ]
            for args, conf, message in cases:
                if conf is None:
                    conf = self.fleet.config
                elif conf != fifo:
                    with open(config, "w") as f:
                        f.write(conf)
                    os.chmod(config, 0o600)
                    conf = config
                r = subprocess.run([MPASSWD, "-c", conf] + args + ["--verify", "alice"],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, 2, (args, conf, r.stderr))
                self.assertIn(message, r.stderr, (args, conf))
                self.assertEqual(r.stdout, "")
        finally:
            for path in (fifo, huge, config):
                if os.path.exists(path):
                    os.unlink(path)
            os.rmdir(folder)

    def run_on_terminal(self, args, typed, env=None):
        """Runs mpasswd with a pseudo-terminal as its controlling terminal
        and stdin/stdout/stderr; answers each prompt with the next of typed."""
        master, slave = pty.openpty()

        def make_controlling():
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        proc = subprocess.Popen([MPASSWD, "-c", self.fleet.config] + args, stdin=slave,
                                stdout=slave, stderr=slave, preexec_fn=make_controlling,
                                close_fds=True, env=env)
        os.close(slave)
        out, timed_out = answer_prompts(
            master, typed, lambda o: o.endswith(b"password:") or o.endswith(b"password for alice:"),
            30, exited=lambda: proc.poll() is not None)
        if timed_out and proc.poll() is None:
            proc.kill()
            out += b"\n[killed: still running after 30 s]"
        proc.wait(timeout=30)
        os.close(master)
        return proc.returncode, out.decode("utf-8", "replace")

    def test_terminal_prompts_twice_without_echo_and_shows_progress(self):
        targets = sum([["-H", t] for t in self.fleet.targets(self.normal[:4])], [])
        rc, out = self.run_on_terminal(targets + ["alice"], ["Typed-Pw-77", "Typed-Pw-77"])
        self.assertEqual(rc, 0, out)
        self.assertIn("New password for alice:", out)
        self.assertIn("Retype new password:", out)
        self.assertNotIn("Typed-Pw-77", out, "the password was echoed")
        self.assertIn("4/4 done, 0 failed, 0 pending", out)
        self.assertIn("alice: password changed on 4 of 4 targets", out)
        for i in self.normal[:4]:
            self.assertEqual(self.fleet.password_of(i, "alice"), "Typed-Pw-77")

    def test_terminal_mismatch_changes_nothing(self):
        targets = sum([["-H", t] for t in self.fleet.targets(self.normal[:2])], [])
        rc, out = self.run_on_terminal(targets + ["alice"], ["Typed-Pw-77", "Typed-Pw-78"])
        self.assertEqual(rc, 2, out)
        self.assertIn("the passwords do not match; nothing was changed", out)
        for i in self.normal[:2]:
            self.assertEqual(self.fleet.password_of(i, "alice"), "Old-Passw0rd-1")

    # ---- The journal of runs: exit statuses 3 and 4, --runs, --resume.

    def journal_files(self):
        return sorted(os.listdir(self.fleet.journal))

    def auth_oks(self, indexes):
        return [self.fleet.log_text(i).count("AUTH ok") for i in indexes]

    def test_a_run_that_dies_halfway_is_recorded_and_only_its_rest_resumed(self):
        done = self.normal[:2]
        gone = StagedTarget(SECRET, "gone")        # dies between TEST and CHPW
        silent = StagedTarget(SECRET, "silent")    # takes the password, no reply
        lone = StagedTarget(SECRET, "gone")
        try:
            args = sum([["-H", t] for t in self.fleet.targets(done)], [])
            args += ["-H", gone.target(), "-H", silent.target()]
            r = self.mpasswd(*args, "--stdin", "--json", "--timeout", "1", "alice",
                             stdin=NEW + "\n")
            # The password went out to `silent` and no reply came: 4.
            self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
            by_target = {o["target"]: o for o in map(json.loads, r.stdout.splitlines())}
            run = by_target[gone.target()]["run"]
            self.assertRegex(run, "^" + RUN_ID + "$")
            self.assertIn("mpasswd --resume " + run, r.stderr)
            g, si = by_target[gone.target()], by_target[silent.target()]
            self.assertEqual((g["result"], g["phase"], g["maybe_applied"]),
                             ("protocol-error", "change", False), g)
            self.assertEqual((si["result"], si["step"], si["phase"], si["maybe_applied"]),
                             ("timeout", "end of data", "change", True), si)
            self.assertEqual((gone.tests, gone.changes, silent.tests, silent.changes),
                             (1, 0, 1, 1))
            for i in done:
                self.assertEqual(self.fleet.password_of(i, "alice"), NEW)
            # The record says which target may have it.
            r = self.mpasswd("--runs", run)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("state unfinished\n", r.stdout)
            self.assertIn("  %s: timeout, applied maybe, phase change" % silent.target(), r.stdout)
            self.assertIn("  %s: protocol-error, applied no, phase change" % gone.target(),
                          r.stdout)
            for t in self.fleet.targets(done):
                self.assertIn("  %s: ok, applied yes" % t, r.stdout)
            # One target that died between TEST and CHPW alone: 3.
            r = self.mpasswd("-H", self.fleet.targets([self.normal[2]])[0], "-H", lone.target(),
                             "--stdin", "--timeout", "1", "alice", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
            # A script's --stdin must name the run; bad ids are refused.
            r = self.mpasswd("--resume", "--stdin", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 2)
            self.assertIn("--resume --stdin needs the RUN", r.stderr)
            for bad in ("../../etc/shadow", "x", run + "/", run.upper()):
                for action in (["--runs", bad], ["--resume", bad, "--stdin"]):
                    r = self.mpasswd(*action, stdin=NEW + "\n")
                    self.assertEqual(r.returncode, 2, (action, r.stderr))
                    self.assertIn("is not a run id", r.stderr, action)
            # The hosts come back: --resume finishes only the two, TEST first.
            gone.mode = silent.mode = "ok"
            before = self.auth_oks(done)
            r = self.mpasswd("--resume", run, "--stdin", "--timeout", "2", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("resuming run %s: alice on 2 of 4 targets" % run, r.stderr)
            self.assertEqual(r.stdout, "alice: password changed on 2 of 2 targets\n")
            self.assertEqual((gone.tests, gone.changes, silent.tests, silent.changes),
                             (2, 1, 2, 2))
            self.assertEqual(self.auth_oks(done), before, "a done target got a new session")
            r = self.mpasswd("--runs")
            self.assertEqual(r.returncode, 0, r.stderr)
            rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
            self.assertRegex(rows[run], r"^%s +resumed +change +alice .* resumed by %s$"
                             % (run, RUN_ID))
            new = rows[run].split()[-1]
            self.assertRegex(rows[new], r"^%s +done +change +alice +root.* 2/2 .*resumes %s$"
                             % (new, run))
            # Nothing is resumed twice, and a done run has nothing to finish.
            r = self.mpasswd("--resume", run, "--stdin", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 2)
            self.assertIn("was resumed already by run " + new, r.stderr)
            r = self.mpasswd("--resume", new, "--stdin", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 2)
            self.assertIn("nothing to finish", r.stderr)
            self.assertEqual((gone.tests, silent.tests), (2, 2))
        finally:
            for t in (gone, silent, lone):
                t.stop()

    def test_resume_without_a_run_skips_one_superseded_by_a_later_change(self):
        target = StagedTarget(SECRET, "gone")
        try:
            # alice's run dies halfway; a later run sets her password anew.
            r = self.mpasswd("-H", self.fleet.targets([self.normal[0]])[0], "-H", target.target(),
                             "--stdin", "--timeout", "1", "alice", stdin=NEW + "\n")
            self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
            r = self.mpasswd("-H", self.fleet.targets([self.normal[0]])[0], "--stdin", "alice",
                             stdin="Later-Pw-0042\n")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # Without RUN the first one is passed over: nothing is left
            # (the terminal is not even asked for a password).
            p = subprocess.run([MPASSWD, "-c", self.fleet.config, "--resume"],
                               capture_output=True, text=True, timeout=30,
                               start_new_session=True)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("no unfinished or interrupted run to resume", p.stderr)
        finally:
            target.stop()
            # Leave no unfinished run of alice's for the other tests.
            for name in os.listdir(self.fleet.journal):
                if name.endswith(".run"):
                    os.unlink(os.path.join(self.fleet.journal, name))

    def test_four_concurrent_runs_for_the_same_user_lose_no_record(self):
        before = set(self.journal_files())
        args = sum([["-H", t] for t in self.fleet.targets(self.normal[3:6])], [])
        procs = [subprocess.Popen([MPASSWD, "-c", self.fleet.config] + args +
                                  ["--stdin", "--json", "bob"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        runs = set()
        for p in procs:
            out, err = p.communicate(NEW + "\n", timeout=60)
            self.assertEqual(p.returncode, 0, out + err)
            runs |= {json.loads(line)["run"] for line in out.splitlines()}
        self.assertEqual(len(runs), 4)
        self.assertEqual(set(self.journal_files()) - before, {run + ".run" for run in runs})
        for run in runs:
            r = self.mpasswd("--runs", run)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("state done\n", r.stdout)
            self.assertIn("targets 3 of 3 ok\n", r.stdout)

    def test_one_authpriv_line_per_run_without_a_secret(self):
        if os.geteuid() != 0:
            self.skipTest("a private /dev/log needs root (a mount namespace)")
        # In a private mount namespace: a tmpfs on /dev and our socket at
        # /dev/log, where syslog(3) sends.
        helper = (
            "import json, socket, subprocess, sys\n"
            "subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/dev'], check=True)\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "s.bind('/dev/log')\n"
            "r = subprocess.run(sys.argv[1:], input=sys.stdin.read(), capture_output=True, "
            "text=True)\n"
            "s.settimeout(0.5)\n"
            "lines = []\n"
            "try:\n"
            "    while True:\n"
            "        lines.append(s.recv(65536).decode('utf-8', 'replace'))\n"
            "except socket.timeout:\n"
            "    pass\n"
            "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr, "
            "'log': lines}))\n")
        targets = self.fleet.targets([self.normal[0], CLOSED])
        env = dict(os.environ, SUDO_USER="carol")
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                            sys.executable, "-c", helper, MPASSWD, "-c", self.fleet.config,
                            "-H", targets[0], "-H", targets[1], "--best-effort", "--stdin",
                            "alice"], input=NEW + "\n", capture_output=True, text=True,
                           timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout)
        self.assertEqual(got["rc"], 3, got)
        self.assertEqual(len(got["log"]), 1, got["log"])
        line = got["log"][0]
        # authpriv (10) * 8 + warning (4): a run with a failed target.
        self.assertTrue(line.startswith("<84>"), line)
        run = re.search("run (%s)" % RUN_ID, got["err"]).group(1)
        self.assertIn("mpasswd[", line)
        self.assertIn("run %s: uid 0 (root) SUDO_USER carol" % run, line)
        self.assertIn(": change of alice on 2 targets: 1 ok, 1 unreachable; failed: %s "
                      "unreachable" % targets[1], line)
        for secret in (SECRET, NEW):
            self.assertNotIn(secret, line)

    def test_result_cell_coloured_on_a_terminal_only(self):
        targets = sum([["-H", t] for t in self.fleet.targets([self.normal[0], CLOSED])], [])
        args = ["--verify"] + targets + ["alice"]
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        rc, out = self.run_on_terminal(args, [], env=dict(env, TERM="xterm"))
        self.assertEqual(rc, 3, out)  # unreachable: 3
        self.assertRegex(out, r"  \x1b\[31munreachable\x1b\[0m +-  +connect ")
        self.assertEqual(out.count("\x1b[31m"), 1, out)  # the RESULT cell alone
        for off in ({"NO_COLOR": "1", "TERM": "xterm"}, {"TERM": "dumb"}):
            rc, out = self.run_on_terminal(args, [], env=dict(env, **off))
            self.assertEqual(rc, 3, (off, out))
            self.assertRegex(out, r"  unreachable +-  +connect ", off)
            self.assertNotIn("\x1b[3", out, off)
        r = subprocess.run([MPASSWD, "-c", self.fleet.config] + args, capture_output=True,
                           text=True, timeout=60, env=dict(env, TERM="xterm"))
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertRegex(r.stdout, r"  unreachable +-  +connect ")
        self.assertNotIn("\x1b", r.stdout + r.stderr, "colour into a pipe")


if __name__ == "__main__":
    unittest.main(verbosity=2)
