#!/usr/bin/env python3
"""Benchmark (not a test): the responder's start-up and memory against
poppassd's, one connection per process as inetd runs them.

Each run: a TCP connection on 127.0.0.1 is made and accepted here, the
server is started with the accepted socket as fds 0 and 1 (as inetd and
systemd's Accept=yes do; posix_spawn, so the spawn itself costs little),
and the time from just before the spawn to the first full line from the
server (its banner) is taken: "exec-to-banner". At the banner the PSS of
the server's processes is read from /proc/PID/smaps_rollup (mpasswdd: the
privileged parent plus the network child, summed). The peak RSS is the
largest VmHWM of the server's processes, read at the banner and again
after the reply to QUIT (poppassd takes "quit" as a user name it refuses,
and is gone by then: its figure is the one at its banner, where it waits
for input). The two servers are interleaved run by run, so that
the machine's load falls on both alike; medians are printed.

mpasswdd runs as it does in production: as root, privilege-separated
(the network child chrooted into an empty folder, privsep_user = nobody,
the seccomp filter), with a configuration that accepts 127.0.0.1
(`tls = no`, the default; --tls measures `tls = yes` too, with a
throwaway certificate). poppassd is not in Debian: build poppassd-ceti
(one C file and -lpam) and give its path, as for bench/p1.py. Without it
only mpasswdd's figures are printed.

usage: bench/startup.py BUILD_DIR [--poppassd PATH] [-n N] [--tls]
                        [--also LABEL=BUILD_DIR ...]
       (root; BUILD_DIR may also be the path of an installed mpasswdd,
       which then loads the installed TLS plug-in)
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
from mctp_client import privsep_directory, verifier  # noqa: E402


def family(pid):
    """pid and its children."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [pid] + [int(p) for p in f.read().split()]
    except OSError:
        return [pid]


def field_kib(path, name):
    """A "Name:  N kB" line of a /proc file; 0 when the process is gone."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    """PSS of pid and of its children (KiB), summed."""
    return sum(field_kib("/proc/%d/smaps_rollup" % p, "Pss:") for p in family(pid))


def peak_kib(pid):
    """The largest VmHWM (peak RSS since exec) of pid and its children.
    Not wait4's ru_maxrss: that counts this Python's pages too, which the
    spawned process shared before its exec."""
    return max(field_kib("/proc/%d/status" % p, "VmHWM:") for p in family(pid))


def one_run(argv, quit_line, tls_context=None, env=None):
    """(exec-to-banner seconds, peak RSS KiB, PSS KiB at the banner).
    poppassd takes "quit" at its user prompt and exits 1: only mpasswdd's
    exit status is checked."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        actions = [(os.POSIX_SPAWN_DUP2, server.fileno(), 0),
                   (os.POSIX_SPAWN_DUP2, server.fileno(), 1),
                   (os.POSIX_SPAWN_DUP2, devnull, 2)]
        start = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env or {}, file_actions=actions)
    finally:
        server.close()
        os.close(devnull)
    try:
        if tls_context is not None:
            client = tls_context.wrap_socket(client, server_hostname="localhost")
        f = client.makefile("rwb", buffering=0)
        banner = f.readline()
        elapsed = time.perf_counter() - start
        pss = pss_kib(pid)
        hwm = peak_kib(pid)
        if not banner[:1] == b"2":
            raise SystemExit("%s: no banner but %r" % (argv[0], banner))
        f.write(quit_line)
        f.readline()
        hwm = max(peak_kib(pid), hwm)
        f.close()  # else the socket stays open behind the file object
    finally:
        client.close()
        _, status = os.waitpid(pid, 0)
    if status != 0 and "poppassd" not in argv[0]:
        raise SystemExit("%s exited with status %#x" % (argv[0], status))
    return elapsed, hwm, pss


def make_config(mpasswdd, scratch, tls):
    empty = privsep_directory(scratch)
    state = os.path.join(scratch, "state")
    os.mkdir(state, 0o700)
    line = verifier(mpasswdd, "startup-bench-secret-1")
    conf = os.path.join(scratch, "mpasswdd.conf")
    text = ("host_name = bench\nstate_directory = %s\nprivsep_directory = %s\n"
            "privsep_user = nobody\n" % (state, empty))
    if tls:
        key, cert = os.path.join(scratch, "key.pem"), os.path.join(scratch, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        text += "tls = yes\ntls_certificate = %s\ntls_key = %s\n" % (cert, key)
    text += "[controller bench]\nfrom = 127.0.0.1\nsecret_verifier = %s\n" % line
    with open(conf, "w") as f:
        f.write(text)
    os.chmod(conf, 0o600)
    return conf


def summary(name, runs, anchor=None):
    t = statistics.median(r[0] for r in runs) * 1000
    rss = statistics.median(r[1] for r in runs) / 1024
    pss = statistics.median(r[2] for r in runs) / 1024
    line = "  %-26s %7.2f ms %s  %6.2f MiB %s  %6.2f MiB %s" % (
        name, t, "        " if anchor is None else "(%5.2fx)" % (t / anchor[0]),
        rss, "        " if anchor is None else "(%5.2fx)" % (rss / anchor[1]),
        pss, "        " if anchor is None else "(%5.2fx)" % (pss / anchor[2]))
    print(line)
    return t, rss, pss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build")
    ap.add_argument("--poppassd")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--tls", action="store_true", help="also mpasswdd with tls = yes")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=BUILD_DIR",
                    help="another mpasswdd (an older build) in the same interleaved runs")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/startup.py: needs root (mpasswdd's privilege separation, as installed)")
        return 2
    scratch = tempfile.mkdtemp(prefix="startup-")
    servers = {}
    for label, build in [("mpasswdd", a.build)] + [x.split("=", 1) for x in a.also]:
        mpasswdd, env = os.path.abspath(build), {}
        if os.path.isdir(mpasswdd):
            plugin = os.path.join(mpasswdd, "responder", "mpasswdd-tls.so")
            env = {"MPASSWDD_TLS_PLUGIN": plugin} if os.path.exists(plugin) else {}
            mpasswdd = os.path.join(mpasswdd, "responder", "mpasswdd")
        conf_dir = tempfile.mkdtemp(dir=scratch)
        servers[label] = ([mpasswdd, "-c", make_config(mpasswdd, conf_dir, False)],
                          b"QUIT\r\n", None, env)
        if a.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            tls_dir = os.path.join(conf_dir, "tls")
            os.mkdir(tls_dir)
            servers[label + " tls = yes"] = (
                [mpasswdd, "-c", make_config(mpasswdd, tls_dir, True)], b"QUIT\r\n", ctx, env)
    if a.poppassd:
        servers["poppassd"] = ([os.path.abspath(a.poppassd)], b"quit\r\n", None, None)
    runs = {name: [] for name in servers}
    for name, server in servers.items():  # warm the page cache
        for _ in range(5):
            one_run(*server)
    for _ in range(a.n):
        for name, server in servers.items():
            runs[name].append(one_run(*server))
    subprocess.run(["rm", "-rf", scratch], check=True)
    print("Start-up: exec-to-banner, peak RSS and PSS at the banner; medians of %d runs "
          "each, interleaved" % a.n)
    print("  %-26s %-19s %-19s %s" % ("", "exec-to-banner", "peak RSS", "PSS (all processes)"))
    anchor = summary("poppassd", runs.pop("poppassd")) if a.poppassd else None
    for name, r in runs.items():
        summary(name, r, anchor)
    if anchor:
        print("  (x): against poppassd; issue 15 asks <= 2x for the time and <= 1.0x for "
              "peak RSS")
    else:
        print("  no --poppassd given: the anchor is missing, no ratio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
