#!/usr/bin/env python3
"""Benchmark (not a test): how the controller alone fares with thousands of
targets. One stand-in process (bench/standin.py) plays every target on
127.0.0.1 with an emulated round trip (--rtt, default 50 ms, before every
reply), so the figures are the controller's: the built mpasswd, and
pam_mctp.so loaded by real libpam (under pam_wrapper, with pam_matrix as
the local store, through tests/tools/pam_chauthtok) in a passwd-like
stack, both with default settings (parallel = auto, default timeouts).

Prints, per way in and per number of targets: the wall time (median of
--repeat runs for the small counts), wall(N) / wall(1 target) (goal for
500 targets: at or under 2x), the peak RSS of the process (goal for
10,000 targets: at or under 128 MiB), and its CPU time per target. Every
run must change the password on every target (counted by the stand-in);
the figures are printed, never asserted. The stand-in's own CPU time is
printed too: where it comes near the wall time, the stand-in (one Python
process), not the controller, sets the pace.

The controller is started with a soft RLIMIT_NOFILE of 1024, as a login
shell has, so `parallel = auto` has to raise it.

usage: bench/fleet_scale.py [--rtt MS] [--repeat R] [--big N] [--no-pam]
                            [BUILD_DIR]"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
SECRET = "Fleet-Scale-Secret-1"
NAME = "bench.example"
OLD = "Local-Old-Pw-1"
NEW = "Fleet-N3w-Pw-2"


def pkg(*args):
    return subprocess.run(["pkg-config"] + list(args), capture_output=True, text=True,
                          check=True).stdout.strip()


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def login_limits():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


class Standin:
    def __init__(self, n, rtt, workdir):
        self.hosts = os.path.join(workdir, "hosts-all")
        secret = os.path.join(workdir, "standin-secret")
        write(secret, SECRET + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(here, "standin.py"), "-n", str(n), "--rtt", str(rtt),
             "--secret-file", secret, "--controller", NAME, "--hosts-out", self.hosts],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready %d" % n:
            raise RuntimeError("the stand-in did not start: %r" % line)
        with open(self.hosts) as f:
            self.targets = f.read().split()

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def stats(self):
        return json.loads(self.ask("stats"))

    def cpu(self):
        """The stand-in's CPU seconds so far (user + system)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Runner:
    def __init__(self, build, standin, workdir):
        self.build, self.standin, self.dir = build, standin, workdir
        self.config = os.path.join(workdir, "mpasswd.conf")
        write(os.path.join(workdir, "secret"), SECRET + "\n")
        # The run journal in the work folder, never this machine's own.
        write(self.config, "name = %s\nsecret_file = %s\nhosts = %s\njournal_directory = %s\n"
              % (NAME, os.path.join(workdir, "secret"), standin.hosts,
                 os.path.join(workdir, "journal")))
        self.services = os.path.join(workdir, "services")
        os.mkdir(self.services)
        self.passdb = os.path.join(workdir, "local-passdb")
        self.pam_env = dict(os.environ, LD_PRELOAD=pkg("--libs", "pam_wrapper"), PAM_WRAPPER="1",
                            PAM_WRAPPER_SERVICE_DIR=self.services, PAM_WRAPPER_USE_SYSLOG="0",
                            PAM_WRAPPER_DEBUGLEVEL="0")
        write(os.path.join(self.services, "other"), "password required pam_deny.so\n", 0o644)

    def hosts(self, n):
        path = os.path.join(self.dir, "hosts-%d" % n)
        if not os.path.exists(path):
            write(path, "".join(t + "\n" for t in self.standin.targets[:n]), 0o644)
        return path

    def run(self, via, n):
        """One change on the first n targets: (wall s, peak RSS KiB, CPU s)."""
        if via == "mpasswd":
            cmd = [os.path.join(self.build, "cli", "mpasswd"), "-c", self.config,
                   "--hosts", self.hosts(n), "--stdin", "--quiet", "alice"]
            stdin, env = NEW + "\n", None
        else:
            write(os.path.join(self.services, "passwd-mctp"),
                  "password [success=1 default=ignore] %s/pam_matrix.so passdb=%s\n"
                  "password requisite pam_deny.so\n"
                  "password required pam_permit.so\n"
                  "password required %s config=%s hosts=%s use_authtok\n"
                  % (pkg("--variable=modules", "pam_wrapper"), self.passdb,
                     os.path.join(self.build, "pam_mctp", "pam_mctp.so"), self.config,
                     self.hosts(n)), 0o644)
            write(self.passdb, "alice:%s:passwd-mctp\n" % OLD)
            cmd = [os.path.join(self.build, "tests", "pam-chauthtok"), "passwd-mctp", "alice",
                   "silent"]
            stdin, env = "%s\n%s\n%s\n" % (OLD, NEW, NEW), self.pam_env
        self.standin.ask("reset")
        standin_cpu = self.standin.cpu()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, preexec_fn=login_limits)
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stats = self.standin.stats()
        if proc.returncode != 0 or stats["changed"] != n:
            raise RuntimeError("%s on %d targets: exit %d, %d changed: %s"
                               % (via, n, proc.returncode, stats["changed"],
                                  out.decode(errors="replace")[-2000:]))
        return (wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, stats["peak_open"],
                self.standin.cpu() - standin_cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rtt", type=float, default=50.0, help="ms before each reply (default 50)")
    ap.add_argument("--repeat", type=int, default=3, help="runs for 1 and 500 targets")
    ap.add_argument("--big", type=int, default=10000, help="the large fleet (default 10000)")
    ap.add_argument("--no-pam", action="store_true", help="mpasswd only")
    ap.add_argument("build", nargs="?", default="build")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    workdir = tempfile.mkdtemp(prefix="fleet-scale-", dir="/var/tmp")
    standin = None
    try:
        start = time.monotonic()
        standin = Standin(args.big, args.rtt, workdir)
        print("stand-in: %d targets on 127.0.0.1 ports, %.0f ms before each reply, up in %.1f s;"
              " %d CPU cores" % (args.big, args.rtt, time.monotonic() - start, os.cpu_count()))
        print("load average before: %.2f %.2f %.2f (other work on this machine slows both "
              "sides)" % os.getloadavg())
        print("controller started with soft RLIMIT_NOFILE 1024 (as a login shell); "
              "default settings (parallel = auto)\n")
        runner = Runner(args.build, standin, workdir)
        print("| via | targets | wall | vs 1 target | at once | peak RSS | CPU per target "
              "| stand-in CPU |")
        print("|---|---|---|---|---|---|---|---|")
        for via in ["mpasswd"] + ([] if args.no_pam else ["pam_mctp"]):
            runner.run(via, 1)  # warm-up
            one = None
            sizes = [(1, args.repeat), (500, args.repeat), (args.big, 1)]
            for n, repeat in [(n, r) for n, r in sizes if n < args.big] + [(args.big, 1)]:
                runs = [runner.run(via, n) for _ in range(repeat)]
                wall = statistics.median(r[0] for r in runs)
                rss = max(r[1] for r in runs) / 1024
                cpu = statistics.median(r[2] for r in runs)
                one = one or wall
                print("| %s | %d | %.3f s | %.2fx | %d | %.1f MiB | %.3f ms | %.1f s |"
                      % (via, n, wall, wall / one, max(r[3] for r in runs), rss,
                         cpu * 1000 / n, statistics.median(r[4] for r in runs)), flush=True)
        print("\ngoals: 500 targets at or under 2x one target; %d targets at or under "
              "128 MiB peak RSS (printed, not asserted)" % args.big)
        return 0
    finally:
        if standin:
            standin.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
