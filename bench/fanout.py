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

With --rtt MS every target sits behind a relay (bench/delay_proxy.py) that
delays each direction by MS/2 milliseconds, as a network would: an MCTP
change is about 6 round trips, so this is the case where the controller's
concurrency, not the targets' CPU, decides the wall time.

usage: bench/fanout.py [--rtt MS] [--parallel P|all] [--no-loop]
                       BUILD_DIR [N ...]
(root, or unprivileged user namespaces, for the private /tmp of each
responder). --parallel all passes --parallel N for each N."""
import argparse
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


def machine_busy():
    """CPU seconds this machine has spent busy (all processes, all cores),
    from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


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


class DelayRelay:
    """bench/delay_proxy.py in front of the given ports; .ports are the
    relay's own, to give the controller."""

    def __init__(self, rtt_ms, ports):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(here, "delay_proxy.py"), str(rtt_ms / 2.0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.proc.stdin.write(" ".join(str(p) for p in ports) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().split()
        if not reply or reply[0] != "ready":
            raise RuntimeError("the delay relay did not start")
        self.ports = [int(p) for p in reply[1:]]

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rtt", type=float, default=0.0,
                    help="emulated round-trip time to each target, in ms")
    ap.add_argument("--parallel", default="64",
                    help="mpasswd --parallel; 'all' means N (default 64)")
    ap.add_argument("--no-loop", action="store_true",
                    help="skip the loop of N single-target runs")
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("sizes", nargs="*", type=int)
    args = ap.parse_args()
    build = args.build
    sizes = args.sizes or [1, 10, 100, 500]
    mpasswd = os.path.join(build, "cli", "mpasswd")
    env = {"MPASSWDD": os.path.join(build, "responder", "mpasswdd"),
           "PAM_WRAPPER_LIB": pkg("--libs", "pam_wrapper"),
           "NSS_WRAPPER_LIB": pkg("--libs", "nss_wrapper"),
           "PAM_MATRIX_MODULE": pkg("--variable=modules", "pam_wrapper") + "/pam_matrix.so"}
    # 500 listening responders need file descriptors (one each, here).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    print("mpasswd fan-out benchmark: %d CPU cores, parallel = %s, %s"
          % (os.cpu_count(), "N" if args.parallel == "all" else args.parallel,
             "emulated RTT %g ms" % args.rtt if args.rtt else "loopback, no added latency"))
    print("%5s  %10s  %9s  %11s  %12s  %9s  %16s  %9s" % (
        "N", "one run s", "peak KiB", "mpasswd CPU", "machine CPU", "all ok",
        "loop of N runs s", "loop/one"))
    rows = []
    for n in sizes:
        fleet = Fleet(env, n, "Bench-Secret-1")
        relay = None
        try:
            if args.rtt:
                relay = DelayRelay(args.rtt, fleet.ports)
                fleet.write_config(ports=relay.ports)
            parallel = str(n) if args.parallel == "all" else args.parallel
            cmd = [mpasswd, "-c", fleet.config, "--stdin", "-q", "--parallel", parallel,
                   "alice"]
            timed(cmd, "Warm-Up-Pw-1\n")  # page cache, first process starts
            fleet.reset()
            busy = machine_busy()
            wall, rss, status, cpu = timed(cmd, "Bench-N3w-Pw!\n")
            busy = machine_busy() - busy
            ok = sum(fleet.password_of(i, "alice") == "Bench-N3w-Pw!" for i in range(n))
            fleet.reset()
            loop = None
            if not args.no_loop:
                start = time.monotonic()
                for port in (relay.ports if relay else fleet.ports):
                    target = "127.0.0.1:%d" % port
                    _, _, t_status, _ = timed([mpasswd, "-c", fleet.config, "--stdin", "-q",
                                                 "-H", target, "alice"], "Bench-N3w-Pw!\n")
                    if t_status != 0:
                        print("single run failed for", target, file=sys.stderr)
                loop = time.monotonic() - start
        finally:
            if relay:
                relay.stop()
            fleet.stop()
            fleet.remove()
        rows.append((n, wall, rss, ok, loop))
        print("%5d  %10.3f  %9d  %10.3fs  %11.2fs  %4d/%-4d  %16s  %9s"
              % (n, wall, rss, cpu, busy, ok, n, "%.3f" % loop if loop else "-",
                 "%.1fx" % (loop / wall) if loop else "-"), flush=True)
    print("machine CPU: every process on this machine during the run (the "
          "responders, the relay, mpasswd), over %d cores" % os.cpu_count())
    if rows and rows[0][0] == 1:
        one = rows[0][1]
        for n, wall, _, _, _ in rows[1:]:
            print("N=%d took %.2f times the wall time of N=1" % (n, wall / one))


if __name__ == "__main__":
    main()
