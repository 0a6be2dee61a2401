#!/usr/bin/env python3
"""Benchmark (not a test): P1, one full password change per connection
through socket activation. N sequential sessions (connect, banner, HELO,
AUTH, CHPW, DATA, the password, ".", QUIT) against one mpasswdd behind
systemd-socket-activate --inetd, on the fleet's stack (bench/fanout.py,
tests/e2e/fleet.py): pam_wrapper with pam_matrix as the password store, a
private /tmp, the controller secret at the lowest yescrypt cost. Each
session is a new mpasswdd process pair (the root parent and the confined
network child). Prints sessions/s and ms per session.

The anchor of P1, poppassd on the same PAM stack, is bench/p1.py: it
needs the real pam_unix (poppassd answers PAM by pam_unix's prompt
texts), so it runs in a private namespace. This one measures the
responder alone, cheaply, many times.

The cost of the privilege separation itself is the difference between
this figure and the same run of the commit before it.

usage: bench/session.py [-n N] [BUILD_DIR]
(root, or unprivileged user namespaces, for the private /tmp)."""
import argparse
import os
import socket
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "e2e"))
from fleet import Fleet  # noqa: E402

SECRET = "Bench-Secret-1"
PASSWORDS = ("Bench-Passw0rd-A1", "Bench-Passw0rd-B2")


def pkg(*args):
    return subprocess.run(["pkg-config"] + list(args), capture_output=True, text=True,
                          check=True).stdout.strip()


class Lines:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("closed after %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("ascii", "replace")

    def ask(self, line, expect):
        self.sock.sendall(line.encode() + b"\r\n")
        got = self.reply()
        if not got.startswith(expect):
            raise RuntimeError("%r answered %r" % (line.split()[0], got))
        return got

    def close(self):
        self.sock.close()


def mctp_session(port, password):
    c = Lines(port)
    try:
        if not c.reply().startswith("220"):
            raise RuntimeError("no banner")
        c.ask("HELO bench.example", "250")
        c.ask("AUTH " + SECRET, "250")
        c.ask("CHPW alice", "250")
        c.ask("DATA", "354")
        c.ask(password, "355")
        c.ask(".", "250")
        c.ask("QUIT", "221")
    finally:
        c.close()


def run(n, one):
    """Seconds for n sessions, one after another."""
    start = time.monotonic()
    for i in range(n):
        one(i)
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=200, help="sessions per run (default 200)")
    ap.add_argument("build", nargs="?", default="build")
    args = ap.parse_args()
    env = {"MPASSWDD": os.path.join(args.build, "responder", "mpasswdd"),
           "PAM_WRAPPER_LIB": pkg("--libs", "pam_wrapper"),
           "NSS_WRAPPER_LIB": pkg("--libs", "nss_wrapper"),
           "PAM_MATRIX_MODULE": pkg("--variable=modules", "pam_wrapper") + "/pam_matrix.so"}
    fleet = Fleet(env, 1, SECRET)
    try:
        port = fleet.ports[0]
        mctp_session(port, PASSWORDS[1])  # warm-up: caches, the tally file
        seconds = run(args.n, lambda i: mctp_session(port, PASSWORDS[i % 2]))
        if fleet.password_of(0, "alice") not in PASSWORDS:
            raise RuntimeError("the password was not changed")
        ms = seconds * 1000 / args.n
        print("P1, one change per connection (socket activation, pam_matrix), %d sessions, "
              "%d CPU cores:" % (args.n, os.cpu_count()))
        print("  mpasswdd (privilege-separated)  %7.1f sessions/s  %6.2f ms/session"
              % (args.n / seconds, ms))
        print("  (the anchor, poppassd on the same real PAM stack: bench/p1.py)")
        return 0
    finally:
        fleet.stop()
        fleet.remove()


if __name__ == "__main__":
    sys.exit(main())
