#!/usr/bin/env python3
"""Benchmark (not a test): P1, one full password change per connection
through socket activation. N sequential sessions (connect, banner, EHLO,
AUTH SCRAM-SHA-256, CHPW, DATA, the password, ".", QUIT; the client's
SCRAM work, a PBKDF2 of 4096 iterations in Python, is counted too)
against one mpasswdd behind
systemd-socket-activate --inetd, on the fleet's stack (bench/fanout.py,
tests/e2e/fleet.py): pam_wrapper with pam_matrix as the password store, a
private /tmp, the controller's secret_verifier. Each
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
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "e2e"))
from fleet import CONTROLLER, Fleet  # noqa: E402
from mctp_client import Client  # noqa: E402

SECRET = "Bench-Secret-1"
PASSWORDS = ("Bench-Passw0rd-A1", "Bench-Passw0rd-B2")


def pkg(*args):
    return subprocess.run(["pkg-config"] + list(args), capture_output=True, text=True,
                          check=True).stdout.strip()


def mctp_session(port, password):
    c = Client("127.0.0.1", port)
    try:
        expect(c.reply(), "220")
        expect(c.ehlo("bench.example")[-1], "250")
        expect(c.scram(CONTROLLER, SECRET), "250")
        expect(c.send("CHPW alice"), "250")
        expect(c.send("DATA"), "354")
        expect(c.send(password), "355")
        expect(c.send("."), "250")
        expect(c.send("QUIT"), "221")
    finally:
        c.close()


def expect(reply, code):
    if not reply.startswith(code):
        raise RuntimeError("expected %s, got %r" % (code, reply))


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
