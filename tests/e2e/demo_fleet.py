#!/usr/bin/env python3
"""The first part of the README demonstration: mpasswd changes alice's
password on several socket-activated responders on 127.0.0.1 at once (each
its own "host", with pam_matrix as its password store), one of which is
down, and one of which refuses alice by policy; then the same over TLS
with a throwaway CA, where one responder's certificate names another host
and gets nothing."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from fleet import Fleet, fleet_env  # noqa: E402
from pki import Pki  # noqa: E402

NEW = "Fleet-N3w-Pw!"


def main():
    mpasswd = os.environ["MPASSWD"]
    fleet = Fleet(fleet_env(), 6, "Demo-Fleet-Secret-1", {4: "deny-alice", 5: "closed"})
    try:
        with open(fleet.config) as f:
            config = f.read()
        print("== the controller's configuration (%s)" % fleet.config)
        print(config.replace(fleet.dir, "$DEMO"), end="")
        print("== the hosts file: six targets on 127.0.0.1; the fifth refuses alice by "
              "policy, nothing listens on the sixth")
        print("== $ printf '%%s\\n' '%s' | mpasswd -c $DEMO/mpasswd.conf --best-effort --stdin alice" % NEW)
        r = subprocess.run([mpasswd, "-c", fleet.config, "--best-effort", "--stdin", "alice"],
                           input=NEW + "\n", capture_output=True, text=True, timeout=120)
        print(r.stdout + r.stderr, end="")
        print("== exit status %d (3: some target unreachable before the password was sent)"
              % r.returncode)
        print("== alice's password in each target's password store")
        for i, target in enumerate(fleet.targets()):
            pw = fleet.password_of(i, "alice") if i != 5 else None
            state = ("changed" if pw == NEW else "unchanged") if pw else "(down)"
            print("  %-16s %s" % (target, state))
        print("== $ mpasswd --verify --json -H %s alice" % fleet.targets([0])[0])
        r2 = subprocess.run([mpasswd, "-c", fleet.config, "--verify", "--json", "-H",
                             fleet.targets([0])[0], "alice"], capture_output=True, text=True)
        print(r2.stdout, end="")
        good = all(fleet.password_of(i, "alice") == NEW for i in range(4))
        ok = r.returncode == 3 and good and fleet.password_of(4, "alice") != NEW
        print("ok: four targets changed at once, the refusal and the dead one reported"
              if ok else "FAILED")
        return 0 if ok and r2.returncode == 0 else 1
    finally:
        fleet.stop()
        fleet.remove()


def tls_demo(mpasswd):
    folder = tempfile.mkdtemp(prefix="mpasswd-demo-pki-", dir="/var/tmp")
    try:
        pki = Pki(folder, "demo")
        good = pki.issue("server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
        other = pki.issue("other", "/CN=other.example", "DNS:other.example")
        fleet = Fleet(fleet_env(), 3, "Demo-Tls-Secret-1", tls={0: good, 1: good, 2: other})
    except BaseException:
        shutil.rmtree(folder)
        raise
    try:
        fleet.write_config("tls_ca = %s\n" % pki.ca, options="tls")
        with open(os.path.join(fleet.dir, "hosts")) as f:
            hosts = f.read()
        print("== over TLS: three responders with tls = yes; the third's certificate "
              "names other.example")
        print("== the hosts file")
        print(hosts, end="")
        print("== $ printf '%%s\\n' '%s' | mpasswd -c $DEMO/mpasswd.conf --best-effort --stdin alice   "
              "(tls_ca = the demo CA)" % NEW)
        r = subprocess.run([mpasswd, "-c", fleet.config, "--best-effort", "--stdin", "alice"],
                           input=NEW + "\n", capture_output=True, text=True, timeout=120)
        print(r.stdout + r.stderr, end="")
        print("== exit status %d" % r.returncode)
        changed = [fleet.password_of(i, "alice") == NEW for i in range(3)]
        auth_seen = "AUTH" in fleet.log_text(2)
        for i, target in enumerate(fleet.targets()):
            print("  %-16s %s" % (target, "changed" if changed[i] else "unchanged"))
        print("  the third responder's log has %s" % ("an AUTH" if auth_seen else "no AUTH: "
                                                        "nothing was sent to it"))
        ok = r.returncode == 3 and changed == [True, True, False] and not auth_seen
        print("ok: changed over TLS on two, the untrusted one got nothing" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        fleet.stop()
        fleet.remove()
        shutil.rmtree(folder)


def fake_target_demo(mpasswd):
    """A fake target on 127.0.0.1 (any local user could bind the port)
    says yes to everything: it gets neither the secret nor the password."""
    from mctp_client import FakeTarget
    fleet = Fleet(fleet_env(), 1, "Demo-Fake-Secret-1", {0: "closed"})
    fake = FakeTarget()
    try:
        fleet.write_config()
        print("== a fake target on %s: EHLO offers SCRAM, it answers every line with 250 "
              "or a made-up 334" % fake.target())
        print("== $ printf '%%s\\n' '%s' | mpasswd -c $DEMO/mpasswd.conf -H %s --best-effort --stdin alice"
              % (NEW, fake.target()))
        r = subprocess.run([mpasswd, "-c", fleet.config, "-H", fake.target(), "--best-effort",
                            "--stdin", "alice"],
                           input=NEW + "\n", capture_output=True, text=True, timeout=60)
        print(r.stdout + r.stderr, end="")
        print("== what the fake target received:")
        for line in fake.lines:
            print("  " + (line if len(line) < 60 else line[:57] + "..."))
        secret = open(fleet.secret_file).read().strip()
        ok = (r.returncode == 3 and "untrusted" in r.stdout and NEW.encode() not in fake.received
              and secret.encode() not in fake.received)
        print("ok: the fake target got no secret and no password (only EHLO, AUTH, a proof "
              "for its own nonce, QUIT)" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        fake.stop()
        fleet.stop()
        fleet.remove()


def journal_demo(mpasswd):
    """A change refused by one host's stricter policy leaves every store
    untouched (exit 1); a target that takes the password and dies before
    its reply leaves the run unfinished (exit 4, applied maybe), and
    mpasswd --resume finishes it on that target only (exit 0)."""
    from mctp_client import StagedTarget
    fleet = Fleet(fleet_env(), 3, "Demo-Journal-Secret-1", {2: "strict"})
    secret = open(fleet.secret_file).read().strip()
    silent = StagedTarget(secret, "silent")
    ok = True

    def show(args, stdin=None, want=None, what=""):
        nonlocal ok
        shown = " ".join(a if a != fleet.config else "$DEMO/mpasswd.conf" for a in args)
        print("== $ %smpasswd %s%s" % ("printf '%%s\\n' '%s' | " % NEW if stdin else "",
                                       shown, "   " + what if what else ""))
        r = subprocess.run([mpasswd] + args, input=(stdin + "\n") if stdin else None,
                           capture_output=True, text=True, timeout=120)
        print(r.stdout + r.stderr, end="")
        print("== exit status %d" % r.returncode)
        if want is not None and r.returncode != want:
            ok = False
        return r

    try:
        print("== a stricter host: the third responder's check service (TEST) refuses "
              "every password")
        r = show(["-c", fleet.config, "--stdin", "alice"], NEW, 1)
        untouched = all(fleet.password_of(i, "alice") != NEW for i in range(3))
        print("  every store untouched: %s" % ("yes" if untouched else "NO"))
        ok = ok and untouched
        print("== a target that takes the password and dies before its reply (%s)"
              % silent.target())
        args = ["-c", fleet.config, "-H", fleet.targets([0])[0], "-H", fleet.targets([1])[0],
                "-H", silent.target()]
        r = show(args + ["--stdin", "--timeout", "1", "alice"], NEW, 4)
        run = r.stderr.split("mpasswd --resume ")[-1].strip()
        r = show(["-c", fleet.config, "--runs", run], None, 0)
        ok = ok and ("%s: timeout, applied maybe" % silent.target()) in r.stdout
        print("== the host is back; finish the run (TEST first, the two done hosts untouched)")
        silent.mode = "ok"
        show(["-c", fleet.config, "--resume", run, "--stdin"], NEW, 0)
        r = show(["-c", fleet.config, "--runs"], None, 0)
        ok = ok and any(line.startswith(run) and " resumed " in line
                        for line in r.stdout.splitlines())
        ok = ok and silent.changes == 2 and fleet.password_of(0, "alice") == NEW
        print("ok: the refusal changed nothing; the unfinished run was resumed on the one "
              "host" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        silent.stop()
        fleet.stop()
        fleet.remove()


if __name__ == "__main__":
    status = main()
    print()
    status = status or tls_demo(os.environ["MPASSWD"])
    print()
    status = status or fake_target_demo(os.environ["MPASSWD"])
    print()
    sys.exit(status or journal_demo(os.environ["MPASSWD"]))
