#!/usr/bin/env python3
"""mpasswd's account operations (--lock, --unlock, --expire, --check,
--if-different, --batch) end to end against scripted targets on
127.0.0.1: each a thread that runs SCRAM with the controller's secret and
answers TEST, CHPW, EXPR, LOCK, UNLK and CHCK as protocol.md says,
keeping each user's password and account state, and counting sessions.
Then --batch (TEST and CHPW only) against real socket-activated
responders (pam_wrapper/pam_matrix), and the account verbs against a
responder that does not announce them. (EXPR, LOCK, UNLK and CHCK
against real responders, shadow and PAM come with the responder's
verbs.)"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from fleet import Fleet, fleet_env  # noqa: E402
from mctp_client import (LoopbackServer, b64, scram_server_final,  # noqa: E402
                         scram_server_first, unb64)

MPASSWD = os.environ["MPASSWD"]
SECRET = "Ops-Secret-0042"
OLD, NEW = "Old-Passw0rd-1", "N3w-Ops-Pw!"
VERBS = ("TEST", "EXPR", "LOCK", "UNLK", "CHCK")


class AccountTarget(LoopbackServer):
    """One scripted target. announced: the verbs EHLO lists; refuse_test:
    users whose TEST gets 554; refuse_expr: a reply line for EXPR."""

    def __init__(self, users=("alice", "bob", "carol"), announced=VERBS):
        super().__init__()
        self.announced = announced
        self.passwords = {u: OLD for u in users}
        self.expired, self.locked = set(), set()
        self.refuse_test, self.refuse_expr = set(), None
        self.sessions = 0
        self.lines = []  # every command; passwords as "(password)"
        self.start()

    def _connection(self, conn):
        with conn:
            conn.settimeout(10)
            self.sessions += 1
            try:
                self._session(conn.makefile("rb"), conn)
            except OSError:
                pass

    def _session(self, rfile, conn):
        def say(text):
            conn.sendall(text.encode() + b"\r\n")
        say("220 scripted ready")
        verb = user = None
        while True:
            raw = rfile.readline()
            if not raw:
                return
            line = raw.rstrip(b"\r\n").decode()
            cmd, _, arg = line.partition(" ")
            if cmd != "AUTH":
                self.lines.append(line)
            if cmd == "EHLO":
                say("\r\n".join(["250-scripted hello", "250-AUTH SCRAM-SHA-256"] +
                                ["250-" + v for v in self.announced] + ["250 LINEMAX 512"]))
            elif cmd == "AUTH":
                self.lines.append("AUTH")
                sf, state = scram_server_first(unb64(arg.split()[1]), SECRET)
                say("334 " + b64(sf))
                v = scram_server_final(unb64(rfile.readline().strip().decode()), state)
                if v is None:
                    say("530 authentication failed")
                    continue
                say("334 " + b64(v))
                rfile.readline()
                say("250 authenticated as ctl")
            elif cmd == "QUIT":
                say("221 bye")
                return
            elif cmd == "DATA":
                say("354 go on")
                pw = rfile.readline().rstrip(b"\r\n").decode()
                self.lines[-1:] = ["DATA", "(password)"]
                pw = pw[1:] if pw.startswith(".") else pw
                say("355 ok")
                rfile.readline()
                if verb == "TEST":
                    say("554 BAD PASSWORD: too simple" if user in self.refuse_test
                        else "250 acceptable")
                elif verb == "CHCK":
                    say("250 current" if self.passwords[user] == pw else "554 not current")
                else:
                    self.passwords[user] = pw
                    self.expired.discard(user)
                    say("250 password changed")
            elif arg not in self.passwords:
                say("551 no such user")
            else:
                verb, user = cmd, arg
                if cmd == "EXPR" and self.refuse_expr:
                    say(self.refuse_expr)
                    continue
                {"EXPR": self.expired.add, "LOCK": self.locked.add,
                 "UNLK": self.locked.discard}.get(cmd, lambda u: None)(arg)
                say("250 ok")

    def said(self):
        return "\n".join(self.lines)


class FleetOps(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpasswd-ops-")
        secret = os.path.join(self.dir, "secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        os.chmod(secret, 0o600)
        self.config = os.path.join(self.dir, "mpasswd.conf")
        with open(self.config, "w") as f:
            # The journal of runs in the test's folder, never this machine's.
            self.journal = os.path.join(self.dir, "journal")
            f.write("name = ctl\nsecret_file = %s\nreply_timeout = 5\njournal_directory = %s\n"
                    % (secret, self.journal))
        os.chmod(self.config, 0o600)
        self.targets = []

    def tearDown(self):
        for t in self.targets:
            t.stop()
        subprocess.run(["rm", "-rf", self.dir], check=True)

    def fleet(self, n, **kw):
        for t in self.targets:
            t.stop()
        self.targets = [AccountTarget(**kw) for _ in range(n)]
        return self.targets

    def mpasswd(self, *args, stdin=""):
        hosts = sum([["-H", t.target()] for t in self.targets], [])
        r = subprocess.run([MPASSWD, "-c", self.config] + hosts + list(args), input=stdin,
                           capture_output=True, text=True, timeout=60, start_new_session=True)
        for secret in (SECRET, NEW, OLD, "Pw-of-"):
            self.assertNotIn(secret, r.stdout + r.stderr + self.journal_text())
        return r

    def journal_text(self):
        if not os.path.isdir(self.journal):
            return ""
        text = ""
        for n in sorted(os.listdir(self.journal)):
            if n.endswith(".run"):
                with open(os.path.join(self.journal, n)) as f:
                    text += f.read()
        return text

    def records(self):
        """The journal's records, each as a dict of its header lines."""
        out = []
        for n in sorted(os.listdir(self.journal)):
            if n.endswith(".run"):
                fields = {}
                for line in open(os.path.join(self.journal, n)):
                    k, _, v = line.rstrip("\n").partition(" ")
                    fields.setdefault(k, v)
                out.append(fields)
        return out

    def json(self, r):
        return [json.loads(line) for line in r.stdout.splitlines()]

    def test_lock_and_unlock_every_target_no_password_sent(self):
        a, b = self.fleet(2)
        r = self.mpasswd("--lock", "--json", "alice")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for o in self.json(r):
            self.assertEqual((o["action"], o["result"], o["step"], o["phase"]),
                             ("lock", "ok", "LOCK", "change"), o)
        self.assertEqual((a.locked, b.locked), ({"alice"}, {"alice"}))
        r = self.mpasswd("--unlock", "alice")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "alice: unlocked on 2 of 2 targets\n")
        self.assertEqual((a.locked, b.locked), (set(), set()))
        self.assertNotIn("(password)", a.said())

    def test_a_target_without_the_verb_is_unsupported_and_gets_nothing(self):
        a, b = self.fleet(2)
        b.announced = ("TEST",)
        r = self.mpasswd("--lock", "--json", "alice")
        # unsupported is exit 3 (mpasswd(1)): that target is not locked;
        # --resume finishes it once it offers LOCK.
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("mpasswd --resume", r.stderr)
        by_port = {o["port"]: o for o in self.json(r)}
        self.assertEqual(by_port[b.port]["result"], "unsupported")
        self.assertIn("does not announce LOCK", by_port[b.port]["text"])
        self.assertEqual(b.lines, ["EHLO ctl", "QUIT"])
        self.assertEqual(b.locked, set())
        self.assertEqual(a.locked, {"alice"})  # one step: the others are done

    def test_expire_tests_everywhere_then_changes_and_expires(self):
        a, b = self.fleet(2)
        r = self.mpasswd("--expire", "--stdin", "--json", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for o in self.json(r):
            self.assertEqual((o["action"], o["result"], o["step"]), ("expire", "ok", "EXPR"), o)
        for t in (a, b):
            self.assertEqual((t.passwords["alice"], t.expired), (NEW, {"alice"}))
            self.assertEqual(t.sessions, 2)  # TEST; CHPW and EXPR
            said = t.said()
            self.assertLess(said.index("TEST alice"), said.index("CHPW alice"))
            self.assertLess(said.index("CHPW alice"), said.index("EXPR alice"))
        # An EXPR refused after the change: said so, exit 1.
        a, b = self.fleet(2)
        b.refuse_expr = "530 EXPR is not allowed for ctl"
        r = self.mpasswd("--expire", "--stdin", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("password changed, but not made one-time: EXPR is not allowed", r.stdout)
        self.assertEqual(b.passwords["alice"], NEW)

    def test_check_reports_drift_and_changes_nothing(self):
        a, b, c = self.fleet(3)
        a.passwords["alice"] = c.passwords["alice"] = NEW
        r = self.mpasswd("--check", "--stdin", "--json", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        by_port = {o["port"]: o for o in self.json(r)}
        self.assertEqual([by_port[t.port]["result"] for t in (a, b, c)],
                         ["ok", "different", "ok"])
        self.assertEqual(by_port[b.port]["step"], "CHCK")
        self.assertEqual(b.passwords["alice"], OLD)
        for t in (a, b, c):
            self.assertNotIn("CHPW", t.said())
        b.passwords["alice"] = NEW
        r = self.mpasswd("--check", "--stdin", "alice", stdin=NEW + "\n")
        self.assertEqual((r.returncode, r.stdout),
                         (0, "alice: password is the current one on 3 of 3 targets\n"))

    def test_if_different_changes_only_where_it_differs(self):
        a, b = self.fleet(2)
        a.passwords["alice"] = NEW
        r = self.mpasswd("--if-different", "--stdin", "--json", "alice", stdin=NEW + "\n")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        by_port = {o["port"]: o for o in self.json(r)}
        self.assertEqual(by_port[a.port]["result"], "unchanged")
        self.assertEqual(by_port[b.port]["result"], "ok")
        self.assertEqual(b.passwords["alice"], NEW)
        self.assertEqual(a.sessions, 1)  # its CHCK only
        self.assertNotIn("CHPW", a.said())

    def test_batch_one_session_per_target_per_phase(self):
        a, b = self.fleet(2)
        lines = "".join("%s:Pw-of-%s\n" % (u, u) for u in ("alice", "bob", "carol"))
        r = self.mpasswd("--batch", "--json", stdin=lines)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        results = self.json(r)
        self.assertEqual(len(results), 6)
        self.assertEqual(sorted((o["user"], o["port"]) for o in results),
                         sorted((u, t.port) for u in ("alice", "bob", "carol") for t in (a, b)))
        for t in (a, b):
            self.assertEqual(t.sessions, 2)
            for u in ("alice", "bob", "carol"):
                self.assertEqual(t.passwords[u], "Pw-of-" + u)
        r = self.mpasswd("--batch", stdin=lines)
        self.assertEqual(r.stdout, "batch of 3 users on 2 targets: 6 of 6 changed\n")

    def test_batch_one_refusal_in_test_changes_no_one(self):
        a, b = self.fleet(2)
        b.refuse_test = {"bob"}
        lines = "".join("%s:Pw-of-%s\n" % (u, u) for u in ("alice", "bob", "carol"))
        r = self.mpasswd("--batch", stdin=lines)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"bob +127\.0\.0\.1:%d +refused +554 +TEST" % b.port)
        self.assertIn("no one was changed", r.stdout)
        for t in (a, b):
            self.assertEqual(t.sessions, 1)
            self.assertNotIn("CHPW", t.said())
            self.assertEqual(set(t.passwords.values()), {OLD})

    def test_bad_batch_input_exits_2_and_connects_nowhere(self):
        self.fleet(1)
        cases = [("alice:x1\nPw-of-Swapped!:bob\n", "batch line 2: not a valid user name"),
                 ("alice:x1\nalice:x2\n", "batch line 2: the same user as line 1"),
                 ("alice:\n", "batch line 1: empty password"),
                 ("", "no user:password lines")]
        for stdin, message in cases:
            r = self.mpasswd("--batch", stdin=stdin)
            self.assertEqual(r.returncode, 2, (stdin, r.stderr))
            self.assertIn(message, r.stderr)
        self.assertEqual(self.targets[0].sessions, 0)


class RealResponders(unittest.TestCase):
    """Three socket-activated responders; the third's check service (TEST)
    refuses every password."""

    @classmethod
    def setUpClass(cls):
        cls.fleet = Fleet(fleet_env(), 3, SECRET, {2: "strict"})

    @classmethod
    def tearDownClass(cls):
        cls.fleet.stop()
        logs = "".join(cls.fleet.log_text(i) for i in range(3))
        cls.fleet.remove()
        assert "Pw-of-" not in logs and SECRET not in logs, "a secret in a responder's log"

    def setUp(self):
        self.fleet.reset()

    def mpasswd(self, indexes, *args, stdin=""):
        hosts = sum([["-H", t] for t in self.fleet.targets(indexes)], [])
        r = subprocess.run([MPASSWD, "-c", self.fleet.config] + hosts + list(args), input=stdin,
                           capture_output=True, text=True, timeout=60, start_new_session=True)
        for secret in (SECRET, "Pw-of-"):
            self.assertNotIn(secret, r.stdout + r.stderr)
        return r

    def sessions(self, i):
        return self.fleet.log_text(i).count("connect from")

    def test_batch_changes_every_user_in_one_session_per_target_per_phase(self):
        before = [self.sessions(i) for i in (0, 1)]
        lines = "".join("%s:Pw-of-%s-9x!\n" % (u, u) for u in ("alice", "bob", "carol"))
        r = self.mpasswd([0, 1], "--batch", "--json", stdin=lines)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        results = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(results), 6)
        for o in results:
            self.assertEqual((o["action"], o["result"], o["phase"]), ("change", "ok", "change"), o)
        for i in (0, 1):
            self.assertEqual(self.sessions(i) - before[i], 2, self.fleet.log_text(i))
            for u in ("alice", "bob", "carol"):
                self.assertEqual(self.fleet.password_of(i, u), "Pw-of-%s-9x!" % u)

    def test_batch_refused_by_one_responders_policy_changes_no_one(self):
        lines = "".join("%s:Pw-of-%s-9x!\n" % (u, u) for u in ("alice", "bob"))
        before = [len(self.fleet.log_text(i)) for i in range(3)]
        r = self.mpasswd([0, 2], "--batch", "--json", stdin=lines)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        strict = self.fleet.ports[2]
        for o in map(json.loads, r.stdout.splitlines()):
            want = ("refused", "TEST") if o["port"] == strict else ("skipped", "TEST")
            self.assertEqual((o["result"], o["step"]), want, o)
        for i in (0, 2):
            log = self.fleet.log_text(i)[before[i]:]
            self.assertIn("TEST bob", log)
            self.assertNotIn("CHPW", log)
            for u in ("alice", "bob"):
                self.assertEqual(self.fleet.password_of(i, u), "Old-Passw0rd-1")

    def test_account_verbs_are_refused_530_under_the_default_operations(self):
        """mpasswdd announces EXPR LOCK UNLK CHCK, but a controller entry
        without `operations` may use only VRFY TEST CHPW: each verb gets 530
        from the real responder, is logged, and changes nothing. (The
        verbs' effects on a real shadow database: the account-ops suite,
        in a namespace, never this machine's /etc/shadow.)"""
        for args, verb in ((["--lock"], "LOCK"), (["--unlock"], "UNLK"),
                           (["--check", "--stdin"], "CHCK"),
                           (["--if-different", "--stdin"], "CHCK")):
            before = len(self.fleet.log_text(0))
            r = self.mpasswd([0], *args, "--json", "alice", stdin="Pw-of-alice-9x!\n")
            self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
            [o] = [json.loads(line) for line in r.stdout.splitlines()]
            self.assertEqual((o["result"], o["code"], o["step"], o["maybe_applied"]),
                             ("refused", 530, verb, False), (args, o))
            log = self.fleet.log_text(0)[before:]
            self.assertIn(verb + " refused: controller control-test may not use it", log,
                          (args, log))
            # No other verb reached it (the refusal's line names the allowed ones).
            rest = "".join(l for l in log.splitlines(True) if " refused: " not in l)
            for other in ("TEST", "CHPW", "EXPR", "LOCK", "UNLK", "CHCK"):
                self.assertNotIn(other, rest, (args, log))
            self.assertEqual(self.fleet.password_of(0, "alice"), "Old-Passw0rd-1")
        # --expire: TEST passes, CHPW is allowed and done, EXPR is refused:
        # the password changed but is not one-time, and the journal says
        # applied yes (the run is not done).
        before = len(self.fleet.log_text(0))
        r = self.mpasswd([0], "--expire", "--stdin", "--json", "alice",
                         stdin="Pw-of-alice-9x!\n")
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        [o] = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual((o["result"], o["code"], o["step"]), ("refused", 530, "EXPR"), o)
        self.assertIn("password changed, but not made one-time", o["text"])
        self.assertIn("EXPR refused: controller control-test may not use it",
                      self.fleet.log_text(0)[before:])
        self.assertEqual(self.fleet.password_of(0, "alice"), "Pw-of-alice-9x!")
        record = subprocess.run([MPASSWD, "-c", self.fleet.config, "--runs", o["run"]],
                                capture_output=True, text=True, timeout=30)
        self.assertIn("action expire", record.stdout)
        self.assertIn("refused, applied yes", record.stdout)
        self.assertNotIn("Pw-of-", record.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
