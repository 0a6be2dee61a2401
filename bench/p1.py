#!/usr/bin/env python3
"""Benchmark P1 (not a test): one password change, one session, through
socket activation, mpasswdd against poppassd on the same PAM stack.

As root, in a private mount and network namespace with an overlay over
/etc (the machine's own files are untouched, as in tests/e2e/real_pam.py):
a user with a yescrypt password in shadow, the shipped /etc/pam.d/mpasswdd
(pam_pwquality enforce_for_root, then common-password: pam_unix), and for
poppassd the same password stack behind pam_unix for its auth phase.
Both run per connection under `systemd-socket-activate --inetd` on
127.0.0.1; each session is a real change of the user's password:

  mpasswdd:  220, EHLO, AUTH SCRAM-SHA-256 (client-first, 334, the proof,
             334 with the server's signature, checked, the empty line, 250;
             the verifier made by mpasswdd --new-secret: 4096 iterations,
             the controller's PBKDF2 derived once per run, as mpasswd's
             engine does), CHPW, DATA, the password, ".", QUIT
  poppassd:  200, user, pass OLD (pam_authenticate: yescrypt), newpass
             NEW (pam_chauthtok), quit

Prints milliseconds per session (median and mean of N, alternating the
two servers so that the machine's load falls on both alike) and the ratio
mpasswdd/poppassd. The target of issue 12 is at most 0.6.

poppassd is not in Debian: build one (for instance poppassd-ceti, one C
file and -lpam) and give its path. Without it only mpasswdd's figure is
printed.

usage: bench/p1.py BUILD_DIR [--poppassd PATH] [-n N]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
source = os.path.dirname(here)
sys.path.insert(0, os.path.join(source, "tests", "e2e"))
from mctp_client import ScramClient, b64, unb64  # noqa: E402
import real_pam  # noqa: E402

NAME = "bench"
USER = "p1user"


class Server:
    def __init__(self, argv, port):
        self.port = port
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
                                      "-a", "--inetd"] + argv,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            self.log.seek(0)
            if b"Listening on" in self.log.read():
                return
            time.sleep(0.02)
        raise SystemExit("server did not start: %r" % argv)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def converse(port, script):
    """Sends each line after reading one reply line (multi-line replies
    are not used here); returns the replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rwb", buffering=0)
        replies = [f.readline()]
        for line in script:
            f.write(line.encode() + b"\r\n")
            if line == "DATA":
                replies.append(f.readline())
                continue
            replies.append(f.readline())
        return [r.decode("ascii", "replace").strip() for r in replies]


def mpasswdd_session(port, new, secret, cache):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rwb", buffering=0)

        def ask(line):
            f.write(line.encode() + b"\r\n")
            return f.readline().decode("ascii", "replace").strip()
        replies = [f.readline().decode().strip()]
        f.write(b"EHLO bench\r\n")
        while True:
            line = f.readline().decode().strip()
            if line[3:4] != "-":
                break
        c = ScramClient(NAME, secret, cache=cache)
        first = ask("AUTH SCRAM-SHA-256 " + b64(c.first()))
        final = ask(b64(c.final(unb64(first[4:]))))
        if not c.verify(unb64(final[4:])):
            raise SystemExit("mpasswdd did not prove itself: %r" % final)
        replies.append(ask(""))
        for line in ["CHPW " + USER, "DATA", new, ".", "QUIT"]:
            replies.append(ask(line))
    if not (replies[0].startswith("220") and replies[1].startswith("250") and
            replies[5].startswith("250")):
        raise SystemExit("mpasswdd session failed: %r" % replies)


def poppassd_session(port, old, new):
    r = converse(port, ["user " + USER, "pass " + old, "newpass " + new, "quit"])
    if not r[3].startswith("200"):
        raise SystemExit("poppassd session failed: %r" % r)


def inside(build, poppassd, n):
    # pam_pwquality: the host's, or the copy scripts/install-deps unpacked.
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                               text=True).stdout.strip()
    os.environ.setdefault("PWQUALITY_MODULE", os.path.join(
        source, ".deps/pwquality/lib", multiarch, "security/pam_pwquality.so"))
    real_pam.setup_namespace()
    scratch = tempfile.mkdtemp(prefix="p1-")
    subprocess.run(["useradd", "--create-home", "--home-dir", scratch + "/home", USER],
                   check=True)
    old = "Bench-Start-Passw0rd!"
    subprocess.run(["chpasswd"], input=("%s:%s\n" % (USER, old)).encode(), check=True)
    mpasswdd = os.path.join(build, "responder", "mpasswdd")
    with open(os.path.join(source, "packaging/pam.d/mpasswdd")) as f:
        stack = f.read()
    with open("/etc/pam.d/mpasswdd", "w") as f:
        f.write(stack)
    with open("/etc/pam.d/poppassd", "w") as f:
        f.write("auth required pam_unix.so\naccount required pam_unix.so\n" + stack)
    conf = os.path.join(scratch, "mpasswdd.conf")
    empty = os.path.join(scratch, "empty")
    os.mkdir(empty, 0o755)
    # One command on the control host: the secret, and the target's line.
    secret_file = os.path.join(scratch, "secret")
    verifier_line = subprocess.run([mpasswdd, "--new-secret", secret_file], capture_output=True,
                                   text=True, check=True).stdout.strip()
    with open(secret_file) as f:
        secret = f.read().strip()
    with open(conf, "w") as f:
        f.write("host_name = bench\nstate_directory = %s/state\nprivsep_directory = %s\n"
                "[controller %s]\nfrom = 127.0.0.1\n%s\n" % (scratch, empty, NAME, verifier_line))
    os.chmod(conf, 0o600)
    cache = {}
    servers = {"mpasswdd": Server([mpasswdd, "-c", conf], 4242)}
    if poppassd:
        servers["poppassd"] = Server([poppassd], 106)
    times = {name: [] for name in servers}
    try:
        for i in range(n):
            for name in servers:
                new = "Bench-%s-%d-Xq7#pw" % (name[:3], i)
                start = time.monotonic()
                if name == "mpasswdd":
                    mpasswdd_session(4242, new, secret, cache)
                else:
                    poppassd_session(106, old, new)
                times[name].append(time.monotonic() - start)
                old = new
    finally:
        for s in servers.values():
            s.stop()
    print("P1: one change through socket activation, real pam_unix + pam_pwquality, "
          "%d sessions each" % n)
    for name, t in times.items():
        print("  %-9s median %6.1f ms  mean %6.1f ms" % (
            name, 1000 * statistics.median(t), 1000 * statistics.mean(t)))
    if "poppassd" in times:
        ratio = statistics.median(times["mpasswdd"]) / statistics.median(times["poppassd"])
        print("  ratio mpasswdd/poppassd (medians): %.2fx (issue 12 asks <= 0.6x)" % ratio)
    else:
        print("  no --poppassd given: the anchor is missing, no ratio")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("--poppassd")
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    poppassd = os.path.abspath(a.poppassd) if a.poppassd else None
    if a.inside:
        inside(build, poppassd, a.n)
        return 0
    if os.geteuid() != 0:
        print("bench/p1.py: needs root (a private namespace; pam_unix writes /etc/shadow)")
        return 2
    before = real_pam.snapshot()
    rc = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "--",
                         sys.executable, os.path.abspath(__file__), "--inside", build, "-n",
                         str(a.n)] + (["--poppassd", poppassd] if poppassd else [])).returncode
    if real_pam.snapshot() != before:
        print("the machine's own /etc changed: this must not happen")
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
