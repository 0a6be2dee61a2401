#!/usr/bin/env python3
"""mpasswdd end to end: socket-activated by systemd-socket-activate --inetd
on 127.0.0.1, real TCP clients, real libpam through pam_wrapper with
pam_matrix as the password store (never /etc/pam.d)."""
import fcntl
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from mctp_client import NOBODY_GROUP, NOBODY_PASSWD, Responder, hash_secret, privsep_directory  # noqa: E402

MPASSWDD = os.environ["MPASSWDD"]
PAM_WRAPPER_LIB = os.environ["PAM_WRAPPER_LIB"]
NSS_WRAPPER_LIB = os.environ["NSS_WRAPPER_LIB"]
PAM_MATRIX = os.environ["PAM_MATRIX_MODULE"]
SECRET = "e2e-Secret-0123"
PASSWORDS = ["N3w-Passw0rd!", "Second-Pw-77", "wrong-Secret-99", "Old-Passw0rd-1",
             "Pipe-Passw0rd-1", "Pipe-Passw0rd-2"]


class SocketActivation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mpasswdd-e2e-")
        cls.services = os.path.join(cls.dir, "services")
        os.mkdir(cls.services)
        cls.passdb = os.path.join(cls.dir, "passdb")
        # As in tests/pam: root needs no old password, so pam_matrix's
        # old-password check is ignored in the preliminary phase only.
        with open(os.path.join(cls.services, "mpasswdd-e2e"), "w") as f:
            f.write("password [success=ok auth_err=ignore default=bad] %s passdb=%s\n"
                    "password required pam_permit.so\n" % (PAM_MATRIX, cls.passdb))
        with open(os.path.join(cls.services, "other"), "w") as f:
            f.write("password required pam_deny.so\n")
        # TEST's check service (mpasswdd-check): accepts, stores nothing.
        with open(os.path.join(cls.services, "mpasswdd-check"), "w") as f:
            f.write("password required pam_permit.so\n")
        # Users for getpwnam from nss_wrapper, never /etc/passwd.
        users = os.path.join(cls.dir, "passwd")
        groups = os.path.join(cls.dir, "group")
        with open(users, "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n"
                    "alice:x:1001:1001:Alice:/home/alice:/bin/sh\n"
                    "bob:x:1002:1002:Bob:/home/bob:/bin/sh\n"
                    "carol:x:1003:1003:Carol:/home/carol:/bin/sh\n" + NOBODY_PASSWD)
        with open(groups, "w") as f:
            f.write("root:x:0:\nalice:x:1001:\nbob:x:1002:\ncarol:x:1003:\n" + NOBODY_GROUP)
        cls.hash = hash_secret(MPASSWDD, SECRET)
        cls.env = ["LD_PRELOAD=%s %s" % (PAM_WRAPPER_LIB, NSS_WRAPPER_LIB), "PAM_WRAPPER=1",
                   "PAM_WRAPPER_SERVICE_DIR=" + cls.services,
                   "NSS_WRAPPER_PASSWD=" + users, "NSS_WRAPPER_GROUP=" + groups]
        cls.main = Responder(MPASSWDD, cls.config("main", "from = 127.0.0.1"), cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.main.stop()
        log = cls.main.log_text()
        shutil.rmtree(cls.dir)
        # No secret or password in anything the responder logged.
        for secret in [SECRET] + PASSWORDS:
            assert secret not in log, "secret %r in the log" % secret

    @classmethod
    def config(cls, name, from_line, extra="", mode=0o600):
        path = os.path.join(cls.dir, name + ".conf")
        with open(path, "w") as f:
            f.write("host_name = t1\npam_service = mpasswdd-e2e\nauth_failure_delay = 0.05\n"
                    "deny_users = carol\n%s\nstate_directory = %s\nprivsep_directory = %s\n"
                    "[controller ctl]\n%s\nsecret_hash = %s\n"
                    % (extra, os.path.join(cls.dir, "state-" + name), privsep_directory(cls.dir),
                       from_line, cls.hash))
        os.chmod(path, mode)
        return path

    def setUp(self):
        with open(self.passdb, "w") as f:
            f.write("alice:Old-Passw0rd-1:mpasswdd-e2e\nbob:Bobs-Old-Pw-22:mpasswdd-e2e\n")

    def passdb_text(self):
        with open(self.passdb) as f:
            return f.read()

    def test_banner(self):
        c = self.main.connect()
        self.assertEqual(c.reply(), "220 t1 MCTP ready")
        self.assertEqual(c.send("HELO ctl"), "250 t1 hello ctl [127.0.0.1]")
        self.assertEqual(c.send("QUIT"), "221 t1 closing")
        self.assertTrue(c.closed())

    def test_full_change(self):
        c = self.main.connect()
        self.assertTrue(c.reply().startswith("220 "))
        self.assertTrue(c.send("HELO ctl").startswith("250 "))
        self.assertEqual(c.send("AUTH " + SECRET, "AUTH ********"), "250 authenticated as ctl")
        self.assertEqual(c.send("VRFY alice"), "250 alice may be managed")
        self.assertTrue(c.send("CHPW alice").startswith("250 "))
        self.assertTrue(c.send("DATA").startswith("354 "))
        self.assertTrue(c.send("N3w-Passw0rd!", "********").startswith("355 "))
        self.assertEqual(c.send("."), "250 password changed for alice")
        self.assertIn("alice:N3w-Passw0rd!:", self.passdb_text())
        self.assertIn("bob:Bobs-Old-Pw-22:", self.passdb_text())
        # Same session, second user.
        self.assertTrue(c.send("CHPW bob").startswith("250 "))
        self.assertTrue(c.send("DATA").startswith("354 "))
        self.assertTrue(c.send("Second-Pw-77", "********").startswith("355 "))
        self.assertEqual(c.send("."), "250 password changed for bob")
        self.assertIn("bob:Second-Pw-77:", self.passdb_text())
        self.assertEqual(c.send("QUIT"), "221 t1 closing")

    def test_pipelined_batch_in_one_write_per_user(self):
        """EHLO announces PIPELINING; lines sent ahead of their replies are
        answered in order, as mpasswd sends them: a command and its DATA
        together, then the password, its "." and the next user's command
        and DATA together."""
        c = self.main.connect()
        c.reply()
        self.assertIn("250-PIPELINING", c.ehlo("ctl"))
        self.assertEqual(c.send("AUTH " + SECRET, "AUTH ********"), "250 authenticated as ctl")

        def burst(*lines, shown=None):
            c.transcript.append("C: " + (shown or " | ".join(lines)))
            c.sock.sendall("".join(line + "\r\n" for line in lines).encode())
            return [c.reply()[:3] for _ in lines]

        # carol is denied: her DATA gets 503, and alice's change follows.
        self.assertEqual(burst("CHPW carol", "DATA", "CHPW alice", "DATA"),
                         ["530", "503", "250", "354"])
        self.assertEqual(burst("Pipe-Passw0rd-1", ".", "CHPW bob", "DATA",
                               shown="******** | . | CHPW bob | DATA"),
                         ["355", "250", "250", "354"])
        self.assertIn("alice:Pipe-Passw0rd-1:", self.passdb_text())
        self.assertEqual(burst("Pipe-Passw0rd-2", ".", "QUIT", shown="******** | . | QUIT"),
                         ["355", "250", "221"])
        self.assertIn("bob:Pipe-Passw0rd-2:", self.passdb_text())
        self.assertNotIn("carol", self.passdb_text())

    def test_nc_one_shot_from_the_issue(self):
        script = ("HELO ctl\r\nAUTH %s\r\nCHPW alice\r\nDATA\r\nN3w-Passw0rd!\r\n.\r\nQUIT\r\n"
                  % SECRET)
        out = subprocess.run(["nc", "127.0.0.1", str(self.main.port)], input=script.encode(),
                             capture_output=True, timeout=20, check=True).stdout.decode()
        codes = [line[:3] for line in out.split("\r\n") if line]
        self.assertEqual(codes, ["220", "250", "250", "250", "354", "355", "250", "221"])
        self.assertIn("alice:N3w-Passw0rd!:", self.passdb_text())

    def test_end_of_input_during_data_changes_nothing(self):
        c = self.main.connect()
        c.reply()
        c.send("HELO ctl")
        c.send("AUTH " + SECRET, "AUTH ********")
        c.send("CHPW alice")
        c.send("DATA")
        c.send("N3w-Passw0rd!", "********")
        c.close()
        time.sleep(0.3)
        self.assertIn("alice:Old-Passw0rd-1:", self.passdb_text())
        self.assertIn("connection closed during DATA; nothing changed", self.main.log_text())

    def test_wrong_secret_then_limit(self):
        c = self.main.connect()
        c.reply()
        c.send("HELO ctl")
        self.assertEqual(c.send("AUTH wrong-Secret-99"), "530 authentication failed")
        self.assertEqual(c.send("AUTH wrong-Secret-99"), "530 authentication failed")
        self.assertEqual(c.send("AUTH wrong-Secret-99"),
                         "421 t1 too many authentication failures")
        self.assertTrue(c.closed())

    def test_over_long_line_then_valid_command(self):
        c = self.main.connect()
        c.reply()
        c.sock.sendall(b"X" * 1000 + b"QUIT\r\nNOOP\r\n")
        self.assertTrue(c.reply().startswith("501 line too long"))
        self.assertEqual(c.reply(), "250 ok")

    def test_policy_refuses_user_not_allowed(self):
        c = self.main.connect()
        c.reply()
        c.send("HELO ctl")
        c.send("AUTH " + SECRET, "AUTH ********")
        self.assertEqual(c.send("CHPW root"), "530 root may not be managed from here")
        self.assertEqual(c.send("VRFY carol"), "530 carol may not be managed from here")
        self.assertEqual(c.send("CHPW no-such-user-q"), "551 no-such-user-q unknown")

    def test_idle_timeout(self):
        r = Responder(MPASSWDD, self.config("idle", "from = 127.0.0.1", "idle_timeout = 0.5"),
                      self.env)
        try:
            c = r.connect()
            c.reply()
            self.assertEqual(c.reply(), "421 t1 timeout")
            self.assertTrue(c.closed())
        finally:
            r.stop()

    def test_peer_matching_no_controller_gets_521(self):
        r = Responder(MPASSWDD, self.config("other-net", "from = 192.0.2.0/24, local"), self.env)
        try:
            c = r.connect()
            self.assertEqual(c.reply(), "521 t1 no controller entry for 127.0.0.1")
            self.assertTrue(c.closed())
        finally:
            r.stop()

    def read_after_pipelined(self, port, data, address="127.0.0.1"):
        """Sends data right after connecting, waits until the responder has
        answered and closed, then reads everything. A responder that closes
        with unread input makes its kernel send a reset, and the reset
        destroys the replies still queued here: recv then fails with
        ECONNRESET or returns less."""
        s = socket.create_connection((address, port), timeout=5)
        try:
            s.sendall(data)
            time.sleep(0.5)
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return got.decode()
                got += chunk
        finally:
            s.close()

    def test_refusal_survives_a_pipelined_command(self):
        r = Responder(MPASSWDD, self.config("other-net2", "from = 192.0.2.0/24"), self.env)
        try:
            self.assertEqual(self.read_after_pipelined(r.port, b"HELO ctl\r\nQUIT\r\n"),
                             "521 t1 no controller entry for 127.0.0.1\r\n")
        finally:
            r.stop()

    def test_quit_reply_survives_data_behind_it(self):
        # More than one read of the responder's: some stays in its kernel.
        got = self.read_after_pipelined(self.main.port, b"QUIT\r\n" + b"NOOP\r\n" * 3000)
        self.assertRegex(got, r"^220 t1 [^\r]*\r\n221 t1 [^\r]*\r\n$")

    def test_disabled_service_gets_421(self):
        r = Responder(MPASSWDD, self.config("off", "from = 127.0.0.1", "enabled = no"), self.env)
        try:
            c = r.connect()
            self.assertEqual(c.reply(), "421 t1 service disabled")
            self.assertTrue(c.closed())
        finally:
            r.stop()

    def test_bad_config_answers_421_and_logs_file_and_line(self):
        r = Responder(MPASSWDD, self.config("bad", "from = 127.0.0.1", "line_max = 7"), self.env)
        try:
            c = r.connect()
            self.assertTrue(c.reply().endswith("service not available (configuration error)"))
            self.assertTrue(c.closed())
            time.sleep(0.2)
            self.assertRegex(r.log_text(), r"bad\.conf:5: line_max: must be")
        finally:
            r.stop()

    def test_fifo_as_config_answers_421_at_once(self):
        # Opening a FIFO for reading waits for a writer: mpasswdd used to
        # hang there, and the client with it (the client's 10 s timeout
        # makes that a failure).
        fifo = os.path.join(self.dir, "fifo.conf")
        os.mkfifo(fifo, 0o600)
        r = Responder(MPASSWDD, fifo, self.env)
        try:
            c = r.connect()
            self.assertTrue(c.reply().endswith("service not available (configuration error)"))
            self.assertTrue(c.closed())
            time.sleep(0.2)
            self.assertIn(fifo + ": not a regular file (a FIFO)", r.log_text())
        finally:
            r.stop()
            release(fifo)
            os.unlink(fifo)

    def test_ipv6_loopback(self):
        r = Responder(MPASSWDD, self.config("v6", "from = ::1"), self.env, address="[::1]")
        try:
            c = r.connect()
            c.reply()
            self.assertEqual(c.send("HELO ctl"), "250 t1 hello ctl [::1]")
        finally:
            r.stop()


class CommandLine(unittest.TestCase):
    """mpasswdd's own options, over pipes (the peer is then local)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpasswdd-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def run_mpasswdd(self, *args, stdin="", timeout=20):
        # Bytes, so CRLF is seen as sent (text mode would fold it to LF).
        r = subprocess.run([MPASSWDD] + list(args), input=stdin.encode(), capture_output=True,
                           timeout=timeout)
        r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
        return r

    def test_check_config_shows_settings_but_no_hash(self):
        h = hash_secret(MPASSWDD, SECRET)
        conf = self.write("ok.conf", "line_max = 256\n[controller c]\nfrom = local\n"
                                     "secret_hash = %s\n" % h)
        r = self.run_mpasswdd("-c", conf, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("line_max = 256", r.stdout)
        self.assertIn("[controller c]", r.stdout)
        self.assertNotIn(h, r.stdout)
        self.assertNotIn(h.split("$")[-1], r.stdout)

    def test_missing_config_answers_421_and_exits_78(self):
        r = self.run_mpasswdd("-c", os.path.join(self.dir, "absent.conf"), stdin="HELO x\r\n")
        self.assertEqual(r.returncode, 78)
        self.assertRegex(r.stdout, r"^421 \S+ service not available \(configuration error\)\r\n$")
        self.assertIn("absent.conf: cannot open: No such file or directory", r.stderr)

    def test_fifo_device_or_folder_as_config_exits_78_at_once(self):
        fifo = os.path.join(self.dir, "fifo.conf")
        os.mkfifo(fifo, 0o600)
        try:
            for path, kind in [(fifo, "a FIFO"), ("/dev/zero", "a character device"),
                               (self.dir, "a directory")]:
                r = self.run_mpasswdd("-c", path, "--check-config", timeout=10)
                self.assertEqual(r.returncode, 78, path)
                self.assertIn("%s: not a regular file (%s)" % (path, kind), r.stderr)
                self.assertEqual(r.stdout, "")
        finally:
            release(fifo)

    def test_world_readable_config_with_hash_is_refused(self):
        conf = self.write("open.conf", "[controller c]\nfrom = local\nsecret_hash = %s\n"
                          % hash_secret(MPASSWDD, SECRET), mode=0o644)
        r = self.run_mpasswdd("-c", conf, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("readable by every user", r.stderr)

    def test_pipe_session_is_local(self):
        conf = self.write("local.conf", "host_name = p1\nstate_directory = %s\n"
                                        "privsep_directory = %s\n"
                                        "[controller c]\nfrom = local\nsecret_hash = %s\n"
                          % (os.path.join(self.dir, "state"), privsep_directory(self.dir),
                             hash_secret(MPASSWDD, SECRET)))
        r = self.run_mpasswdd("-c", conf, stdin="HELO ctl\r\nAUTH %s\r\nQUIT\r\n" % SECRET)
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "220 p1 MCTP ready\r\n250 p1 hello ctl [local]\r\n"
                                   "250 authenticated as c\r\n221 p1 closing\r\n")

    def test_hash_secret_checks_its_input(self):
        for bad in ["short", "has a space in it", "x" * 122, ""]:
            r = self.run_mpasswdd("--hash-secret", stdin=bad + "\n" if bad else "")
            self.assertEqual(r.returncode, 2, bad)
            self.assertEqual(r.stdout, "", bad)
        r = self.run_mpasswdd("--hash-secret", "--cost", "12", stdin=SECRET + "\n")
        self.assertEqual(r.returncode, 2)
        r = self.run_mpasswdd("--hash-secret", stdin=SECRET + "\n")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("$y$"))
        self.assertNotIn(SECRET, r.stdout + r.stderr)

    def test_hash_secret_interrupted_on_a_terminal_restores_echo(self):
        master, slave = pty.openpty()

        def make_controlling():
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        proc = subprocess.Popen([MPASSWDD, "--hash-secret"], stdin=slave, stdout=slave,
                                stderr=slave, preexec_fn=make_controlling, close_fds=True)
        try:
            out = b""
            deadline = time.monotonic() + 10
            while b"Controller secret:" not in out and time.monotonic() < deadline:
                if select.select([master], [], [], 0.2)[0]:
                    out += os.read(master, 4096)
            self.assertIn(b"Controller secret:", out)
            self.assertFalse(termios.tcgetattr(slave)[3] & termios.ECHO, "echo is not off")
            # Half a secret, then ^C from the terminal: SIGINT ends it.
            os.write(master, b"half-a-sec\x03")
            self.assertEqual(proc.wait(timeout=10), -signal.SIGINT)
            self.assertTrue(termios.tcgetattr(slave)[3] & termios.ECHO,
                            "the terminal was left without echo")
            while select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            self.assertNotIn(b"half-a-sec", out)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(slave)
            os.close(master)

    def test_unknown_option_is_a_usage_error(self):
        r = self.run_mpasswdd("--frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown or incomplete option", r.stderr)

    def test_arguments_and_file_names_reach_the_terminal_escaped(self):
        r = self.run_mpasswdd("--frob\x1b]0;pwned\x07\x1b[2J")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'--frob\\x1b]0;pwned\\x07\\x1b[2J'", r.stderr)
        r = self.run_mpasswdd("-c", "/nonexistent/\x1b[2J\n.conf", "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("/nonexistent/\\x1b[2J\\x0a.conf: cannot open", r.stderr)
        for stream in (r.stdout, r.stderr):
            self.assertEqual([c for c in stream if ord(c) < 32 and c != "\n"], [], stream)


def release(fifo):
    """Lets a process that still waits to open fifo for reading (the bug)
    go on, and read end of file, rather than hang for ever."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # nobody waiting


if __name__ == "__main__":
    unittest.main(verbosity=2)
