#!/usr/bin/env python3
"""Unauthenticated peers against a socket-activated mpasswdd on 127.0.0.1
(systemd-socket-activate --inetd, one process per connection): the login
grace time (NOOPs do not extend it, the TLS handshake counts) and the count
of failed AUTHs per source across parallel connections, kept in the tally
file under state_directory. AUTH needs no PAM: no wrapper is preloaded."""
import os
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from mctp_client import Responder, hash_secret, privsep_directory, verifier  # noqa: E402
from pki import Pki  # noqa: E402

MPASSWDD = os.environ["MPASSWDD"]
SECRET = "limits-Secret-0123"
WRONG = "wrong-Secret-0000"
LOCKED = "421 t1 too many authentication failures from your address; try later"
GRACE_OVER = "421 t1 login grace time over; authenticate sooner"


class AuthLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mpasswdd-limits-")
        cls.hash = hash_secret(MPASSWDD, SECRET)
        cls.verifier = verifier(MPASSWDD, SECRET)
        cls.responders = []

    @classmethod
    def tearDownClass(cls):
        for r in cls.responders:
            r.stop()
            log = r.log_text()
            assert SECRET not in log and WRONG not in log, "a secret in the log"
        shutil.rmtree(cls.dir)

    def responder(self, name, extra):
        state = os.path.join(self.dir, "state-" + name)
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write("host_name = t1\nstate_directory = %s\nprivsep_directory = %s\n%s\n"
                    "[controller ctl]\nfrom = 127.0.0.1\nsecret_hash = %s\n"
                    "secret_verifier = %s\n"
                    % (state, privsep_directory(self.dir), extra, self.hash, self.verifier))
        os.chmod(path, 0o600)
        r = Responder(MPASSWDD, path)
        self.responders.append(r)
        r.state = state
        return r

    # --- the login grace time -------------------------------------------

    def test_noops_do_not_extend_the_grace_time(self):
        r = self.responder("grace", "login_grace_time = 1.5\nidle_timeout = 60")
        c = r.connect()
        start = time.monotonic()
        self.assertEqual(c.reply(), "220 t1 MCTP ready")
        self.assertEqual(c.send("HELO ctl"), "250 t1 hello ctl [127.0.0.1]")
        noops = 0
        while True:
            time.sleep(0.3)
            got = c.send("NOOP")
            if got != "250 ok":
                break
            noops += 1
            self.assertLess(noops, 20, "NOOPs keep the connection open")
        took = time.monotonic() - start
        print("\n  grace 1.5 s: %d NOOPs answered, then %r after %.2f s"
              % (noops, got, took), file=sys.stderr)
        self.assertEqual(got, GRACE_OVER)
        self.assertGreaterEqual(noops, 3)
        self.assertTrue(c.closed())
        time.sleep(0.2)
        self.assertIn("no successful AUTH within the login grace time", r.log_text())

    def test_the_grace_time_ends_at_auth(self):
        r = self.responder("grace-auth", "login_grace_time = 0.5")
        c = r.connect()
        c.reply()
        c.send("HELO ctl")
        self.assertEqual(c.send("AUTH " + SECRET, "AUTH ********"), "250 authenticated as ctl")
        time.sleep(0.8)
        self.assertEqual(c.send("NOOP"), "250 ok")
        self.assertEqual(c.send("QUIT"), "221 t1 closing")

    def test_the_tls_handshake_counts_against_the_grace_time(self):
        pki = Pki(self.dir, "grace")
        cert, key = pki.issue("server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
        r = self.responder("grace-tls", "login_grace_time = 1\nidle_timeout = 60\ntls = yes\n"
                           "tls_certificate = %s\ntls_key = %s" % (cert, key))
        # A peer that connects and never starts the handshake.
        s = socket.create_connection(("127.0.0.1", r.port), timeout=10)
        start = time.monotonic()
        self.assertEqual(s.recv(100), b"")  # closed by the responder
        took = time.monotonic() - start
        s.close()
        self.assertLess(took, 5, "the handshake wait was not bounded by login_grace_time")
        time.sleep(0.2)
        self.assertIn("no handshake within the idle timeout or the login grace time", r.log_text())
        # A real handshake, then silence: the grace time still runs.
        ctx = ssl.create_default_context(cafile=pki.ca)
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                got = b""
                while got.count(b"\r\n") < 2:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    got += chunk
        self.assertEqual(got.decode().split("\r\n")[:2], ["220 t1 MCTP ready", GRACE_OVER])

    # --- failed AUTHs per source ------------------------------------------

    def guess(self, r, stop_at, parallel):
        """Wrong secrets from `parallel` connections at once, each
        reconnecting, until stop_at. Returns (secrets checked, connections
        refused at connect, AUTHs refused unchecked)."""
        lock = threading.Lock()
        counts = {"checked": 0, "refused": 0, "unchecked": 0}

        def one():
            while time.monotonic() < stop_at:
                try:
                    c = r.connect()
                    try:
                        banner = c.reply()
                        if banner == LOCKED:
                            with lock:
                                counts["refused"] += 1
                            time.sleep(0.1)  # a refused connection costs a process
                            continue
                        c.send("HELO ctl")
                        while True:
                            got = c.send("AUTH " + WRONG)
                            with lock:
                                counts["unchecked" if got == LOCKED else "checked"] += 1
                            if got.startswith("421"):
                                break
                    finally:
                        c.close()
                except (EOFError, OSError):
                    pass

        threads = [threading.Thread(target=one) for _ in range(parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return counts["checked"], counts["refused"], counts["unchecked"]

    def test_parallel_guessing_is_capped_then_the_window_passes(self):
        r = self.responder("count", "auth_failure_delay = 0.05\nmax_auth_failures_per_source = 10\n"
                                    "auth_failure_window = 4")
        first = time.monotonic()
        checked, refused, unchecked = self.guess(r, first + 1.5, parallel=8)
        print("\n  8 parallel connections for 1.5 s, limit 10: %d secrets checked, %d "
              "connections refused at connect, %d AUTHs refused unchecked"
              % (checked, refused, unchecked), file=sys.stderr)
        # Counted before the check: never more than the limit between them.
        self.assertEqual(checked, 10)
        self.assertGreater(refused, 0)
        # Now even the right secret gets 421 at connect, before any work.
        c = r.connect()
        self.assertEqual(c.reply(), LOCKED)
        self.assertTrue(c.closed())
        time.sleep(0.2)
        log = r.log_text()
        self.assertIn("source 127.0.0.1 locked out: 10 failed AUTHs within 4 s", log)
        self.assertIn("connect from 127.0.0.1 refused: too many authentication failures from "
                      "this address (locked out)", log)

        # The tally: 0700 folder, 0600 file, both root's (the caller's), no secret.
        st = os.lstat(r.state)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        self.assertEqual(st.st_uid, os.geteuid())
        tally = os.path.join(r.state, "auth-failures")
        st = os.lstat(tally)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.geteuid())
        with open(tally) as f:
            text = f.read()
        self.assertRegex(text, r"^# mpasswdd auth-failures 1: [^\n]*\n127\.0\.0\.1 10 \d+\n$")
        self.assertNotIn(SECRET, text)
        self.assertNotIn(WRONG, text)

        # After the window (4 s from the first failure) the source is let in.
        time.sleep(max(0.0, first + 4.3 - time.monotonic()))
        c = r.connect()
        self.assertEqual(c.reply(), "220 t1 MCTP ready")
        c.send("HELO ctl")
        self.assertEqual(c.send("AUTH " + SECRET, "AUTH ********"), "250 authenticated as ctl")
        c.send("QUIT")
        # A right secret is not counted as a failure.
        with open(tally) as f:
            self.assertNotIn("127.0.0.1", f.read())

    def test_guesses_in_ten_seconds_at_the_default_delay(self):
        # Defaults but for the folder: auth_failure_delay 2 s, 3 AUTHs per
        # connection, 10 failures per source within 15 minutes. The issue
        # asks for 30 s; 10 s already shows the figure (after the tenth
        # failure nothing more is checked for the rest of the window).
        r = self.responder("default", "")
        checked, refused, unchecked = self.guess(r, time.monotonic() + 10, parallel=8)
        print("\n  from one source, 8 parallel connections, 10 s, default settings: "
              "%d secrets checked (%d connections refused at connect, %d AUTHs refused "
              "unchecked)" % (checked, refused, unchecked), file=sys.stderr)
        self.assertEqual(checked, 10)

    def test_scram_failures_count_and_the_grace_time_applies(self):
        r = self.responder("scram", "auth_failure_delay = 0.2\nmax_auth_failures_per_source = 3\n"
                           "auth_failure_window = 60\nlogin_grace_time = 1.5")
        tally = os.path.join(r.state, "auth-failures")
        c = r.connect()
        c.reply()
        c.ehlo("ctl")
        start = time.monotonic()
        # A wrong proof: 530 after the delay, counted for the source.
        self.assertEqual(c.scram("ctl", WRONG), "530 authentication failed")
        self.assertGreaterEqual(time.monotonic() - start, 0.2)
        self.assertEqual(c.scram("ctl", WRONG), "530 authentication failed")
        with open(tally) as f:
            self.assertRegex(f.read(), r"\n127\.0\.0\.1 2 \d+\n$")
        # A right one is not counted, and the third failure locks the source.
        self.assertEqual(c.scram("ctl", SECRET), "250 authenticated as ctl")
        c.send("QUIT")
        c = r.connect()
        c.reply()
        c.ehlo("ctl")
        self.assertEqual(c.scram("ctl", WRONG), "530 authentication failed")
        c.send("QUIT")
        c = r.connect()
        self.assertRegex(c.reply(), r"^421 t1 too many authentication failures from your address")
        # The grace time runs through an exchange left half done.
        r2 = self.responder("scram-grace", "login_grace_time = 1")
        c = r2.connect()
        c.reply()
        c.ehlo("ctl")
        self.assertTrue(c.send("AUTH SCRAM-SHA-256 " + __import__("mctp_client").b64(
            "n,,n=ctl,r=abcdefghijklmnopqrstuvwx")).startswith("334 "))
        self.assertEqual(c.reply(), GRACE_OVER)
        log = r.log_text() + r2.log_text()
        self.assertNotIn("p=", log)
        self.assertIn("AUTH SCRAM-SHA-256 failed (1 of 3)", log)

    def test_zero_turns_the_count_off_and_uses_no_file(self):
        r = self.responder("off", "auth_failure_delay = 0\nmax_auth_failures_per_source = 0")
        for _ in range(2):
            c = r.connect()
            self.assertEqual(c.reply(), "220 t1 MCTP ready")
            c.send("HELO ctl")
            for _ in range(2):
                self.assertEqual(c.send("AUTH " + WRONG), "530 authentication failed")
            self.assertEqual(c.send("AUTH " + WRONG), "421 t1 too many authentication failures")
        c = r.connect()
        self.assertEqual(c.reply(), "220 t1 MCTP ready")
        self.assertFalse(os.path.exists(r.state))

    def test_an_unsafe_state_directory_refuses_the_connection(self):
        r = self.responder("unsafe", "")
        os.mkdir(r.state, 0o700)
        os.chmod(r.state, 0o777)
        c = r.connect()
        self.assertRegex(c.reply(), r"^421 \S+ service not available \(configuration error\)$")
        self.assertTrue(c.closed())
        time.sleep(0.2)
        self.assertIn("state_directory: %s: must be owned by root and not writable by group or "
                      "others" % r.state, r.log_text())
        self.assertEqual(os.listdir(r.state), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
