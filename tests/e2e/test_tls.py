#!/usr/bin/env python3
"""MCTP over TLS end to end: socket-activated mpasswdd responders with
tls = yes (systemd-socket-activate --inetd on 127.0.0.1, pam_wrapper and
pam_matrix), driven by mpasswd with transport tls. A throwaway CA and
certificates are made here with the openssl command. Every untrusted case
(wrong CA, wrong host name, expired, wrong pin, no client certificate)
must fail as `untrusted` with the responder never seeing AUTH."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from mctp_client import (NOBODY_GROUP, NOBODY_PASSWD, FakeTarget, Responder, TlsRelay,  # noqa: E402
                         privsep_directory, verifier)  # noqa: E402
from pki import Pki, fingerprint, subject  # noqa: E402

MPASSWD = os.environ["MPASSWD"]
MPASSWDD = os.environ["MPASSWDD"]
PAM_WRAPPER_LIB = os.environ["PAM_WRAPPER_LIB"]
NSS_WRAPPER_LIB = os.environ["NSS_WRAPPER_LIB"]
PAM_MATRIX = os.environ["PAM_MATRIX_MODULE"]
SECRET = "tls-Secret-0123"
OLD = "Old-Passw0rd-1"
NEW = "Tls-N3w-Passw0rd!"
SERVICE = "mpasswdd-tls"


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = d = tempfile.mkdtemp(prefix="mpasswd-tls-")
        cls.pki = Pki(d, "good")
        cls.other = Pki(d, "other")
        san = "DNS:localhost,IP:127.0.0.1"
        cls.server = cls.pki.issue("server", "/CN=localhost", san)
        cls.wrong_name = cls.pki.issue("wrongname", "/CN=other.example", "DNS:other.example")
        cls.expired = cls.pki.issue("expired", "/CN=localhost", san, days="-1")
        cls.client = cls.pki.issue("client", "/O=Test/CN=control1", usage="clientAuth")
        cls.stranger = cls.other.issue("stranger", "/O=Test/CN=control1", usage="clientAuth")
        services = os.path.join(d, "services")
        os.mkdir(services)
        write(os.path.join(services, "other"), "password required pam_deny.so\n", 0o644)
        # TEST's check service (mpasswdd-check): accepts, stores nothing.
        write(os.path.join(services, "mpasswdd-check"), "password required pam_permit.so\n", 0o644)
        cls.services = services
        users = os.path.join(d, "passwd")
        write(users, "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n"
              + NOBODY_PASSWD, 0o644)
        groups = os.path.join(d, "group")
        write(groups, "root:x:0:\nalice:x:1001:\n" + NOBODY_GROUP, 0o644)
        cls.hash = verifier(MPASSWDD, SECRET)
        cls.responders = {}
        kinds = {"good1": (cls.server, ""), "good2": (cls.server, ""), "good3": (cls.server, ""),
                 "wrongname": (cls.wrong_name, ""), "expired": (cls.expired, ""),
                 "mutual": (cls.server, "tls_client_subject = %s\n" % subject(cls.client[0])),
                 "mutual-fp": (cls.server, "tls_client_fingerprint = %s\n" % ("ab" * 32))}
        for name, ((cert, key), extra) in kinds.items():
            service = SERVICE + "-" + name
            passdb = os.path.join(d, name + ".passdb")
            write(os.path.join(services, service),
                  "password [success=ok auth_err=ignore default=bad] %s passdb=%s\n"
                  "password required pam_permit.so\n" % (PAM_MATRIX, passdb), 0o644)
            mutual = name.startswith("mutual")
            conf = os.path.join(d, name + ".conf")
            write(conf, "host_name = %s\npam_service = %s\nstate_directory = %s\n"
                  "privsep_directory = %s\ntls = yes\ntls_certificate = %s\n"
                  "tls_key = %s\n%s[controller ctl]\nfrom = 127.0.0.1\nsecret_verifier = %s\n%s"
                  % (name, service, os.path.join(d, "state-" + name), privsep_directory(d), cert, key,
                     "tls_client_ca = %s\n" % cls.pki.ca if mutual else "", cls.hash, extra))
            env = ["LD_PRELOAD=%s %s" % (PAM_WRAPPER_LIB, NSS_WRAPPER_LIB), "PAM_WRAPPER=1",
                   "PAM_WRAPPER_SERVICE_DIR=" + services, "NSS_WRAPPER_PASSWD=" + users,
                   "NSS_WRAPPER_GROUP=" + groups]
            cls.responders[name] = (Responder(MPASSWDD, conf, env), passdb)
        write(os.path.join(d, "secret"), SECRET + "\n")
        cls.config = os.path.join(d, "mpasswd.conf")

    @classmethod
    def tearDownClass(cls):
        logs = ""
        for r, _ in cls.responders.values():
            r.stop()
            logs += r.log_text()
        shutil.rmtree(cls.dir)
        for secret in (SECRET, NEW):
            assert secret not in logs, "a secret in a responder's log"

    def setUp(self):
        for _, passdb in self.responders.values():
            write(passdb, "alice:%s:x\n" % OLD)
        self.logs_before = {n: r.log_text() for n, (r, _) in self.responders.items()}

    def password(self, name):
        with open(self.responders[name][1]) as f:
            return f.read().split(":")[1]

    def new_log(self, name):
        return self.responders[name][0].log_text()[len(self.logs_before[name]):]

    def wait_log(self, name, text):
        """The responder's log since setUp once it holds text: a responder
        may still be logging after mpasswd has its result (bounded)."""
        deadline = time.monotonic() + 5
        while text not in self.new_log(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.new_log(name)

    def target(self, name, host="127.0.0.1", options="tls"):
        return "%s:%d %s" % (host, self.responders[name][0].port, options)

    def run_mpasswd(self, lines, extra="", ca=None, timeout=60, options=()):
        write(self.config, "name = ctl\nsecret_file = secret\nhosts = hosts\nreply_timeout = 5\n"
              "tls_ca = %s\njournal_directory = %s\n%s"
              % (ca or self.pki.ca, os.path.join(self.dir, "journal"), extra))
        write(os.path.join(self.dir, "hosts"), "\n".join(lines) + "\n", 0o644)
        p = subprocess.run([MPASSWD, "-c", self.config, "--stdin", "--json"] + list(options)
                           + ["alice"],
                           input=NEW + "\n", capture_output=True, text=True, timeout=timeout)
        results = [json.loads(line) for line in p.stdout.splitlines()]
        return p.returncode, results, p.stderr

    def assert_untrusted(self, name, result, why):
        self.assertEqual(result["result"], "untrusted", result)
        self.assertEqual(result["transport"], "tls")
        self.assertIn(why, result["text"])
        self.assertEqual(self.password(name), OLD)
        log = self.wait_log(name, "TLS handshake with 127.0.0.1 failed")
        self.assertIn("TLS handshake with 127.0.0.1 failed", log)
        self.assertNotIn("AUTH", log)  # the responder never received it

    def test_a_fake_target_with_a_trusted_certificate_gets_nothing(self):
        # TLS verifies, but the target cannot prove it holds our verifier.
        fake = FakeTarget(tls=self.server)
        try:
            # --best-effort: a fake target announces no TEST; this is about
            # what it gets when it is asked for the change.
            status, results, err = self.run_mpasswd([fake.target() + " tls"],
                                                    options=["--best-effort"])
        finally:
            fake.stop()
        self.assertEqual(status, 3, err)
        [r] = results
        self.assertEqual((r["result"], r["step"], r["auth"]),
                         ("untrusted", "SCRAM proof", "SCRAM-SHA-256-PLUS"), r)
        self.assertNotIn(SECRET.encode(), fake.received)
        self.assertNotIn(NEW.encode(), fake.received)
        # EHLO, AUTH, the proof (bound to this TLS connection), then only QUIT.
        self.assertEqual(len(fake.lines), 4, fake.lines)
        self.assertEqual(fake.lines[3], "QUIT")

    def test_a_relay_between_two_tls_connections_is_refused_with_plus(self):
        status, results, err = self.run_mpasswd([self.target("good1")])
        self.assertEqual(status, 0, (results, err))
        self.assertEqual(results[0]["auth"], "SCRAM-SHA-256-PLUS")
        self.assertIn("AUTH ok: controller ctl (SCRAM-SHA-256-PLUS)",
                      self.wait_log("good1", "AUTH ok"))
        for _, passdb in self.responders.values():
            write(passdb, "alice:%s:x\n" % OLD)
        self.wait_log("good1", "session closed")
        self.logs_before["good1"] = self.responders["good1"][0].log_text()
        # The relay's certificate is one the controller trusts, and it
        # passes every line through; the channel bindings differ.
        relay = TlsRelay(self.server, self.responders["good1"][0].port)
        try:
            status, results, err = self.run_mpasswd([relay.target() + " tls"])
        finally:
            relay.stop()
        self.assertEqual(relay.relayed, 1)
        self.assertEqual(status, 3, err)
        [r] = results
        self.assertEqual((r["result"], r["code"], r["step"]), ("untrusted", 530, "SCRAM proof"), r)
        self.assertEqual(self.password("good1"), OLD)
        log = self.wait_log("good1", "channel binding")
        self.assertIn("the channel binding does not match", log)
        self.assertNotIn("CHPW", log)

    def test_change_on_several_responders(self):
        # One target at a time: the responders share pam_wrapper's copy of
        # their service folder in /tmp, and TEST then CHPW doubles the
        # pam_start calls that race for it.
        status, results, err = self.run_mpasswd(
            [self.target("good1"), self.target("good2"), self.target("good3", "localhost")],
            "parallel = 1\n")
        self.assertEqual(status, 0, (results, err))
        self.assertEqual([r["result"] for r in results], ["ok"] * 3, results)
        for name in ("good1", "good2", "good3"):
            self.assertEqual(self.password(name), NEW)
            self.assertIn("AUTH ok: controller ctl", self.wait_log(name, "AUTH ok"))

    def test_transport_key_applies_to_every_target(self):
        status, results, _ = self.run_mpasswd(["127.0.0.1:%d" % self.responders["good1"][0].port],
                                              "transport = tls\n")
        self.assertEqual(status, 0)
        self.assertEqual(results[0]["transport"], "tls")

    def test_wrong_ca_is_untrusted(self):
        status, results, _ = self.run_mpasswd([self.target("good1")], ca=self.other.ca)
        self.assertEqual(status, 3)
        self.assert_untrusted("good1", results[0], "does not verify")

    def test_wrong_host_name_is_untrusted(self):
        status, results, _ = self.run_mpasswd([self.target("wrongname")])
        self.assert_untrusted("wrongname", results[0], "mismatch")

    def test_expired_certificate_is_untrusted(self):
        status, results, _ = self.run_mpasswd([self.target("expired")])
        self.assert_untrusted("expired", results[0], "expired")

    def test_pinned_fingerprint(self):
        right = fingerprint(self.server[0])
        colons = ":".join(right[i:i + 2] for i in range(0, 64, 2)).upper()
        # A pin replaces the CA: the other CA does not matter then.
        status, results, err = self.run_mpasswd(
            [self.target("good1", options="tls_fingerprint=" + colons)], ca=self.other.ca)
        self.assertEqual(status, 0, (results, err))
        self.assertEqual(self.password("good1"), NEW)
        write(self.responders["good1"][1], "alice:%s:x\n" % OLD)
        self.logs_before["good1"] = self.responders["good1"][0].log_text()
        status, results, _ = self.run_mpasswd(
            [self.target("good1", options="tls_fingerprint=" + "0" * 64)])
        self.assertEqual(status, 3)
        self.assertEqual(results[0]["result"], "untrusted")
        self.assertIn("not the pinned", results[0]["text"])
        self.assertEqual(self.password("good1"), OLD)
        # A pin is checked after the handshake: the responder sees the
        # connection end before any command.
        log = self.wait_log("good1", "session closed")
        self.assertNotIn("AUTH", log)

    def test_mutual_tls_accepted(self):
        cert, key = self.client
        status, results, err = self.run_mpasswd(
            [self.target("mutual")], "tls_certificate = %s\ntls_key = %s\n" % (cert, key))
        self.assertEqual(status, 0, (results, err))
        self.assertEqual(self.password("mutual"), NEW)
        line = "TLS client certificate from 127.0.0.1: " + subject(cert)
        self.assertIn(line, self.wait_log("mutual", line))

    def test_mutual_tls_without_a_client_certificate_is_refused(self):
        status, results, _ = self.run_mpasswd([self.target("mutual")])
        self.assertEqual(status, 3)
        self.assertEqual(results[0]["result"], "untrusted", results)
        self.assertEqual(self.password("mutual"), OLD)
        log = self.wait_log("mutual", "TLS handshake with 127.0.0.1 failed")
        self.assertIn("TLS handshake with 127.0.0.1 failed", log)
        self.assertNotIn("AUTH", log)

    def test_mutual_tls_with_a_certificate_of_another_ca_is_refused(self):
        cert, key = self.stranger
        status, results, _ = self.run_mpasswd(
            [self.target("mutual")], "tls_certificate = %s\ntls_key = %s\n" % (cert, key))
        self.assertEqual(results[0]["result"], "untrusted", results)
        self.assertEqual(self.password("mutual"), OLD)
        log = self.wait_log("mutual", "TLS handshake with 127.0.0.1 failed")
        self.assertIn("TLS handshake with 127.0.0.1 failed", log)
        self.assertNotIn("AUTH", log)

    def test_client_certificate_not_the_controllers_gets_521(self):
        cert, key = self.client
        status, results, _ = self.run_mpasswd(
            [self.target("mutual-fp")], "tls_certificate = %s\ntls_key = %s\n" % (cert, key))
        self.assertEqual(status, 1)
        self.assertEqual(results[0]["result"], "refused", results)
        self.assertEqual(results[0]["code"], 521)
        self.assertEqual(self.password("mutual-fp"), OLD)
        log = self.wait_log("mutual-fp", "refused: no controller entry")
        self.assertIn("refused: no controller entry", log)
        self.assertNotIn("AUTH", log)

    def test_unusable_tls_files_stop_before_anything_is_sent(self):
        status, results, err = self.run_mpasswd([self.target("good1")],
                                                ca=os.path.join(self.dir, "nonexistent.pem"))
        self.assertEqual(status, 2)
        self.assertEqual(results, [])
        self.assertIn("tls_ca", err)
        self.assertNotIn("Connection from", self.new_log("good1"))

    def test_fifo_as_a_tls_file_is_refused_at_once(self):
        # OpenSSL's *_file loaders open the path themselves, and opening a
        # FIFO for reading waits for a writer: both sides used to hang
        # there. Every run below is bounded, so that fails instead.
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo, 0o600)
        why = fifo + ": not a regular file (a FIFO)"
        try:
            cert, key = self.client
            for ca, extra, name in [
                    (fifo, "", "tls_ca"),
                    (None, "tls_certificate = %s\ntls_key = %s\n" % (fifo, key), "tls_certificate"),
                    (None, "tls_certificate = %s\ntls_key = %s\n" % (cert, fifo), "tls_key")]:
                status, results, err = self.run_mpasswd([self.target("good1")], extra, ca=ca,
                                                        timeout=10)
                self.assertEqual((status, results), (2, []), err)
                self.assertIn("%s %s" % (name, why), err)
            self.assertNotIn("Connection from", self.new_log("good1"))
            cert, key = self.server
            base = {"tls_certificate": cert, "tls_key": key, "tls_client_ca": self.pki.ca}
            for name in base:
                files = dict(base, **{name: fifo})
                conf = os.path.join(self.dir, "fifo-%s.conf" % name)
                write(conf, "tls = yes\nstate_directory = %s\nprivsep_directory = %s\n"
                      "%s[controller ctl]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
                      % (os.path.join(self.dir, "state"), privsep_directory(self.dir),
                         "".join("%s = %s\n" % kv for kv in files.items()), self.hash))
                r = subprocess.run([MPASSWDD, "-c", conf, "--check-config"], capture_output=True,
                                   text=True, timeout=10)
                self.assertEqual(r.returncode, 78, (name, r.stderr))
                self.assertIn("%s %s" % (name, why), r.stderr)
                self.assertEqual(r.stdout, "")
            # Socket-activated: the connection is closed at once (a TLS
            # client could not read a 421) and the log says why.
            responder = Responder(MPASSWDD, conf, log_path=os.path.join(self.dir, "fifo.log"))
            try:
                with socket.create_connection(("127.0.0.1", responder.port), timeout=10) as s:
                    self.assertEqual(s.recv(100), b"")
                log = responder.log_text()
                deadline = time.monotonic() + 5
                while why not in log and time.monotonic() < deadline:
                    time.sleep(0.02)
                    log = responder.log_text()
                self.assertIn("tls_client_ca " + why, log)
                self.assertNotIn("handshake", log)
            finally:
                responder.stop()
        finally:
            release(fifo)
            os.unlink(fifo)

    def test_openssl_is_mapped_only_with_tls_yes(self):
        """Server TLS is the plug-in mpasswdd-tls.so: loaded by the network
        child with tls = yes, and by nothing without it."""
        if os.geteuid() != 0:
            self.skipTest("needs root to read the maps of mpasswdd's non-dumpable processes")
        d = self.dir
        conf = os.path.join(d, "plain.conf")
        write(conf, "host_name = plain\nstate_directory = %s\nprivsep_directory = %s\n"
              "[controller ctl]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
              % (os.path.join(d, "state-plain"), privsep_directory(d), self.hash))
        plain = Responder(MPASSWDD, conf)
        try:
            maps = responder_maps(plain, tls=False)
        finally:
            plain.stop()
        self.assertEqual(len(maps), 2, "the privileged parent and the network child")
        for pid, text in maps.items():
            # Nor Nettle before AUTH (scram_nettle_lazy.cpp), nor libcrypt
            # before a hash is made or checked (secret_hash.cpp).
            self.assertNotIn("libnettle", text, pid)
            self.assertNotIn("libcrypt", text, pid)
            self.assertNotIn("libssl", text, pid)
            self.assertNotIn("libcrypto", text, pid)
            self.assertNotIn("mpasswdd-tls.so", text, pid)
        maps = responder_maps(self.responders["good1"][0], tls=True)
        self.assertEqual(len(maps), 2)
        parent, child = sorted(maps)
        self.assertNotIn("libcrypto", maps[parent])
        for lib in ("mpasswdd-tls.so", "libssl.so", "libcrypto.so"):
            self.assertIn(lib, maps[child])

    def test_a_missing_tls_plugin_is_a_configuration_error(self):
        env = dict(os.environ, MPASSWDD_TLS_PLUGIN=os.path.join(self.dir, "none.so"))
        out = subprocess.run([MPASSWDD, "-c", os.path.join(self.dir, "good1.conf"),
                              "--check-config"], env=env, capture_output=True, text=True)
        self.assertEqual(out.returncode, 78, out.stderr)
        self.assertIn("the TLS plug-in cannot be loaded", out.stderr)
        self.assertIn("none.so", out.stderr)


def responder_maps(responder, tls):
    """{pid: /proc/PID/maps} of the mpasswdd processes serving one open
    connection to responder, read once its banner has come."""
    with socket.create_connection(("127.0.0.1", responder.port), timeout=10) as s:
        conn = s
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = ctx.wrap_socket(s, server_hostname="localhost")
        f = conn.makefile("rb")
        assert f.readline().startswith(b"220"), "no banner"
        pids, todo = [], [responder.proc.pid]
        while todo:
            pid = todo.pop()
            for task in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, task)) as c:
                    for child in c.read().split():
                        todo.append(int(child))
                        pids.append(int(child))
        maps = {}
        for pid in pids:
            with open("/proc/%d/maps" % pid) as m:
                maps[pid] = m.read()
        f.close()
        conn.close()
        return maps


def release(fifo):
    """Lets a process that still waits to open fifo for reading (the bug)
    go on, and read end of file, rather than hang for ever."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # nobody waiting


if __name__ == "__main__":
    unittest.main(verbosity=2)
