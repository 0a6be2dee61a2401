#!/usr/bin/env python3
"""Benchmark (not a test): mpasswd against N socket-activated responders on
127.0.0.1 ports, for N = 1, 10, 100, 500. Prints, per N, the wall time and
peak memory (max RSS) of one mpasswd run changing a password on all N, and
the wall time of a shell loop of N single-target runs, with the ratio.

The targets have a cheap stack on purpose: pam_matrix as the password
store and the controller secret hashed at the lowest yescrypt cost. On a
2-core machine 500 targets hashing with yescrypt and pam_unix would measure
the targets, not the controller. Each target is still a real mpasswdd
process per connection (systemd-socket-activate --inetd, pam_wrapper, a
private /tmp), so the figures include 2N process starts on this machine.

usage: bench/fanout.py BUILD_DIR [N ...]   (root, or unprivileged user
namespaces, for the private /tmp of each responder)"""
import os
import resource
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "e2e"))
from fleet import Fleet  # noqa: E402


def pkg(*args):
    return subprocess.run(["pkg-config"] + list(args), capture_output=True, text=True,
                          check=True).stdout.strip()


def timed(cmd, stdin):
    """Runs cmd; returns (seconds, max RSS in KiB, exit status, CPU seconds
    of the process itself: user + system)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    proc.stdin.write(stdin.encode())
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (time.monotonic() - start, usage.ru_maxrss, proc.returncode,
            usage.ru_utime + usage.ru_stime)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    sizes = [int(n) for n in sys.argv[2:]] or [1, 10, 100, 500]
    mpasswd = os.path.join(build, "cli", "mpasswd")
    env = {"MPASSWDD": os.path.join(build, "responder", "mpasswdd"),
           "PAM_WRAPPER_LIB": pkg("--libs", "pam_wrapper"),
           "NSS_WRAPPER_LIB": pkg("--libs", "nss_wrapper"),
           "PAM_MATRIX_MODULE": pkg("--variable=modules", "pam_wrapper") + "/pam_matrix.so"}
    # 500 listening responders need file descriptors (one each, here).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    print("mpasswd fan-out benchmark: %d CPU cores, parallel = 64 (the default)"
          % os.cpu_count())
    print("%5s  %10s  %9s  %11s  %14s  %16s  %10s" % (
        "N", "one run s", "peak KiB", "mpasswd CPU", "all ok", "loop of N runs s", "loop/one"))
    rows = []
    for n in sizes:
        fleet = Fleet(env, n, "Bench-Secret-1")
        try:
            cmd = [mpasswd, "-c", fleet.config, "--stdin", "-q", "alice"]
            timed(cmd, "Warm-Up-Pw-1\n")  # page cache, first process starts
            fleet.reset()
            wall, rss, status, cpu = timed(cmd, "Bench-N3w-Pw!\n")
            ok = sum(fleet.password_of(i, "alice") == "Bench-N3w-Pw!" for i in range(n))
            fleet.reset()
            start = time.monotonic()
            for target in fleet.targets():
                _, _, t_status, _ = timed([mpasswd, "-c", fleet.config, "--stdin", "-q",
                                             "-H", target, "alice"], "Bench-N3w-Pw!\n")
                if t_status != 0:
                    print("single run failed for", target, file=sys.stderr)
            loop = time.monotonic() - start
        finally:
            fleet.stop()
            fleet.remove()
        rows.append((n, wall, rss, ok, loop))
        print("%5d  %10.3f  %9d  %10.3fs  %9d/%-4d  %16.3f  %9.1fx"
              % (n, wall, rss, cpu, ok, n, loop, loop / wall), flush=True)
    if rows and rows[0][0] == 1:
        one = rows[0][1]
        for n, wall, _, _, _ in rows[1:]:
            print("N=%d took %.2f times the wall time of N=1" % (n, wall / one))


if __name__ == "__main__":
    main()
