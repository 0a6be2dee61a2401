#!/usr/bin/env python3
"""mpasswdd with the real pam_unix and pam_pwquality, as root, inside a
private mount and network namespace: an overlayfs over /etc with its upper
layer on a tmpfs, so pam_unix rewrites a throwaway /etc/shadow. The
machine's own files are checked to be untouched afterwards.

  real_pam.py --test   the end-to-end test (exit 77: skipped, with reason)
  real_pam.py --demo   the README's demonstration: prints the transcript

Environment: MPASSWDD, PAM_AUTH_CHECK (built binaries), PWQUALITY_MODULE
(pam_pwquality.so; from .deps/ when the host has none installed).
"""
import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctp_client import Responder, privsep_directory, verifier  # noqa: E402

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
SECRET = "demo-Controller-Secret-42"
OLD_PW = "Old-Passw0rd-1"
NEW_PW = "N3w-Passw0rd!"
WEAK_PW = "abc"


def snapshot(more=()):
    """Digests of the host files this test must never change (and of the
    files the globs in `more` match)."""
    files = ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"]
    files += sorted(glob.glob("/etc/pam.d/*")) + sorted(glob.glob("/etc/mpasswd/*"))
    for pattern in more:
        files += sorted(glob.glob(pattern))
    out = {}
    for f in files:
        try:
            with open(f, "rb") as fh:
                out[f] = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            out[f] = None
    return out


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (pam_unix writes /etc/shadow; run inside a private namespace as root)"
    probe = subprocess.run(["unshare", "--mount", "--net", "--", "true"], capture_output=True)
    if probe.returncode != 0:
        return "cannot make a private mount+net namespace: " + probe.stderr.decode().strip()
    return None


def isolated(reason, unshare, argv, more=(), untouched="/etc/passwd, /etc/shadow and /etc/pam.d",
             timeout=300):
    """Runs argv inside `unshare UNSHARE... --propagation private --`, and
    fails if the machine's own files (snapshot(more)) changed meanwhile.
    With a skip reason instead: FAIL under CI (CI must run it), else SKIP."""
    if reason:
        if os.environ.get("CI") == "true":
            print("FAIL: CI must run this test, but: " + reason)
            return 1
        print("SKIP: " + reason)
        return SKIP
    before = snapshot(more)
    rc = subprocess.run(["unshare"] + unshare + ["--propagation", "private", "--"] + argv,
                        timeout=timeout).returncode
    after = snapshot(more)
    changed = sorted(f for f in set(before) | set(after) if before.get(f) != after.get(f))
    if changed:
        print("FAIL: the machine's own files changed: " + ", ".join(changed))
        return 1
    print("ok: the machine's own %s are untouched" % untouched)
    return rc


def outside(mode):
    return isolated(skip_reason(), ["--mount", "--net"],
                    [sys.executable, os.path.abspath(__file__), "--inside", mode])

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def setup_namespace():
    run(["ip", "link", "set", "lo", "up"])
    scratch = tempfile.mkdtemp(prefix="mpasswd-ns-")
    run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", scratch])
    os.mkdir(scratch + "/u")
    os.mkdir(scratch + "/w")
    run(["mount", "-t", "overlay", "overlay", "-o",
         "lowerdir=/etc,upperdir=%s/u,workdir=%s/w" % (scratch, scratch), "/etc"])
    # pam_pwquality unpacked by scripts/install-deps (the host has none
    # installed): lay it over the module folder, in this namespace only.
    module = os.environ.get("PWQUALITY_MODULE", "")
    unix = (glob.glob("/lib/*/security/pam_unix.so") + glob.glob("/usr/lib/*/security/pam_unix.so"))
    if not unix:
        raise SystemExit("FAIL: pam_unix.so not found")
    security = os.path.dirname(os.path.realpath(unix[0]))
    if not os.path.exists(os.path.join(security, "pam_pwquality.so")):
        if not os.path.exists(module):
            raise SystemExit("FAIL: pam_pwquality.so not found (%r); run scripts/install-deps" % module)
        run(["mount", "-t", "overlay", "overlay", "-o",
             "lowerdir=%s:%s" % (os.path.dirname(module), security), security])
    return scratch


def step(mode, text):
    if mode == "--demo":
        print("\n== " + text)


def pam_check(user, password):
    r = subprocess.run([os.environ["PAM_AUTH_CHECK"], "mpasswd-check", user],
                       input=password + "\n", capture_output=True, text=True)
    return r.returncode


def inside(mode):
    demo = mode == "--demo"
    mpasswdd = os.environ["MPASSWDD"]
    scratch = setup_namespace()
    step(mode, "private namespace: /etc is an overlay on %s; loopback only" % scratch)

    # A throwaway user with a known password.
    run(["useradd", "--create-home", "--home-dir", scratch + "/home-alice", "alice"])
    run(["chpasswd"], input=("alice:%s\n" % OLD_PW).encode())
    # The stack mpasswdd ships, verbatim, over this host's common-password.
    os.makedirs("/etc/pam.d", exist_ok=True)
    with open(os.path.join(SOURCE, "packaging/pam.d/mpasswdd")) as src:
        shipped = src.read()
    with open("/etc/pam.d/mpasswdd", "w") as f:
        f.write(shipped)
    # And the check service TEST runs, also verbatim.
    with open(os.path.join(SOURCE, "packaging/pam.d/mpasswdd-check")) as src:
        shipped_check = src.read()
    with open("/etc/pam.d/mpasswdd-check", "w") as f:
        f.write(shipped_check)
    with open("/etc/pam.d/mpasswd-check", "w") as f:
        f.write("auth required pam_unix.so nodelay\naccount required pam_permit.so\n")
    os.makedirs("/etc/mpasswd", exist_ok=True)
    conf = "/etc/mpasswd/mpasswdd.conf"
    with open(conf, "w") as f:
        f.write("# throwaway configuration of the demonstration\n"
                "host_name = target1\n"
                # The failed-AUTH tally in the namespace's /etc overlay,
                # never the host's /var/lib.
                "state_directory = /etc/mpasswd/state\n"
                # The network child's empty root, also in the overlay.
                "privsep_directory = %s\n\n"
                "[controller demo-ctl]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
                % (privsep_directory("/etc/mpasswd"), verifier(mpasswdd, SECRET)))
    os.chmod(conf, 0o600)
    step(mode, "alice exists with password %r; /etc/pam.d/mpasswdd is the shipped file:" % OLD_PW)
    if demo:
        print(shipped.rstrip())
        print("\n== " + conf)
        with open(conf) as f:
            print(f.read().rstrip())

    responder = Responder(mpasswdd, conf, env=["LANG=C"])
    failures = []

    def check(ok, what):
        print(("ok: " if ok else "FAIL: ") + what)
        if not ok:
            failures.append(what)

    try:
        step(mode, "socket-activated responder: systemd-socket-activate --inetd on 127.0.0.1:%d"
             % responder.port)
        c = responder.connect()
        # EHLO, then SCRAM-SHA-256: the secret never crosses; the target
        # proves it holds the verifier before anything else is sent.
        replies = [c.reply(), c.ehlo("demo-ctl")[-1], c.scram("demo-ctl", SECRET),
                   c.send("VRFY alice"), c.send("CHPW alice"), c.send("DATA")]
        replies.append(c.send(WEAK_PW, "%s   (weak password)" % WEAK_PW))
        weak = c.send(".")
        replies += [c.send("CHPW alice"), c.send("DATA"),
                    c.send(NEW_PW, "%s   (the new password)" % NEW_PW)]
        strong = c.send(".")
        replies.append(c.send("QUIT"))
        step(mode, "the MCTP session (C: controller, S: mpasswdd)")
        print("\n".join(c.transcript))
        print()
        check(weak.startswith("554 ") and "shorter than" in weak,
              "weak password refused by pam_pwquality: " + weak)
        check(strong == "250 password changed for alice", "strong password accepted: " + strong)
        check([r[:3] for r in replies] ==
              ["220", "250", "250", "250", "250", "354", "355", "250", "354", "355", "221"],
              "every reply code as mpasswd-protocol(7) says")
        step(mode, "pam_authenticate through the real pam_unix")
        check(pam_check("alice", NEW_PW) == 0, "alice's new password verifies")
        check(pam_check("alice", OLD_PW) == 1, "alice's old password no longer does")
        check(pam_check("alice", WEAK_PW) == 1, "the refused weak password was never set")
        check(os.path.exists(scratch + "/u/shadow"), "the change went to the overlay's /etc/shadow")
        time.sleep(0.2)
        log = responder.log_text()
        check(all(s not in log for s in (SECRET, NEW_PW, OLD_PW)) and "changed for alice" in log,
              "the log names the change but no secret or password")
        if demo:
            step(mode, "mpasswdd's log (syslog lines, copied to stderr)")
            print(log.rstrip())
    finally:
        responder.stop()
    if not demo:
        test_verb(mpasswdd, conf, check)
        bypass_control(mpasswdd, check)
    return 1 if failures else 0


def store_state():
    """Every byte TEST must leave alone in this namespace's /etc: the
    account files, opasswd, and which files exist at all (a lock file or a
    backup pam_unix would leave behind)."""
    out = {}
    for f in ["/etc/passwd", "/etc/shadow", "/etc/shadow-", "/etc/group", "/etc/gshadow",
              "/etc/security/opasswd", "/etc/.pwd.lock", "/etc/nshadow", "/etc/shadow.lock",
              "/etc/passwd.lock"]:
        try:
            with open(f, "rb") as fh:
                out[f] = fh.read()
        except OSError:
            out[f] = None
    out["names"] = sorted(os.listdir("/etc")) + sorted(os.listdir("/etc/security"))
    return out


TEST_PW = "T3st-0nly-Passw0rd!"


def test_verb(mpasswdd, conf, check):
    """TEST through the shipped mpasswdd-check stack and the real
    pam_pwquality: a weak password gets 554 with pwquality's reason, a good
    one 250, and nothing is stored."""
    before = store_state()
    responder = Responder(mpasswdd, conf, env=["LANG=C"])
    try:
        c = responder.connect()
        c.reply()
        ehlo = c.ehlo("demo-ctl")
        c.scram("demo-ctl", SECRET)
        replies = []
        for pw in (WEAK_PW, TEST_PW):
            replies += [c.send("TEST alice"), c.send("DATA"), c.send(pw)]
            replies.append(c.send("."))
        c.send("QUIT")
        time.sleep(0.2)
        log = responder.log_text()
    finally:
        responder.stop()
    after = store_state()
    check(any(line[4:] == "TEST" for line in ehlo), "EHLO announces TEST: %r" % ehlo)
    check(replies[3].startswith("554 ") and "shorter than" in replies[3],
          "TEST: the weak password refused with pwquality's reason: " + replies[3])
    check(replies[7] == "250 password acceptable for alice; nothing changed",
          "TEST: the good password acceptable: " + replies[7])
    changed = [k for k in before if before[k] != after[k]]
    check(not changed, "TEST changed nothing in /etc (shadow, opasswd, lock files): %r" % changed)
    check(pam_check("alice", NEW_PW) == 0 and pam_check("alice", TEST_PW) == 1,
          "TEST: alice's password is still the one CHPW set")
    check(all(s not in log for s in (SECRET, TEST_PW)),
          "TEST: no password or secret in the log")


def bypass_control(mpasswdd, check):
    """The same stack without enforce_for_root: as root, pam_pwquality only
    warns and the weak password is set. This is why the shipped file has
    enforce_for_root, and the check above would fail without it."""
    with open("/etc/pam.d/mpasswdd-noenforce", "w") as f:
        f.write("password requisite pam_pwquality.so retry=1\n@include common-password\n")
    conf = "/etc/mpasswd/noenforce.conf"
    with open(conf, "w") as f:
        f.write("host_name = target1\npam_service = mpasswdd-noenforce\n"
                "state_directory = /etc/mpasswd/state\nprivsep_directory = %s\n"
                "[controller demo-ctl]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
                % (privsep_directory("/etc/mpasswd"), verifier(mpasswdd, SECRET)))
    os.chmod(conf, 0o600)
    responder = Responder(mpasswdd, conf, env=["LANG=C"])
    try:
        c = responder.connect()
        c.reply()
        c.ehlo("demo-ctl")
        c.scram("demo-ctl", SECRET)
        for line in ["CHPW alice", "DATA", WEAK_PW]:
            c.send(line)
        result = c.send(".")
        c.send("QUIT")
    finally:
        responder.stop()
    check(result == "250 password changed for alice" and pam_check("alice", WEAK_PW) == 0,
          "control: without enforce_for_root root sets the weak password (%s)" % result)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--inside":
        return inside(sys.argv[2])
    mode = sys.argv[1] if len(sys.argv) > 1 else "--test"
    return outside(mode)


if __name__ == "__main__":
    sys.exit(main())
