#!/usr/bin/env python3
"""pam_mctp.so loaded by real libpam (under pam_wrapper) in a passwd-like
stack laid out as pam-auth-update writes common-password, with pam_matrix
as the local password store, against socket-activated responders."""
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from fleet import Fleet, fleet_env  # noqa: E402
from mctp_client import ScriptedTarget, control_octets  # noqa: E402

MODULE = os.environ["PAM_MCTP_MODULE"]
DRIVER = os.environ["PAM_CHAUTHTOK"]
SECRET = "Pam-Mctp-Secret-9"
LOCAL_OLD = "Local-Old-Pw-1"
NEW = "Pushed-N3w-Pw!"
SERVICE = "passwd-mctp"



class PamMctp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Three good targets and one closed port; a fifth whose check
        # service (TEST) refuses every password.
        cls.fleet = Fleet(fleet_env(), 5, SECRET, {3: "closed", 4: "strict"})
        cls.dir = tempfile.mkdtemp(prefix="pam-mctp-", dir="/var/tmp")
        cls.services = os.path.join(cls.dir, "services")
        os.mkdir(cls.services)
        cls.local = os.path.join(cls.dir, "local-passdb")
        cls.up = os.path.join(cls.dir, "hosts-up")
        cls.all = os.path.join(cls.dir, "hosts-all")
        cls.strict = os.path.join(cls.dir, "hosts-strict")
        with open(cls.up, "w") as f:
            f.write("".join(t + "\n" for t in cls.fleet.targets([0, 1, 2])))
        with open(cls.all, "w") as f:
            f.write("".join(t + "\n" for t in cls.fleet.targets([0, 1, 2, 3])))
        with open(cls.strict, "w") as f:
            f.write("".join(t + "\n" for t in cls.fleet.targets([0, 1, 2, 4])))
        with open(os.path.join(cls.services, "other"), "w") as f:
            f.write("password required pam_deny.so\n")

    @classmethod
    def tearDownClass(cls):
        cls.fleet.stop()
        cls.fleet.remove()
        shutil.rmtree(cls.dir)

    def setUp(self):
        self.fleet.reset()
        with open(self.local, "w") as f:
            f.write("alice:%s:%s\n" % (LOCAL_OLD, SERVICE))

    def stack(self, args):
        # As pam-auth-update lays out common-password: the primary block,
        # pam_deny/pam_permit, then the additional block with pam_mctp.
        with open(os.path.join(self.services, SERVICE), "w") as f:
            f.write("password [success=1 default=ignore] %s passdb=%s\n"
                    "password requisite pam_deny.so\n"
                    "password required pam_permit.so\n"
                    "password required %s config=%s use_authtok %s\n"
                    % (os.environ["PAM_MATRIX_MODULE"], self.local, MODULE, self.fleet.config,
                       args))

    def stack_before_the_store(self, args):
        # Where pam_mctp(8) says it must stand for a TEST refusal to stop
        # the local change: after the quality check that asks for the new
        # password, before the store, use_authtok.
        with open(os.path.join(self.services, SERVICE), "w") as f:
            f.write("password requisite %s retry=1\n"
                    "password requisite %s config=%s use_authtok %s\n"
                    "password required %s passdb=%s\n"
                    % (os.environ["PWQUALITY_MODULE"], MODULE, self.fleet.config, args,
                       os.environ["PAM_MATRIX_MODULE"], self.local))

    def chauthtok(self, answers, silent=False, debuglevel="0", text=True, timeout=60,
                  user="alice"):
        # PAM_WRAPPER_USE_SYSLOG=0: pam_wrapper prints what modules give
        # pam_syslog on stderr (at debug level 2 for LOG_INFO and LOG_NOTICE,
        # 1 for LOG_WARNING) instead of sending it to syslog.
        e = dict(os.environ, LD_PRELOAD=os.environ["PAM_WRAPPER_LIB"], PAM_WRAPPER="1",
                 PAM_WRAPPER_SERVICE_DIR=self.services, PAM_WRAPPER_USE_SYSLOG="0",
                 PAM_WRAPPER_DEBUGLEVEL=debuglevel)
        stdin = "".join(a + "\n" for a in answers)
        r = subprocess.run([DRIVER, SERVICE, user] + (["silent"] if silent else []),
                           input=stdin if text else stdin.encode(), capture_output=True,
                           text=text, env=e, timeout=timeout)
        for secret in (SECRET, NEW):
            self.assertNotIn(secret if text else secret.encode(), r.stdout + r.stderr)
        return r

    def local_password(self):
        with open(self.local) as f:
            return f.read().split(":")[1]

    def remote_passwords(self, indexes=(0, 1, 2)):
        return [self.fleet.password_of(i, "alice") for i in indexes]

    def test_changes_locally_and_on_every_target(self):
        self.stack("hosts=" + self.up)
        r = self.chauthtok([LOCAL_OLD, NEW, NEW])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("result: 0 Success", r.stdout)
        self.assertIn("info: Password changed on 3 other hosts.", r.stdout)
        self.assertEqual(self.local_password(), NEW)
        self.assertEqual(self.remote_passwords(), [NEW] * 3)

    def test_require_all_with_a_dead_target_changes_nothing_anywhere(self):
        self.stack("hosts=" + self.all + " require_all")
        before = len(self.fleet.log_text(0))
        r = self.chauthtok([LOCAL_OLD, NEW, NEW])
        self.assertEqual(r.returncode, 1)
        self.assertIn("result: 24 ", r.stdout)  # PAM_TRY_AGAIN: failed preliminary check
        dead = self.fleet.targets([3])[0]
        self.assertIn("error: %s: unreachable: Connection refused" % dead, r.stdout)
        self.assertIn("error: Password not changed: 1 of 4 hosts cannot take it.", r.stdout)
        self.assertEqual(r.stdout.count("prompt: "), 1, "no new password was even asked for")
        self.assertEqual(self.local_password(), LOCAL_OLD)
        self.assertEqual(self.remote_passwords(), ["Old-Passw0rd-1"] * 3)
        # The live targets were only checked (VRFY), never sent a CHPW.
        log = self.fleet.log_text(0)[before:]
        self.assertIn("VRFY alice", log)
        self.assertNotIn("CHPW alice", log)

    def test_a_refusal_in_test_stops_every_change_local_and_remote(self):
        self.stack_before_the_store("hosts=" + self.strict)
        logs = [len(self.fleet.log_text(i)) for i in (0, 4)]
        # pam_matrix, the store here, would ask for the new password again.
        r = self.chauthtok([LOCAL_OLD, NEW, NEW, NEW])
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("result: 20 ", r.stdout)  # PAM_AUTHTOK_ERR
        self.assertNotIn("New Password :", r.stdout, "the store was never reached")
        strict = self.fleet.targets([4])[0]
        self.assertRegex(r.stdout, r"error: %s: refused in TEST: 554 BAD PASSWORD: .*shorter than"
                         % strict.replace(".", r"\."))
        self.assertIn("error: Password not changed: not every host accepts it (TEST).", r.stdout)
        self.assertEqual(self.local_password(), LOCAL_OLD)
        self.assertEqual(self.remote_passwords((0, 1, 2, 4)), ["Old-Passw0rd-1"] * 4)
        for n, i in enumerate((0, 4)):
            log = self.fleet.log_text(i)[logs[n]:]
            self.assertIn("TEST alice", log)
            self.assertNotIn("CHPW", log)

    def test_every_host_accepting_in_test_changes_everywhere(self):
        self.stack_before_the_store("hosts=" + self.up)
        r = self.chauthtok([LOCAL_OLD, NEW, NEW, NEW, NEW])  # pam_matrix asks twice more
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("info: Password changed on 3 other hosts.", r.stdout)
        self.assertEqual(self.local_password(), NEW)
        self.assertEqual(self.remote_passwords(), [NEW] * 3)

    def test_best_effort_skips_test_and_changes_wherever_it_is_taken(self):
        self.stack_before_the_store("hosts=" + self.strict + " best_effort")
        r = self.chauthtok([LOCAL_OLD, NEW, NEW, NEW, NEW])  # pam_matrix asks twice more
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.local_password(), NEW)
        self.assertEqual(self.remote_passwords((0, 1, 2, 4)), [NEW] * 4)

    def test_best_effort_changes_the_reachable_and_says_which_failed(self):
        self.stack("hosts=" + self.all + " best_effort")
        r = self.chauthtok([LOCAL_OLD, NEW, NEW])
        self.assertEqual(r.returncode, 0, r.stdout)
        dead = self.fleet.targets([3])[0]
        self.assertIn("info: 1 of 4 hosts cannot take the new password; the others will get it.",
                      r.stdout)
        self.assertIn("error: %s: unreachable: Connection refused" % dead, r.stdout)
        self.assertIn("error: Password not changed on 1 of 4 other hosts.", r.stdout)
        self.assertEqual(self.local_password(), NEW)
        self.assertEqual(self.remote_passwords(), [NEW] * 3)

    def test_one_syslog_line_per_target_and_no_password(self):
        self.stack("hosts=" + self.all + " best_effort")
        r = self.chauthtok([LOCAL_OLD, NEW, NEW], debuglevel="2")
        self.assertEqual(r.returncode, 0, r.stdout)
        lines = [l for l in r.stderr.splitlines() if "change of alice on " in l]
        for i, target in enumerate(self.fleet.targets([0, 1, 2, 3])):
            mine = [l for l in lines if "on %s:" % target in l]
            self.assertEqual(len(mine), 1, (target, lines))
            # LOG_WARNING (4) for a failed target, LOG_INFO (6) for a changed one.
            self.assertIn("SYSLOG(4): change of alice on %s: unreachable" % target if i == 3
                          else "SYSLOG(6): change of alice on %s: ok (250 password changed "
                               "for alice)" % target, mine[0])
        # The failed preliminary check of the dead one is logged too; the
        # good checks only with debug.
        checks = [l for l in r.stderr.splitlines() if "check of alice on " in l]
        self.assertEqual(len(checks), 1, checks)
        self.assertIn(self.fleet.targets([3])[0], checks[0])
        # chauthtok() itself asserts the secret and the password are absent.

    def test_a_change_is_a_run_in_the_journal_and_the_messages_name_it(self):
        self.stack("hosts=" + self.all + " best_effort")
        before = set(os.listdir(self.fleet.journal)) if os.path.isdir(self.fleet.journal) \
            else set()
        r = self.chauthtok([LOCAL_OLD, NEW, NEW], debuglevel="2")
        self.assertEqual(r.returncode, 0, r.stdout)
        [name] = set(os.listdir(self.fleet.journal)) - before - {".lock"}
        run = name[:-len(".run")]
        self.assertRegex(run, r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{8}$")
        dead = self.fleet.targets([3])[0]
        # The user is told the run and how to finish it.
        self.assertIn("error: Run %s is unfinished; an administrator can finish it with "
                      "mpasswd --resume %s." % (run, run), r.stdout)
        # One line for the run (LOG_WARNING: a target failed), naming who.
        lines = [l for l in r.stderr.splitlines() if "run " + run in l]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("SYSLOG(4): run %s: uid %d" % (run, os.getuid()), lines[0])
        self.assertIn(": change of alice on 4 targets: 3 ok, 1 unreachable; failed: %s "
                      "unreachable" % dead, lines[0])
        with open(os.path.join(self.fleet.journal, name)) as f:
            record = f.read()
        self.assertIn("\nprogram pam_mctp\n", record)
        self.assertIn("\nuser alice\n", record)
        self.assertNotIn("\nended 0\n", record)
        self.assertEqual(record.count(" ok 250 change end%20of%20data yes "), 3, record)
        self.assertIn(" unreachable 0 ", record)
        for secret in (SECRET, NEW, LOCAL_OLD):
            self.assertNotIn(secret, record)
        # All well: no run is named to the user, the line is LOG_NOTICE.
        self.assertEqual(self.local_password(), NEW)
        self.stack("hosts=" + self.up)
        r = self.chauthtok([NEW, "Third-N3w-Pw!", "Third-N3w-Pw!"], debuglevel="2")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertNotIn("Run ", r.stdout)
        self.assertRegex(r.stderr, r"SYSLOG\(5\): run \S+: uid \d+.*: change of alice on 3 "
                                   r"targets: 3 ok\n")

    def test_hostile_texts_reach_the_user_and_syslog_escaped(self):
        # A target whose refusal carries terminal escapes and a forged
        # line, in the messages passwd shows and in the syslog lines
        # (pam_wrapper prints those on stderr).
        target = ScriptedTarget()
        hostile_hosts = os.path.join(self.dir, "hosts-hostile")
        try:
            with open(hostile_hosts, "w") as f:
                # auth=plain: an explicit old-AUTH target (its AUTH line is
                # not recorded).
                f.write(target.target() + " auth=plain\n" + self.fleet.targets([0])[0] + "\n")
            self.stack("hosts=" + hostile_hosts + " best_effort")
            r = self.chauthtok([LOCAL_OLD, NEW, NEW], debuglevel="2", text=False)
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertEqual(control_octets(r.stdout), [], r.stdout)
            self.assertEqual(control_octets(r.stderr), [], r.stderr)
            errors = [l for l in r.stdout.splitlines() if l.startswith(b"error: " +
                                                                   target.target().encode())]
            self.assertEqual(len(errors), 2, r.stdout)  # the check and the change
            self.assertIn(b"refused: 554 no ]0;pwned [2J alice: password changed", errors[0])
            logged = [l for l in r.stderr.splitlines() if b"of alice on " + target.target().encode()
                      in l]
            self.assertEqual(len(logged), 2, r.stderr)
            self.assertEqual(self.fleet.password_of(0, "alice"), NEW)
        finally:
            target.stop()
        # A hosts file line with escapes: the error quotes it escaped, to
        # the user and to syslog.
        with open(hostile_hosts, "wb") as f:
            f.write(b"web1 \x1b]0;pwned\x07\x1b[2J\xc2\x9b\n")
        self.stack("hosts=" + hostile_hosts + " require_all")
        self.setUp()  # the local password is the old one again
        r = self.chauthtok([LOCAL_OLD, NEW, NEW], debuglevel="2", text=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(control_octets(r.stdout), [], r.stdout)
        self.assertEqual(control_octets(r.stderr), [], r.stderr)
        shown = b":1: unknown option '\\x1b]0;pwned\\x07\\x1b[2J\\xc2\\x9b'"
        self.assertIn(shown, r.stdout)
        self.assertIn(shown, r.stderr)

    def test_silent_tells_nothing(self):
        self.stack("hosts=" + self.all + " best_effort")
        r = self.chauthtok([LOCAL_OLD, NEW, NEW], silent=True)
        self.assertEqual(r.returncode, 0)
        self.assertNotIn("error: ", r.stdout)
        self.assertNotIn("info: ", r.stdout)

    def test_use_authtok_without_a_new_password_from_above_fails(self):
        # pam_mctp alone with use_authtok: nothing sets PAM_AUTHTOK.
        with open(os.path.join(self.services, SERVICE), "w") as f:
            f.write("password required %s config=%s hosts=%s use_authtok\n"
                    % (MODULE, self.fleet.config, self.up))
        r = self.chauthtok([NEW, NEW])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.remote_passwords(), ["Old-Passw0rd-1"] * 3)

    def test_without_use_authtok_it_asks_itself(self):
        with open(os.path.join(self.services, SERVICE), "w") as f:
            f.write("password required %s config=%s hosts=%s bogus_option\n"
                    % (MODULE, self.fleet.config, self.up))
        r = self.chauthtok([NEW, NEW])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count("prompt: "), 2)  # new and retype
        self.assertEqual(self.remote_passwords(), [NEW] * 3)

    def test_conversation_again_is_incomplete(self):
        # An event-driven application's conversation answers PAM_CONV_AGAIN
        # when asked for the user name: the module says PAM_INCOMPLETE (31),
        # as pam_faillock and pam_pwhistory do, so the application calls
        # again; nothing is changed meanwhile. (This libpam's
        # pam_get_authtok turns it into PAM_AUTHTOK_ERR itself.)
        with open(os.path.join(self.services, SERVICE), "w") as f:
            f.write("password required %s config=%s hosts=%s\n"
                    % (MODULE, self.fleet.config, self.up))
        r = self.chauthtok(["@conv-again"], user="-")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout.count("prompt: "), 1, r.stdout)
        self.assertIn("result: 31 ", r.stdout)
        self.assertEqual(self.remote_passwords(), ["Old-Passw0rd-1"] * 3)

    def connections(self):
        return sum(self.fleet.log_text(i).count("Connection from") for i in range(5))

    def test_limit_selects_groups_and_a_typo_sends_nothing(self):
        grouped = os.path.join(self.dir, "hosts-grouped")
        t = self.fleet.targets([0, 1, 2, 3])
        with open(grouped, "w") as f:
            f.write("[web]\n%s\n%s\n[db]\n%s\n[down]\n%s\n[prod:children]\nweb\ndb\n"
                    % tuple(t))
        # The dead target is in no selected group: require_all succeeds.
        self.stack("hosts=%s limit=prod:!db require_all" % grouped)
        r = self.chauthtok([LOCAL_OLD, NEW, NEW])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("info: Password changed on 2 other hosts.", r.stdout)
        self.assertEqual(self.remote_passwords(), [NEW, NEW, "Old-Passw0rd-1"])
        # A term that matches nothing: the change fails and no target is
        # reached; best_effort changes the local password only.
        before = self.connections()
        for option, rc in (("require_all", 1), ("best_effort", 0)):
            self.fleet.reset()
            self.setUp()
            self.stack("hosts=%s limit=prod:!dbz %s" % (grouped, option))
            r = self.chauthtok([LOCAL_OLD, NEW, NEW])
            self.assertEqual(r.returncode, rc, (option, r.stdout, r.stderr))
            self.assertIn("limit=prod:!dbz: 'dbz' matches no group or host", r.stdout)
            self.assertEqual(self.remote_passwords(), ["Old-Passw0rd-1"] * 3)
            self.assertEqual(self.local_password(), LOCAL_OLD if rc else NEW)
        # An empty limit= is an error, never "every target".
        self.setUp()
        self.stack("hosts=%s limit= require_all" % grouped)
        r = self.chauthtok([LOCAL_OLD, NEW, NEW])
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("limit=: no group or host named", r.stdout)
        self.assertEqual(self.connections(), before, "a selection error reached a responder")

    def test_bad_config_fails_require_all_and_is_ignored_by_best_effort(self):
        self.stack("hosts=/nonexistent/hosts require_all")
        r = self.chauthtok([LOCAL_OLD, NEW, NEW])
        self.assertEqual(r.returncode, 1)
        self.assertIn("error: Cannot reach the other hosts (/nonexistent/hosts: cannot open",
                      r.stdout)
        self.assertEqual(self.local_password(), LOCAL_OLD)
        self.stack("hosts=/nonexistent/hosts best_effort")
        r = self.chauthtok([LOCAL_OLD, NEW, NEW])
        self.assertEqual(r.returncode, 0)
        self.assertIn("error: The other hosts will not get this password", r.stdout)
        self.assertEqual(self.local_password(), NEW)

    def test_fifo_as_hosts_or_config_fails_at_once_and_is_logged(self):
        # Opening a FIFO for reading waits for a writer: pam_mctp used to
        # hang there, and passwd with it. Each run is bounded, so that
        # fails instead.
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo, 0o600)
        why = fifo + ": not a regular file (a FIFO)"
        try:
            for args in ("hosts=%s require_all" % fifo, "config=%s require_all" % fifo):
                # The later config= wins over the one stack() writes.
                self.stack(args)
                r = self.chauthtok([LOCAL_OLD, NEW, NEW], debuglevel="1", timeout=10)
                self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
                self.assertIn("error: Cannot reach the other hosts (%s)" % why, r.stdout)
                self.assertIn("SYSLOG(3)", "".join(l for l in r.stderr.splitlines()
                                                   if why in l), r.stderr)
                self.assertEqual(self.local_password(), LOCAL_OLD)
        finally:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # nobody waits on it (the old code did)
            os.unlink(fifo)


        lib = ctypes.CDLL(MODULE, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        self.assertTrue(hasattr(lib, "pam_sm_chauthtok"))
        for absent in ("pam_sm_authenticate", "pam_sm_open_session", "parse_options"):
            self.assertFalse(hasattr(lib, absent), absent)
        nm = subprocess.run(["nm", "-D", "--defined-only", MODULE], capture_output=True,
                            text=True, check=True)
        exported = [line.split()[-1] for line in nm.stdout.splitlines()
                    if line.split()[1] in "TtDdBbRrVvWwiu" and line.split()[1].isupper()]
        self.assertEqual(exported, ["pam_sm_chauthtok"], nm.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
