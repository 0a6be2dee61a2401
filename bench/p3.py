#!/usr/bin/env python3
"""Benchmark P3 (not a test): one `mpasswd --batch` run changing 100 users
on one target, against chpasswd changing the same 100 users on the same
PAM stack, interleaved in one run.

As root, in a private mount and network namespace with an overlay over
/etc (the machine's own files are untouched, as in tests/e2e/real_pam.py
and bench/p1.py): USERS users with yescrypt passwords in shadow, the
shipped /etc/pam.d/mpasswdd (pam_pwquality enforce_for_root, then
common-password: pam_unix) and /etc/pam.d/mpasswdd-check (TEST's:
pam_pwquality, pam_permit), and for chpasswd its own PAM service
(/etc/pam.d/chpasswd, chpasswd's fixed name) holding the same password
stack as /etc/pam.d/mpasswdd. Both sides hash with the same pam_unix line
(common-password's, so the same yescrypt cost) and rewrite /etc/shadow
once per user (pam_unix's lock, a temporary file, fsync, rename).

mpasswdd runs per connection under `systemd-socket-activate --inetd` on
127.0.0.1. Each round times, in turn (the order rotates every round so
that the machine's load falls on all alike), one process run each:

  batch        mpasswd --batch: TEST for every user in one session, then
               CHPW for every user in a second session (the default)
  best-effort  mpasswd --batch --best-effort: the change session only
  chpasswd     chpasswd: pam_start, pam_chauthtok, pam_end per user

each with USERS fresh `user:password` lines on standard input, measured
from the process's start to its exit (mpasswd's SCRAM key derivation,
one per run, is counted). After each run one user's shadow entry is
checked against the password just set, and the run stops if the two
sides' hashes do not carry the same yescrypt parameters (the fairness of
the comparison); speed is never asserted.

Prints the median and mean of N rounds per command and the ratios of
medians to chpasswd's. Issue 14 asks batch/chpasswd <= 1.0x.

With --cpu CPU every process of the benchmark (the namespace, mpasswd,
mpasswdd, chpasswd) runs on that one CPU: on a machine whose other CPUs
are busy with other work, the hashing then runs on the same CPU for both
sides. It puts mpasswd's processes (controller, network child, monitor)
on one CPU with each other, where chpasswd is one process.

usage: bench/p3.py BUILD_DIR [-n N] [--users N] [--cpu CPU]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated in 3.11, still there in Debian 12's 3.11

here = os.path.dirname(os.path.abspath(__file__))
source = os.path.dirname(here)
sys.path.insert(0, os.path.join(source, "tests", "e2e"))
import real_pam  # noqa: E402
from p1 import Server  # noqa: E402  (systemd-socket-activate --inetd on 127.0.0.1:PORT)

NAME = "bench"
PORT = 4242
COMMANDS = ("batch", "best-effort", "chpasswd")


def shadow_hash(user):
    with open("/etc/shadow") as f:
        for line in f:
            fields = line.split(":")
            if fields[0] == user:
                return fields[1]
    return None


def check_set(user, password, what):
    h = shadow_hash(user)
    if not h or not h.startswith("$y$") or crypt.crypt(password, h) != h:
        raise SystemExit("%s did not set %s's password (hash %r)" % (what, user, (h or "")[:8]))
    return "$".join(h.split("$")[:3]) + "$"  # $y$ and the cost, not the salt


def inside(build, n, count):
    multiarch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                               text=True).stdout.strip()
    os.environ.setdefault("PWQUALITY_MODULE", os.path.join(
        source, ".deps/pwquality/lib", multiarch, "security/pam_pwquality.so"))
    real_pam.setup_namespace()
    scratch = tempfile.mkdtemp(prefix="p3-")
    users = ["p3u%03d" % i for i in range(count)]
    for u in users:
        subprocess.run(["useradd", "--no-create-home", u], check=True)
    subprocess.run(["chpasswd"], check=True, input="".join(
        "%s:P3-Start-%s-Passw0rd!\n" % (u, u) for u in users).encode())

    mpasswdd = os.path.join(build, "responder", "mpasswdd")
    mpasswd = os.path.join(build, "cli", "mpasswd")
    for name in ("mpasswdd", "mpasswdd-check"):
        with open(os.path.join(source, "packaging/pam.d", name)) as f:
            text = f.read()
        with open(os.path.join("/etc/pam.d", name), "w") as f:
            f.write(text)
    # chpasswd's own service: the same password stack as mpasswdd's.
    with open(os.path.join(source, "packaging/pam.d/mpasswdd")) as f:
        stack = f.read()
    with open("/etc/pam.d/chpasswd", "w") as f:
        f.write("# bench/p3.py: the same password stack as /etc/pam.d/mpasswdd\n" + stack)

    empty = os.path.join(scratch, "empty")
    os.mkdir(empty, 0o755)
    secret_file = os.path.join(scratch, "secret")
    verifier_line = subprocess.run([mpasswdd, "--new-secret", secret_file], capture_output=True,
                                   text=True, check=True).stdout.strip()
    conf = os.path.join(scratch, "mpasswdd.conf")
    with open(conf, "w") as f:
        f.write("host_name = bench\nstate_directory = %s/state\nprivsep_directory = %s\n"
                "[controller %s]\nfrom = 127.0.0.1\n%s\n" % (scratch, empty, NAME, verifier_line))
    os.chmod(conf, 0o600)
    hosts = os.path.join(scratch, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1:%d\n" % PORT)
    cconf = os.path.join(scratch, "mpasswd.conf")
    with open(cconf, "w") as f:
        # The run journal on, as by default, but in the scratch folder:
        # never this machine's own /var/lib/mpasswd.
        f.write("name = %s\nsecret_file = %s\nhosts = %s\njournal_directory = %s\n"
                % (NAME, secret_file, hosts, os.path.join(scratch, "journal")))
    os.chmod(cconf, 0o600)

    argv = {"batch": [mpasswd, "-c", cconf, "--batch"],
            "best-effort": [mpasswd, "-c", cconf, "--batch", "--best-effort"],
            "chpasswd": ["chpasswd"]}
    server = Server([mpasswdd, "-c", conf, "--log-stderr"], PORT)
    times = {c: [] for c in COMMANDS}
    params = {c: set() for c in COMMANDS}
    try:
        for i in range(n):
            order = COMMANDS[i % 3:] + COMMANDS[:i % 3]
            for c in order:
                # Never the user's name in it (pam_pwquality's usercheck).
                passwords = {u: "P3-%s-%d-k%03d-Xq7#pw" % (c[:3], i, k)
                             for k, u in enumerate(users)}
                lines = "".join("%s:%s\n" % (u, passwords[u]) for u in users).encode()
                start = time.monotonic()
                r = subprocess.run(argv[c], input=lines, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
                times[c].append(time.monotonic() - start)
                if r.returncode != 0:
                    raise SystemExit("%s failed (exit %d): %s%s" % (
                        c, r.returncode, r.stdout.decode(errors="replace")[-2000:],
                        r.stderr.decode(errors="replace")[-2000:]))
                params[c].add(check_set(users[i % count], passwords[users[i % count]], c))
    finally:
        server.stop()
    if len(set().union(*params.values())) != 1:
        raise SystemExit("not the same hash on both sides: %r" % params)
    print("P3: %d users, one target, real pam_unix + pam_pwquality, %d interleaved rounds, "
          "every hash %s" % (count, n, params["chpasswd"].pop()))
    base = statistics.median(times["chpasswd"])
    for c in COMMANDS:
        t = times[c]
        print("  %-12s median %7.1f ms  mean %7.1f ms  %5.2f ms/user" % (
            c, 1000 * statistics.median(t), 1000 * statistics.mean(t),
            1000 * statistics.median(t) / count))
    for c in ("batch", "best-effort"):
        print("  ratio %s/chpasswd (medians): %.2fx%s" % (
            c, statistics.median(times[c]) / base,
            " (issue 14 asks <= 1.0x)" if c == "batch" else ""))
    print("  TEST phase (batch - best-effort, medians): %.2f ms/user" % (
        1000 * (statistics.median(times["batch"]) - statistics.median(times["best-effort"]))
        / count))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--cpu", type=int, help="run every process on this one CPU")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if a.n < 1 or not 1 <= a.users <= 1000:
        ap.error("-n must be >= 1, --users 1 to 1000")
    if a.inside:
        inside(build, a.n, a.users)
        return 0
    if os.geteuid() != 0:
        print("bench/p3.py: needs root (a private namespace; pam_unix writes /etc/shadow)")
        return 2
    if a.cpu is not None:
        if a.cpu not in os.sched_getaffinity(0):
            ap.error("--cpu %d: not a CPU this process may run on (%s)"
                     % (a.cpu, sorted(os.sched_getaffinity(0))))
        os.sched_setaffinity(0, {a.cpu})  # inherited by every process started below
        print("every process on CPU %d" % a.cpu)
    # A benchmark has no time limit of its own: -n sets how long it runs.
    return real_pam.isolated(None, ["--mount", "--net"],
                             [sys.executable, os.path.abspath(__file__), "--inside", build,
                              "-n", str(a.n), "--users", str(a.users)], timeout=None)


if __name__ == "__main__":
    sys.exit(main())
