#!/usr/bin/env python3
"""The ssh transport end to end, and the plain-TCP opt-in.

A real sshd (OpenSSH, unpacked into .deps/ by scripts/install-deps) runs
on a 127.0.0.1 port with its own host key, configuration and
authorized_keys, whose one key has the forced command "mpasswdd --ssh".
The installed-style controller (mpasswd, transport = ssh) reaches it
through the system ssh client. As root, sshd runs as nobody (a non-root
sshd serves only its own user); nss_wrapper gives that user a shell, and
gives mpasswdd its users; pam_wrapper/pam_matrix is the password store."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from mctp_client import control_octets, free_port, privsep_directory, verifier  # noqa: E402

MPASSWD = os.environ["MPASSWD"]
MPASSWDD = os.environ["MPASSWDD"]
SSHD = os.path.abspath(os.environ["SSHD"])  # sshd re-executes itself
PAM_WRAPPER_LIB = os.environ["PAM_WRAPPER_LIB"]
NSS_WRAPPER_LIB = os.environ["NSS_WRAPPER_LIB"]
PAM_MATRIX = os.environ["PAM_MATRIX_MODULE"]
SECRET = "ssh-Secret-0123"
OLD = "Old-Passw0rd-1"
SERVICE = "mpasswdd-ssh"
RUN_UID = 65534 if os.geteuid() == 0 else os.geteuid()
RUN_GID = 65534 if os.geteuid() == 0 else os.getegid()


# A fake target on ssh's standard input and output (the forced command of
# a key): records what it receives in the file named here.
FAKE_TARGET = r"""
import base64, os, sys
record = open(%r, "ab", buffering=0)
out = sys.stdout.buffer
def say(line):
    out.write(line.encode() + b"\r\n"); out.flush()
def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()
say("220 fake MCTP ready")
for raw in sys.stdin.buffer:
    record.write(raw)
    line = raw.decode("ascii", "replace").strip()
    if line.upper().startswith("EHLO"):
        say("250-fake hello"); say("250 AUTH SCRAM-SHA-256")
    elif line.upper().startswith("AUTH SCRAM"):
        first = base64.b64decode(line.split()[2]).decode()
        say("334 " + b64("r=%%sfake,s=%%s,i=4096" %% (first.split("r=", 1)[1], b64(os.urandom(16)))))
    elif line.startswith("Yz"):
        say("334 " + b64("v=" + b64(os.urandom(32))))
    elif line.upper() == "QUIT":
        say("221 bye"); break
    else:
        say("250 ok")
"""


def write(path, text, mode=0o600, owner=None):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, *owner)


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    with open(path + ".pub") as f:
        return f.read().split()[:2]


class SshTransport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(SSHD):
            raise RuntimeError("no sshd at %s: run scripts/install-deps" % SSHD)
        cls.dir = tempfile.mkdtemp(prefix="mpasswd-ssh-", dir="/var/tmp")
        os.chmod(cls.dir, 0o755)
        d, owner = cls.dir, (RUN_UID, RUN_GID)
        # The target side, owned by the user sshd and mpasswdd run as.
        target = os.path.join(d, "target")
        os.mkdir(target, 0o755)
        os.chown(target, *owner)
        cls.mpasswdd = os.path.join(target, "mpasswdd")
        shutil.copy2(MPASSWDD, cls.mpasswdd)
        services = os.path.join(target, "services")
        os.mkdir(services, 0o755)
        cls.passdb = os.path.join(target, "passdb")
        write(os.path.join(services, SERVICE),
              "password [success=ok auth_err=ignore default=bad] %s passdb=%s\n"
              "password required pam_permit.so\n" % (PAM_MATRIX, cls.passdb), 0o644)
        write(os.path.join(services, "other"), "password required pam_deny.so\n", 0o644)
        # TEST's check service (mpasswdd-check): accepts, stores nothing.
        write(os.path.join(services, "mpasswdd-check"), "password required pam_permit.so\n", 0o644)
        cls.users = os.path.join(target, "passwd")
        write(cls.users, "mctp:x:%d:%d:mpasswd:%s:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n"
              "root:x:0:0:root:/root:/bin/sh\n" % (RUN_UID, RUN_GID, target), 0o644)
        cls.groups = os.path.join(target, "group")
        write(cls.groups, "mctp:x:%d:\nalice:x:1001:\nroot:x:0:\n" % RUN_GID, 0o644)
        conf = os.path.join(target, "mpasswdd.conf")
        # The tally folder is made by mpasswdd itself, owned by the user
        # it runs as (as under inetd, ssh has no StateDirectory=).
        write(conf, "host_name = sshtarget\npam_service = %s\nauth_failure_delay = 0.05\n"
              "state_directory = %s\n"
              "[controller control-ssh]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
              % (SERVICE, os.path.join(target, "state"), verifier(MPASSWDD, SECRET)),
              0o600, owner)
        cls.log = os.path.join(target, "log")
        write(cls.log, "", 0o600, owner)
        host_key = os.path.join(target, "host_key")
        cls.host_key = keygen(host_key)
        os.chown(host_key, *owner)
        # The controller side, root's (or the caller's).
        ctl = os.path.join(d, "ctl")
        os.mkdir(ctl, 0o700)
        cls.identity = os.path.join(ctl, "id_ed25519")
        client_key = keygen(cls.identity)
        forced = ("env LD_PRELOAD='%s %s' PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=%s "
                  "NSS_WRAPPER_PASSWD=%s NSS_WRAPPER_GROUP=%s %s --ssh -c %s --log-stderr 2>>%s"
                  % (PAM_WRAPPER_LIB, NSS_WRAPPER_LIB, services, cls.users, cls.groups,
                     cls.mpasswdd, conf, cls.log))
        # A second key whose forced command plays a hostile target: it
        # writes terminal escapes and a forged line on standard error (ssh
        # passes that on to the controller) and exits.
        cls.hostile_identity = os.path.join(ctl, "id_hostile")
        hostile_key = keygen(cls.hostile_identity)
        hostile = (r"printf 'ready\n\033]0;pwned\007\033[2J\ralice: password changed on 9 of 9"
                   r" targets\233\n' >&2; exit 1")
        # A third key whose forced command is a fake target that says yes
        # to everything (EHLO with SCRAM, a well-formed challenge, a
        # made-up signature) and records every octet it receives.
        cls.fake_identity = os.path.join(ctl, "id_fake")
        fake_key = keygen(cls.fake_identity)
        cls.fake_record = os.path.join(target, "fake-received")
        write(cls.fake_record, "", 0o600, owner)
        fake_script = os.path.join(target, "fake.py")
        write(fake_script, FAKE_TARGET % cls.fake_record, 0o755, owner)
        write(os.path.join(target, "authorized_keys"),
              'restrict,command="%s" %s\nrestrict,command="%s" %s\nrestrict,command="%s %s" %s\n'
              % (forced, " ".join(client_key), hostile, " ".join(hostile_key),
                 # the system's python: the sshd user may not reach a private one
                 "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                 fake_script, " ".join(fake_key)), 0o644, owner)
        sshd_config = os.path.join(target, "sshd_config")
        cls.sshd_log = open(os.path.join(d, "sshd.log"), "wb")
        env = dict(os.environ, LD_PRELOAD=NSS_WRAPPER_LIB, NSS_WRAPPER_PASSWD=cls.users,
                   NSS_WRAPPER_GROUP=cls.groups)
        drop = (["setpriv", "--reuid", str(RUN_UID), "--regid", str(RUN_GID), "--clear-groups"]
                if os.geteuid() == 0 else [])
        # The port free_port() picked may be taken before sshd binds it
        # (tests run side by side): then try another.
        for _ in range(5):
            cls.port = free_port()
            write(sshd_config, "ListenAddress 127.0.0.1\nPort %d\nHostKey %s\n"
                  "AuthorizedKeysFile %s\nPidFile none\nStrictModes no\nUsePAM no\n"
                  "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                  "AllowUsers mctp\nLogLevel VERBOSE\n"
                  % (cls.port, host_key, os.path.join(target, "authorized_keys")), 0o644, owner)
            cls.sshd_log.seek(0)
            cls.sshd_log.truncate(0)
            cls.sshd = subprocess.Popen(drop + [SSHD, "-D", "-e", "-f", sshd_config],
                                        stdin=subprocess.DEVNULL, stdout=cls.sshd_log,
                                        stderr=cls.sshd_log, env=env)
            deadline = time.time() + 10
            while "Server listening" not in cls.sshd_log_text():
                if time.time() > deadline or cls.sshd.poll() is not None:
                    break
                time.sleep(0.05)
            if "Server listening" in cls.sshd_log_text():
                break
            cls.sshd.kill()
            cls.sshd.wait()
            if "already in use" not in cls.sshd_log_text():
                break
        if "Server listening" not in cls.sshd_log_text():
            raise RuntimeError("sshd did not start:\n" + cls.sshd_log_text())
        cls.known_hosts = os.path.join(ctl, "known_hosts")
        write(cls.known_hosts, "[127.0.0.1]:%d %s\n" % (cls.port, " ".join(cls.host_key)))
        write(os.path.join(ctl, "secret"), SECRET + "\n")
        cls.config = os.path.join(ctl, "mpasswd.conf")
        cls.write_config()

    @classmethod
    def sshd_log_text(cls):
        with open(cls.sshd_log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    @classmethod
    def write_config(cls, extra="", known_hosts=None, identity=None):
        write(cls.config, "name = control-ssh\nsecret_file = secret\nhosts = hosts\n"
              "transport = ssh\nssh_user = mctp\nssh_identity = %s\nssh_known_hosts = %s\n"
              "reply_timeout = 10\njournal_directory = %s\n%s"
              % (identity or cls.identity, known_hosts or cls.known_hosts,
                 os.path.join(cls.dir, "ctl", "journal"), extra))
        write(os.path.join(cls.dir, "ctl", "hosts"), "127.0.0.1:%d\n" % cls.port, 0o644)

    @classmethod
    def tearDownClass(cls):
        cls.sshd.terminate()
        cls.sshd.wait(timeout=10)
        cls.sshd_log.close()
        with open(cls.log) as f:
            log = f.read()
        shutil.rmtree(cls.dir)
        for secret in (SECRET, "Ssh-N3w-Passw0rd!"):
            assert secret not in log, "a secret in the responder's log"

    def setUp(self):
        write(self.passdb, "alice:%s:%s\n" % (OLD, SERVICE), 0o600, (RUN_UID, RUN_GID))
        self.write_config()

    def password(self):
        with open(self.passdb) as f:
            return f.read().split(":")[1]

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def mpasswd(self, *args, password="Ssh-N3w-Passw0rd!"):
        stdin = [] if "--verify" in args else ["--stdin"]
        p = subprocess.run([MPASSWD, "-c", self.config, "--json"] + stdin + list(args),
                           input=password + "\n", capture_output=True, text=True, timeout=60)
        results = [json.loads(line) for line in p.stdout.splitlines()]
        return p.returncode, results, p.stderr

    def test_change_over_ssh(self):
        status, results, err = self.mpasswd("alice")
        self.assertEqual(status, 0, (results, err))
        self.assertEqual(results[0]["result"], "ok")
        self.assertEqual(results[0]["transport"], "ssh")
        self.assertEqual(results[0]["port"], self.port)
        self.assertEqual(self.password(), "Ssh-N3w-Passw0rd!")
        # The peer came from SSH_CONNECTION: the [controller] entry's
        # from = 127.0.0.1 matched (a pipe alone would be "local").
        self.assertIn("127.0.0.1", self.log_text())

    def test_verify_with_dash_h(self):
        status, results, err = self.mpasswd("--verify", "-H", "127.0.0.1:%d" % self.port, "alice")
        self.assertEqual(status, 0, (results, err))
        self.assertEqual(results[0]["result"], "ok")
        self.assertEqual(self.password(), OLD)

    def test_unknown_host_key_is_untrusted_and_nothing_reaches_the_target(self):
        other = os.path.join(self.dir, "ctl", "other_known_hosts")
        key = keygen(os.path.join(self.dir, "ctl", "impostor"))
        write(other, "[127.0.0.1]:%d %s\n" % (self.port, " ".join(key)))
        self.write_config(known_hosts=other)
        before = self.log_text()
        status, results, err = self.mpasswd("alice")
        self.assertEqual(status, 3)
        self.assertEqual(results[0]["result"], "untrusted", results)
        self.assertIn("Host key verification failed", results[0]["text"])
        self.assertEqual(results[0]["step"], "banner")
        self.assertEqual(self.password(), OLD)
        self.assertEqual(self.log_text(), before)  # mpasswdd never started

    def test_ssh_config_is_read_but_cannot_undo_the_forced_options(self):
        ctl = os.path.join(self.dir, "ctl")
        probe = os.path.join(ctl, "probe-ran")
        ssh_config = os.path.join(ctl, "ssh_config")
        # A site option that is needed (the alias resolves only through
        # HostName), and lines that the command line must override.
        write(ssh_config, "Host sshalias\n  HostName 127.0.0.1\n"
              "Host *\n  ProxyCommand sh -c 'touch %s'\n  ControlMaster auto\n"
              "  ControlPath %s/ctl-%%r\n  IdentityAgent %s/agent\n  BatchMode no\n"
              % (probe, ctl, ctl), 0o644)
        self.write_config("ssh_config = %s\n" % ssh_config)
        status, results, err = self.mpasswd("-H", "sshalias:%d" % self.port, "alice")
        self.assertEqual(status, 0, (results, err))
        self.assertEqual(results[0]["result"], "ok", results)
        self.assertEqual(self.password(), "Ssh-N3w-Passw0rd!")
        self.assertFalse(os.path.exists(probe), "the ProxyCommand of ssh_config ran")
        self.assertEqual([f for f in os.listdir(ctl) if f.startswith("ctl-")], [])
        # One that others may write is refused before anything starts.
        os.chmod(ssh_config, 0o666)
        status, results, err = self.mpasswd("-H", "sshalias:%d" % self.port, "alice")
        self.assertEqual(status, 2, (results, err))
        self.assertEqual(results, [])
        self.assertIn("ssh_config: %s: writable by other users" % ssh_config, err)

    def test_a_forced_commands_errors_reach_the_terminal_escaped(self):
        self.write_config(identity=self.hostile_identity)
        before = self.log_text()
        cmd = [MPASSWD, "-c", self.config, "--verify"]
        p = subprocess.run(cmd + ["alice"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertEqual(control_octets(p.stdout), [], p.stdout)
        self.assertEqual(p.stderr, b"")
        lines = p.stdout.split(b"\n")
        self.assertEqual(len(lines), 4, p.stdout)  # header, the target, the summary
        self.assertIn(b"unreachable", lines[1])
        self.assertIn(b"ssh: \\x1b]0;pwned\\x07\\x1b[2J\\x0dalice: password changed on 9 of 9 "
                      b"targets\\x9b", lines[1])
        p = subprocess.run(cmd + ["--json", "alice"], capture_output=True, timeout=60)
        self.assertEqual(control_octets(p.stdout), [], p.stdout)
        [r] = [json.loads(line) for line in p.stdout.decode("ascii").splitlines()]
        self.assertEqual(r["result"], "unreachable", r)
        self.assertTrue(r["text"].startswith("ssh: \\x1b]0;pwned\\x07"), r)
        self.assertEqual(self.log_text(), before)  # mpasswdd never ran

    def test_a_fake_target_behind_an_accepted_host_key_gets_nothing(self):
        # ssh authenticates the host; the forced command is not mpasswdd.
        self.write_config(identity=self.fake_identity)
        new = "Fake-N3w-Passw0rd!"
        try:
            # --best-effort: a fake announces no TEST; the point is what it gets.
            status, results, err = self.mpasswd("--best-effort", "alice", password=new)
        finally:
            self.write_config()
        self.assertEqual(status, 3, err)
        [r] = results
        self.assertEqual((r["result"], r["step"], r["transport"]),
                         ("untrusted", "SCRAM proof", "ssh"), r)
        with open(self.fake_record, "rb") as f:
            got = f.read()
        self.assertNotIn(SECRET.encode(), got)
        self.assertNotIn(new.encode(), got)
        self.assertEqual([l[:4] for l in got.split(b"\r\n") if l][-1:], [b"QUIT"], got)
        self.assertEqual(len([l for l in got.split(b"\r\n") if l]), 4, got)

    def test_key_not_authorized_is_unreachable(self):
        stranger = os.path.join(self.dir, "ctl", "stranger")
        keygen(stranger)
        self.write_config(identity=stranger)
        before = self.log_text()
        status, results, err = self.mpasswd("alice")
        self.assertEqual(status, 3)
        self.assertEqual(results[0]["result"], "unreachable", results)
        self.assertIn("Permission denied", results[0]["text"])
        self.assertEqual(self.password(), OLD)
        self.assertEqual(self.log_text(), before)


class PlainTcpOptIn(unittest.TestCase):
    """Plain TCP beyond loopback needs insecure_plaintext; loopback does
    not (every other end-to-end test connects to 127.0.0.1 or ::1)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpasswd-plain-")
        self.config = os.path.join(self.dir, "mpasswd.conf")
        write(os.path.join(self.dir, "secret"), SECRET + "\n")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def run_mpasswd(self, config_extra, hosts_line):
        write(self.config, "secret_file = secret\nhosts = hosts\nconnect_timeout = 0.5\n"
              "reply_timeout = 0.5\njournal_directory = %s\n" % os.path.join(self.dir, "journal")
              + config_extra)
        write(os.path.join(self.dir, "hosts"), hosts_line + "\n", 0o644)
        start = time.monotonic()
        p = subprocess.run([MPASSWD, "-c", self.config, "--stdin", "--json", "alice"],
                           input="Plain-N3w-Pw!\n", capture_output=True, text=True, timeout=30)
        return p.returncode, json.loads(p.stdout.splitlines()[0]), time.monotonic() - start

    def test_non_loopback_is_refused_without_the_opt_in(self):
        status, r, elapsed = self.run_mpasswd("", "192.0.2.1")
        self.assertEqual(status, 3)
        self.assertEqual(r["result"], "untrusted")
        self.assertEqual(r["step"], "connect")
        self.assertIn("192.0.2.1, which is not loopback, is refused", r["text"])
        self.assertIn("insecure_plaintext", r["text"])

    def test_opt_in_per_host_and_in_the_config(self):
        for extra, line in (("", "192.0.2.1 insecure_plaintext"),
                            ("insecure_plaintext = yes\n", "192.0.2.1")):
            status, r, _ = self.run_mpasswd(extra, line)
            self.assertEqual(status, 3)
            # It tried: TEST-NET-1 is unreachable or silent, not untrusted.
            self.assertIn(r["result"], ("unreachable", "timeout"), r)

    def test_hosts_line_can_say_tcp_against_a_config_default_of_ssh(self):
        status, r, _ = self.run_mpasswd("transport = ssh\n", "192.0.2.1 tcp")
        self.assertEqual(r["transport"], "tcp")
        self.assertEqual(r["result"], "untrusted")


class ResponderSshOption(unittest.TestCase):
    def test_without_ssh_connection_it_refuses(self):
        d = tempfile.mkdtemp(prefix="mpasswdd-ssh-opt-")
        try:
            conf = os.path.join(d, "c.conf")
            write(conf, "state_directory = %s\nprivsep_directory = %s\n[controller ctl]\n"
                  "from = 127.0.0.1\nsecret_verifier = %s\n"
                  % (os.path.join(d, "state"), privsep_directory(d), verifier(MPASSWDD, SECRET)))
            env = {k: v for k, v in os.environ.items() if k != "SSH_CONNECTION"}
            p = subprocess.run([MPASSWDD, "--ssh", "-c", conf], input="QUIT\r\n",
                               capture_output=True, text=True, env=env)
            self.assertEqual(p.returncode, 78)
            self.assertTrue(p.stdout.startswith("421 "), p.stdout)
            self.assertIn("SSH_CONNECTION is missing", p.stderr)
            # With it, the peer is SSH_CONNECTION's client: 127.0.0.1 is
            # allowed here, 192.0.2.9 is not.
            for client, code in (("127.0.0.1", "220"), ("192.0.2.9", "521")):
                env["SSH_CONNECTION"] = "%s 50000 127.0.0.1 22" % client
                p = subprocess.run([MPASSWDD, "--ssh", "-c", conf], input="QUIT\r\n",
                                   capture_output=True, text=True, env=env)
                self.assertTrue(p.stdout.startswith(code), (client, p.stdout))
        finally:
            shutil.rmtree(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
