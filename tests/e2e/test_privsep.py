#!/usr/bin/env python3
"""Privilege separation of mpasswdd, seen from outside: a socket-activated
responder (systemd-socket-activate --inetd) as root, its two processes
found under /proc while a session is open. The network child's ids,
capabilities, no_new_privs, seccomp mode and root folder; the root
parent's descriptors (no socket but the socketpair); either process
dying ends the other; and no secret hash in the child's memory after a
successful AUTH (while the test shows that it finds a marker there and
the hash in the parent, so it can fail). The refusals of an unusable
privsep_directory. AUTH and VRFY need no PAM: no wrapper is preloaded.

The parent's side of the format, driven by a hostile child, is in
tests/unit/test_privsep.cpp."""
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctp_client import Responder, hash_secret, privsep_directory, verifier  # noqa: E402

MPASSWDD = os.environ["MPASSWDD"]
SECRET = "privsep-secret-0123"
MARKER = "marker-5f3c9a1e.example"


def ppid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if ppid_of(int(d)) == pid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return fields


def gone(pid):
    """Exited (a zombie counts: nobody may reap it in a container)."""
    try:
        return status(pid)["State"][0] in ("Z", "X")
    except (OSError, KeyError):
        return True


def wait_gone(pid, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return False


def memory(pid):
    """Every readable mapping of pid, concatenated (as root)."""
    chunks = []
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if not parts[1].startswith("r") or (len(parts) > 5 and parts[5] == "[vvar]"):
                continue
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except OSError:
                pass
    return b"".join(chunks)


class Privsep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mpasswdd-privsep-")
        cls.empty = privsep_directory(cls.dir)
        cls.hash = hash_secret(MPASSWDD, SECRET)
        cls.verifier = verifier(MPASSWDD, SECRET)
        cls.conf = cls.config("main.conf", "privsep_directory = %s\n" % cls.empty)
        cls.responder = Responder(MPASSWDD, cls.conf)

    @classmethod
    def tearDownClass(cls):
        cls.responder.stop()
        shutil.rmtree(cls.dir)

    @classmethod
    def config(cls, name, extra):
        path = os.path.join(cls.dir, name)
        with open(path, "w") as f:
            f.write("host_name = t1\nstate_directory = %s\nauth_failure_delay = 0\n%s"
                    "[controller ctl]\nfrom = 127.0.0.1\nsecret_hash = %s\n"
                    "secret_verifier = %s\n"
                    % (os.path.join(cls.dir, "state"), extra, cls.hash, cls.verifier))
        os.chmod(path, 0o600)
        return path

    def session(self):
        """A connection past HELO, and (parent, child) pids of its responder."""
        c = self.responder.connect()
        self.assertTrue(c.reply().startswith("220 "))
        self.assertTrue(c.send("HELO " + MARKER).startswith("250 "))
        activator = self.responder.proc.pid
        deadline = time.time() + 5
        while time.time() < deadline:
            for parent in children(activator):
                if not gone(parent):
                    kids = [k for k in children(parent) if not gone(k)]
                    if kids:
                        return c, parent, kids[0]
            time.sleep(0.02)
        self.fail("no mpasswdd parent and child under " + str(activator))

    @unittest.skipUnless(os.geteuid() == 0, "the child changes ids only when run as root")
    def test_the_child_is_confined_and_the_parent_holds_no_network_descriptor(self):
        c, parent, child = self.session()
        try:
            s = status(child)
            self.assertEqual(s["Uid"], ["65534"] * 4, s)
            self.assertEqual(s["Gid"], ["65534"] * 4, s)
            self.assertEqual(s["Groups"], ["65534"], s)
            for k in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                self.assertEqual(int(s[k][0], 16), 0, (k, s[k]))
            self.assertEqual(s["NoNewPrivs"], ["1"])
            self.assertEqual(s["Seccomp"], ["2"])  # filter mode
            self.assertEqual(os.readlink("/proc/%d/root" % child), os.path.realpath(self.empty))
            self.assertEqual(os.readlink("/proc/%d/cwd" % child), os.path.realpath(self.empty))
            self.assertEqual(status(parent)["Uid"][1], "0")
            fds = {fd: os.readlink("/proc/%d/fd/%s" % (parent, fd))
                   for fd in os.listdir("/proc/%d/fd" % parent)}
            sockets = [t for t in fds.values() if t.startswith("socket:")]
            # The socketpair only (and syslog's, when /dev/log exists).
            with open("/proc/net/unix") as f:
                unix_inodes = {line.split()[6] for line in list(f)[1:] if len(line.split()) > 6}
            for t in sockets:
                self.assertIn(t[len("socket:["):-1], unix_inodes, fds)
            self.assertEqual(fds["0"], "/dev/null", fds)
            self.assertEqual(fds["1"], "/dev/null", fds)
            # The network child holds the connection.
            child_fds = [os.readlink("/proc/%d/fd/%s" % (child, fd))
                         for fd in os.listdir("/proc/%d/fd" % child)]
            tcp = [t for t in child_fds if t.startswith("socket:") and t[8:-1] not in unix_inodes]
            self.assertTrue(tcp, child_fds)
        finally:
            c.send("QUIT")
            c.close()
        log = self.responder.log_text()
        self.assertIn("privsep_user _mpasswdd does not exist; the network child runs as nobody",
                      log)

    def test_killing_the_child_ends_the_parent(self):
        c, parent, child = self.session()
        os.kill(child, signal.SIGKILL)
        self.assertTrue(wait_gone(parent), "the parent outlived its child")
        self.assertEqual(c.sock.recv(100), b"")
        c.close()
        self.assertIn("privsep: the network child was killed by signal 9",
                      self.responder.log_text())

    def test_killing_the_parent_ends_the_child(self):
        c, parent, child = self.session()
        os.kill(parent, signal.SIGKILL)
        self.assertTrue(wait_gone(child), "the child outlived its parent")
        c.close()

    @unittest.skipUnless(os.geteuid() == 0, "reading another process's memory needs root")
    def test_no_secret_hash_in_the_childs_memory_after_auth(self):
        c, parent, child = self.session()
        try:
            self.assertEqual(c.send("AUTH " + SECRET, shown="AUTH ***"),
                             "250 authenticated as ctl")
            self.assertTrue(c.send("VRFY root").startswith("530 "))
            salt = self.hash.split("$")[3]
            child_mem = memory(child)
            parent_mem = memory(parent)
        finally:
            c.send("QUIT")
            c.close()
        # The reader works: the HELO name the child got is there, and the
        # hash is where it belongs.
        self.assertIn(MARKER.encode(), child_mem)
        self.assertIn(self.hash.encode(), parent_mem)
        self.assertNotIn(self.hash.encode(), child_mem)
        self.assertNotIn(salt.encode(), child_mem)
        self.assertNotIn(self.hash.split("$")[4].encode(), child_mem)

    @unittest.skipUnless(os.geteuid() == 0, "reading another process's memory needs root")
    def test_no_verifier_in_the_childs_memory_after_scram(self):
        import base64
        c, parent, child = self.session()
        try:
            self.assertEqual(c.scram("ctl", SECRET), "250 authenticated as ctl")
            self.assertTrue(c.send("VRFY root").startswith("530 "))
            child_mem = memory(child)
            parent_mem = memory(parent)
        finally:
            c.send("QUIT")
            c.close()
        # StoredKey and ServerKey, as text and as octets; the salt is sent
        # to the client, so it may be in the child.
        stored, server = self.verifier.split("$")[2].split(":")
        self.assertIn(MARKER.encode(), child_mem)
        self.assertIn(self.verifier.encode(), parent_mem)
        self.assertNotIn(self.verifier.encode(), child_mem)
        for key in (stored, server):
            self.assertNotIn(key.encode(), child_mem)
            self.assertNotIn(base64.b64decode(key), child_mem)

    @unittest.skipUnless(os.geteuid() == 0, "privsep_directory is checked only as root")
    def test_an_unusable_privsep_directory_refuses_the_connection(self):
        writable = os.path.join(self.dir, "writable")
        os.mkdir(writable)
        os.chmod(writable, 0o777)
        full = os.path.join(self.dir, "full")
        os.mkdir(full, 0o755)
        open(os.path.join(full, "x"), "w").close()
        for name, folder, why in [
                ("missing", os.path.join(self.dir, "missing"), "No such file or directory"),
                ("writable", writable, "must be a folder owned by root and not writable"),
                ("full", full, "must be empty")]:
            conf = self.config(name + ".conf", "privsep_directory = %s\n" % folder)
            r = Responder(MPASSWDD, conf)
            try:
                with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
                    s.sendall(b"HELO x\r\n")
                    got = s.makefile("rb").readline()
                self.assertTrue(got.startswith(b"421 ") and got.endswith(
                    b" service not available (configuration error)\r\n"), got)
            finally:
                r.stop()
            self.assertIn("privsep_directory: %s: %s" % (folder, why), r.log_text(), name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
