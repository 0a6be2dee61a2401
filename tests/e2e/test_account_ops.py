#!/usr/bin/env python3
"""EXPR, LOCK, UNLK and CHCK (mpasswd-protocol(7), ACCOUNT OPERATIONS)
against the real shadow database, pam_unix and pam_faillock, as root in a
private mount and network namespace (real_pam.py's overlay over /etc, and
a tmpfs over /run for pam_faillock's tallies). A socket-activated mpasswdd
is driven directly over MCTP, and then by the built mpasswd (--lock,
--unlock, --expire, --check, --if-different and a --batch of 100 users),
its journal in the namespace and its authpriv lines caught on a private
/dev/log.

Environment: MPASSWDD, MPASSWD, PAM_AUTH_CHECK, PWQUALITY_MODULE.
"""
import fcntl
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctp_client import Responder, privsep_directory, verifier  # noqa: E402
import real_pam  # noqa: E402

SECRET = "account-Controller-Secret-42"
PW = "Acc0unt-Passw0rd-1"
OLD_PW = "Old-Acc0unt-Passw0rd"
LOGIN = "mpasswd-login"
FAILLOCK = "/run/faillock"
CTL_PW = "Ctl-Fr4nk-Passw0rd-77"
BATCH_USERS = ["bu%03d" % i for i in range(100)]

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def shadow_line(user):
    with open("/etc/shadow") as f:
        for line in f:
            if line.split(":", 1)[0] == user:
                return line.rstrip("\n").split(":")
    return None


def login(user, password):
    """A password login: pam_authenticate, then pam_acct_mgmt."""
    r = subprocess.run([os.environ["PAM_AUTH_CHECK"], LOGIN, user, "--login"],
                       input=password + "\n", capture_output=True, text=True)
    return r.returncode, r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""


def key_login(user):
    """What sshd runs for a key login: the account phase alone."""
    r = subprocess.run([os.environ["PAM_AUTH_CHECK"], LOGIN, user, "--account"],
                       capture_output=True, text=True)
    return r.returncode, r.stdout.strip()


def tally(user):
    try:
        return os.path.getsize(os.path.join(FAILLOCK, user))
    except FileNotFoundError:
        return 0


def chage(user):
    return run(["chage", "-l", user], env={"LANG": "C", "LC_ALL": "C",
                                           "PATH": os.environ.get("PATH", "")}).stdout


def pwck():
    r = subprocess.run(["pwck", "-r"], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def add_user(name, password):
    run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", name])
    run(["chpasswd"], input="%s:%s\n" % (name, password))


def session(responder, controller="acct-ctl"):
    c = responder.connect()
    c.reply()
    ehlo = c.ehlo(controller)
    r = c.scram(controller, SECRET)
    assert r.startswith("250 "), r
    return c, ehlo


def chck(c, user, password):
    c.send("CHCK " + user)
    c.send("DATA")
    c.send(password)
    return c.send(".")


def setup(mpasswdd):
    run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"])
    os.makedirs(FAILLOCK, mode=0o755)
    for name in ("alice", "bob", "carol", "dave", "erin"):
        add_user(name, OLD_PW if name == "alice" else PW)
    run(["chpasswd"], input="alice:%s\n" % PW)
    # For the mpasswd runs: frank, and 100 users for --batch, written in
    # one go (useradd 100 times is slow) with one hash of OLD_PW.
    add_user("frank", PW)
    hashed = run(["openssl", "passwd", "-6", "-stdin"], input=OLD_PW + "\n").stdout.strip()
    with open("/etc/passwd", "a") as pw, open("/etc/group", "a") as gr, \
            open("/etc/shadow", "a") as sh, open("/etc/gshadow", "a") as gs:
        for i, name in enumerate(BATCH_USERS):
            pw.write("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin\n" % (name, 3000 + i, 3000 + i))
            gr.write("%s:x:%d:\n" % (name, 3000 + i))
            sh.write("%s:%s:19000:0:99999:7:::\n" % (name, hashed))
            gs.write("%s:!::\n" % name)
    # An account NSS knows but the local shadow database does not: 550.
    with open("/etc/passwd", "a") as f:
        f.write("ldapuser:x:2999:2999::/nonexistent:/usr/sbin/nologin\n")
    os.makedirs("/etc/pam.d", exist_ok=True)
    for name in ("mpasswdd", "mpasswdd-check"):
        with open(os.path.join(real_pam.SOURCE, "packaging/pam.d", name)) as src, \
                open("/etc/pam.d/" + name, "w") as dst:
            dst.write(src.read())
    # A login service with pam_faillock as its manual page shows it.
    with open("/etc/pam.d/" + LOGIN, "w") as f:
        f.write("auth required pam_faillock.so preauth deny=50\n"
                "auth [success=1 default=bad] pam_unix.so nodelay\n"
                "auth [default=die] pam_faillock.so authfail deny=50\n"
                "auth required pam_permit.so\n"
                "account required pam_faillock.so\n"
                "account required pam_unix.so\n")
    os.makedirs("/etc/mpasswd", exist_ok=True)
    conf = "/etc/mpasswd/mpasswdd.conf"
    v = verifier(mpasswdd, SECRET)
    with open(conf, "w") as f:
        f.write("host_name = target1\nstate_directory = /etc/mpasswd/state\n"
                "privsep_directory = %s\nauth_failure_delay = 0.3\n\n"
                "[controller acct-ctl]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
                "operations = VRFY TEST CHPW EXPR LOCK UNLK CHCK\n\n"
                "[controller plain-ctl]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
                % (privsep_directory("/etc/mpasswd"), v, v))
    os.chmod(conf, 0o600)
    return conf


def test_expr(r):
    c, ehlo = session(r)
    words = [line[4:] for line in ehlo]
    check(all(v in words for v in ("EXPR", "LOCK", "UNLK", "CHCK")),
          "EHLO announces EXPR LOCK UNLK CHCK: %r" % words)
    check(login("alice", PW)[0] == 0, "before EXPR alice logs in")
    first = c.send("EXPR alice")
    again = c.send("EXPR alice")
    c.send("QUIT")
    check(first == "250 alice must change the password at the next login", "EXPR: " + first)
    check(again.startswith("250 alice already"), "EXPR again: " + again)
    check(shadow_line("alice")[2] == "0", "EXPR: last change is 0 in /etc/shadow")
    rc, last = login("alice", PW)
    check(rc == 1 and "new one required" in last,
          "after EXPR pam_acct_mgmt asks for a new password: %s" % last)
    text = chage("alice")
    check("Last password change\t\t\t\t\t: password must be changed" in text or
          ("Last password change" in text and "password must be changed" in text),
          "chage -l says the password must be changed")


def test_lock_unlock(r):
    # bob expires far in the future; carol expired long ago.
    run(["chage", "-E", "2099-01-01", "bob"])
    run(["chage", "-E", "2000-01-01", "carol"])
    bob_expire = shadow_line("bob")[7]
    carol_expire = shadow_line("carol")[7]
    check(login("bob", PW)[0] == 0 and key_login("bob")[0] == 0, "before LOCK bob logs in")
    # Then three failed logins: pam_faillock counts them (a good login's
    # account phase would reset the count).
    for _ in range(3):
        login("bob", "wrong-" + PW)
    before_tally = tally("bob")
    check(before_tally > 0, "pam_faillock counted bob's failures (%d octets)" % before_tally)

    c, _ = session(r)
    replies = [c.send("LOCK bob"), c.send("LOCK bob"), c.send("LOCK carol")]
    line = shadow_line("bob")
    check(replies[0] == "250 bob locked (password and account)", "LOCK: " + replies[0])
    check(replies[1] == "250 bob already locked (password and account)",
          "LOCK again: " + replies[1])
    check(line[1].startswith("!") and line[7] == "1", "LOCK: '!' and expiry 1 (%s)" % line[7])
    check(tally("bob") == before_tally, "LOCK leaves the faillock tally")
    rc, last = login("bob", PW)
    check(rc == 1, "after LOCK bob's password login fails: %s" % last)
    rc, last = key_login("bob")
    check(rc == 1 and "expired" in last, "after LOCK bob's key login fails: %s" % last)

    replies = [c.send("UNLK bob"), c.send("UNLK bob"), c.send("UNLK carol")]
    c.send("QUIT")
    check(replies[0] == "250 bob unlocked", "UNLK: " + replies[0])
    check(replies[1] == "250 bob already unlocked", "UNLK again: " + replies[1])
    check(shadow_line("bob")[7] == bob_expire,
          "UNLK restored bob's future expiry date (%s)" % shadow_line("bob")[7])
    check(shadow_line("carol")[7] == carol_expire,
          "carol's earlier expiry date stayed through LOCK and UNLK (%s)" %
          shadow_line("carol")[7])
    check(tally("bob") == 0, "UNLK reset bob's faillock tally")
    check(login("bob", PW)[0] == 0 and key_login("bob")[0] == 0,
          "after UNLK bob's password and key logins work")
    check(not os.path.exists("/etc/mpasswd/state/lock-expiry-bob"),
          "the kept date is gone after UNLK")


def test_chck(r):
    login("dave", "wrong-" + PW)
    before = tally("dave")
    c, _ = session(r)
    t0 = time.monotonic()
    good = chck(c, "dave", PW)
    t1 = time.monotonic()
    bad = chck(c, "dave", OLD_PW)
    t2 = time.monotonic()
    c.send("QUIT")
    check(good == "250 the current password of dave", "CHCK current: " + good)
    check(bad == "554 not the current password of dave", "CHCK old: " + bad)
    check(t2 - t1 >= 0.3, "a mismatch costs auth_failure_delay (%.2f s)" % (t2 - t1))
    print("  figure: CHCK match %.3f s, mismatch %.3f s" % (t1 - t0, t2 - t1))
    check(tally("dave") == before and before > 0,
          "CHCK counted nothing in faillock (%d octets before and after)" % before)


def test_refusals(r):
    c, _ = session(r)
    replies = {
        "ldapuser": c.send("EXPR ldapuser"),
        "root": c.send("LOCK root"),
        "ghost": c.send("UNLK ghost"),
        "dotdot": c.send("UNLK .."),
    }
    c.send("QUIT")
    check(replies["ldapuser"].startswith("550 "), "no shadow line: " + replies["ldapuser"])
    check(replies["root"].startswith("530 "), "root: " + replies["root"])
    check(replies["ghost"].startswith("551 "), "unknown user: " + replies["ghost"])
    check(replies["dotdot"].startswith("501 "), "'..': " + replies["dotdot"])
    shadow = open("/etc/shadow").read()
    c, ehlo = session(r, "plain-ctl")
    refused = [c.send(v + " erin") for v in ("EXPR", "LOCK", "UNLK", "CHCK")]
    vrfy = c.send("VRFY erin")
    c.send("QUIT")
    check(all(x.startswith("530 ") for x in refused),
          "a controller with the default operations gets 530: %r" % refused)
    check(vrfy.startswith("250 "), "and may still VRFY")
    check(open("/etc/shadow").read() == shadow, "the refusals changed nothing")
    check("LOCK refused: controller plain-ctl may not use it" in r.log_text(),
          "the refusal is logged")


def test_concurrent(r):
    """Three sessions on erin at once: LOCK/UNLK, CHPW (pam_unix, its own
    lckpwdf) then EXPR, and CHCK. Nothing one writes is lost."""
    errors = []
    passwords = ["Conc-%02d-Wq8#rTx-k" % i for i in range(8)]

    def locker():
        c, _ = session(r)
        for i in range(21):
            x = c.send(("LOCK" if i % 2 == 0 else "UNLK") + " erin")
            if not x.startswith("250 "):
                errors.append("locker: " + x)
        c.send("QUIT")

    def changer():
        c, _ = session(r)
        for pw in passwords:
            for line in ("CHPW erin", "DATA", pw):
                c.send(line)
            x = c.send(".")
            y = c.send("EXPR erin")
            if not x.startswith("250 ") or not y.startswith("250 "):
                errors.append("changer: %s / %s" % (x, y))
        c.send("QUIT")

    def checker():
        c, _ = session(r)
        for _ in range(8):
            x = chck(c, "erin", passwords[-1])
            if x[:3] not in ("250", "554"):
                errors.append("checker: " + x)
        c.send("QUIT")

    threads = [threading.Thread(target=f) for f in (locker, changer, checker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, "3 concurrent sessions: every reply 250 (CHCK 250/554): %r" % errors[:3])
    line = shadow_line("erin")
    # pam_unix's CHPW writes a hash without '!', so only the expiry shows
    # the locker's last LOCK; CHPW leaves that field alone.
    check(line[7] == "1", "the locker's last LOCK is there (expiry 1)")
    check(line[2] == "0", "the changer's last EXPR is there (last change 0)")
    c, _ = session(r)
    unlk = c.send("UNLK erin")
    now = chck(c, "erin", passwords[-1])
    c.send("QUIT")
    check(unlk.startswith("250 ") and now.startswith("250 "),
          "the changer's last password is the one stored: %s" % now)


def test_lckpwdf_wait(r):
    """An EXPR waits while another program holds the shadow lock."""
    fd = os.open("/etc/.pwd.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    c, _ = session(r)
    released = []

    def release():
        time.sleep(1.0)
        released.append(time.monotonic())
        fcntl.lockf(fd, fcntl.LOCK_UN)

    t = threading.Thread(target=release)
    t.start()
    reply = c.send("EXPR carol")
    answered = time.monotonic()
    t.join()
    os.close(fd)
    c.send("QUIT")
    check(reply.startswith("250 ") and answered >= released[0],
          "EXPR waited for the held lckpwdf and then succeeded: " + reply)


def test_faillock_wait_outside_lckpwdf(r):
    """The tally's owner can hold its flock: UNLK waits for it (at most
    5 s) without holding the shadow lock, which pam_unix gives up on
    after 0.1 s."""
    path = os.path.join(FAILLOCK, "carol")
    with open(path, "w") as f:
        f.write("x" * 16)
    held = os.open(path, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    c, _ = session(r)
    replies = []
    t = threading.Thread(target=lambda: replies.append(c.send("UNLK carol")))
    t.start()
    time.sleep(1.0)
    lock = os.open("/etc/.pwd.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        free = True
        fcntl.lockf(lock, fcntl.LOCK_UN)
    except OSError:
        free = False
    os.close(lock)
    t.join(30)
    os.close(held)
    c.send("QUIT")
    check(free, "while UNLK waits for a held faillock tally, lckpwdf is free")
    check(replies and replies[0].startswith("250 "), "that UNLK still answers 250: %r" % replies)


def test_passwd_holds_the_hash(r):
    """A passwd entry holding the hash itself (not "x"): pam_unix ignores
    the shadow line, expiry date included, so LOCK there would lock
    nothing. 451, nothing written."""
    add_user("hank", PW)
    h = shadow_line("hank")[1]
    with open("/etc/passwd") as f:
        text = f.read()
    with open("/etc/passwd", "w") as f:
        f.write(text.replace("\nhank:x:", "\nhank:%s:" % h))
    check(key_login("hank")[0] == 0 and login("hank", PW)[0] == 0,
          "hank logs in with the hash in /etc/passwd")
    shadow = open("/etc/shadow").read()
    c, _ = session(r)
    replies = [c.send(v + " hank") for v in ("LOCK", "EXPR")] + [chck(c, "hank", PW)]
    c.send("QUIT")
    check(all(x.startswith("451 ") and "pwconv" in x for x in replies),
          "LOCK, EXPR and CHCK of a user whose hash is in /etc/passwd: 451 %r" % replies)
    check(open("/etc/shadow").read() == shadow, "and /etc/shadow is unchanged")
    with open("/etc/passwd", "w") as f:
        f.write(text)
    # An entry too long to read into the monitor's buffer is not taken
    # as "no hash in /etc/passwd": 451, nothing written.
    add_user("gina", PW)
    with open("/etc/passwd") as f:
        text = f.read()
    lines = text.splitlines(True)
    for i, line in enumerate(lines):
        if line.startswith("gina:x:"):
            fields = line.rstrip("\n").split(":")
            fields[4] = "G" * 20000
            lines[i] = ":".join(fields) + "\n"
    with open("/etc/passwd", "w") as f:
        f.write("".join(lines))
    shadow = open("/etc/shadow").read()
    c, _ = session(r)
    reply = c.send("LOCK gina")
    c.send("QUIT")
    check(reply.startswith("451 "), "LOCK of a user whose passwd entry cannot be read: " + reply)
    check(open("/etc/shadow").read() == shadow, "and /etc/shadow is unchanged")
    with open("/etc/passwd", "w") as f:
        f.write(text)


def test_bound(r):
    c, _ = session(r)
    replies = [c.send("EXPR carol") for _ in range(64)]
    last = c.send("EXPR carol")
    check(all(x.startswith("250 ") for x in replies), "64 EXPR in one session are answered")
    check(last.startswith("421 ") and c.closed(), "the 65th gets 421 and the close: " + last)
    c = r.connect()
    c.reply()
    c.ehlo("acct-ctl")
    c.scram("acct-ctl", SECRET)
    replies = [chck(c, "carol", PW) for _ in range(32)]
    last = c.send("CHCK carol")
    check(all(x.startswith("250 ") for x in replies), "32 CHCK in one session are answered")
    check(last.startswith("421 ") and c.closed(), "the 33rd CHCK gets 421: " + last)


# ---- the built mpasswd against the socket-activated mpasswdd ----


# Runs argv with a tmpfs on /dev in a mount namespace of its own, our
# socket at /dev/log: syslog(3)'s lines come to us, never to the machine.
# The socket is read while the program runs, as a syslog daemon does: a
# datagram socket queues only a few lines (a batch logs one per user).
LOG_HELPER = (
    "import json, socket, subprocess, sys, threading\n"
    "subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/dev'], check=True)\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "s.bind('/dev/log')\n"
    "s.settimeout(0.3)\n"
    "lines = []\n"
    "done = threading.Event()\n"
    "def read():\n"
    "    while True:\n"
    "        try:\n"
    "            lines.append(s.recv(65536).decode('utf-8', 'replace'))\n"
    "        except socket.timeout:\n"
    "            if done.is_set():\n"
    "                return\n"
    "t = threading.Thread(target=read)\n"
    "t.start()\n"
    "r = subprocess.run(sys.argv[1:], input=sys.stdin.read(), capture_output=True, text=True)\n"
    "done.set()\n"
    "t.join()\n"
    "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr, 'log': lines}))\n")


def controller_config(r):
    os.makedirs("/etc/mpasswd/ctl", mode=0o700, exist_ok=True)
    with open("/etc/mpasswd/ctl/secret", "w") as f:
        f.write(SECRET + "\n")
    os.chmod("/etc/mpasswd/ctl/secret", 0o600)
    conf = "/etc/mpasswd/ctl/mpasswd.conf"
    with open(conf, "w") as f:
        f.write("name = acct-ctl\nsecret_file = /etc/mpasswd/ctl/secret\nreply_timeout = 20\n"
                "target_timeout = 120\njournal_directory = /etc/mpasswd/ctl/journal\n")
    os.chmod(conf, 0o600)
    return ["-c", conf, "-H", "127.0.0.1:%d" % r.port]


def mpasswd(base, *args, stdin=""):
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", sys.executable,
                        "-c", LOG_HELPER, os.environ["MPASSWD"]] + base + list(args),
                       input=stdin, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        raise RuntimeError("the /dev/log helper failed: " + p.stderr)
    return json.loads(p.stdout)


def journal_text():
    d = "/etc/mpasswd/ctl/journal"
    return "".join(open(os.path.join(d, n)).read() for n in sorted(os.listdir(d))
                   if n.endswith(".run"))


def secrets_in(text, passwords):
    return [p for p in passwords if p in text]


def test_mpasswd(r):
    base = controller_config(r)
    started = time.monotonic()
    seen = []  # every output, log line and record, checked for passwords at the end

    def go(*args, stdin=""):
        got = mpasswd(base, *args, stdin=stdin)
        seen.extend([got["out"], got["err"]] + got["log"])
        return got

    got = go("--lock", "--json", "frank")
    [o] = [json.loads(x) for x in got["out"].splitlines()]
    check(got["rc"] == 0 and (o["result"], o["step"]) == ("ok", "LOCK"),
          "mpasswd --lock: %r" % got)
    check(shadow_line("frank")[1].startswith("!"), "--lock: frank's hash starts with !")
    check(key_login("frank")[0] != 0, "--lock: a key login (account phase) is refused")
    check(len(got["log"]) == 1 and "lock of frank on 1 targets: 1 ok" in got["log"][0]
          and got["log"][0].startswith("<85>"), "--lock: one authpriv notice: %r" % got["log"])
    got = go("--unlock", "frank")
    check(got["rc"] == 0 and not shadow_line("frank")[1].startswith("!"),
          "mpasswd --unlock: %r" % got)
    check(login("frank", PW)[0] == 0, "--unlock: frank logs in again")

    got = go("--check", "--stdin", "--json", "frank", stdin=PW + "\n")
    check(got["rc"] == 0 and json.loads(got["out"])["result"] == "ok",
          "mpasswd --check with the current password: ok, exit 0: %r" % got)
    got = go("--check", "--stdin", "--json", "frank", stdin=CTL_PW + "\n")
    check(got["rc"] == 1 and json.loads(got["out"])["result"] == "different",
          "mpasswd --check with another password: different, exit 1: %r" % got)
    check(len(got["log"]) == 1 and got["log"][0].startswith("<84>") and
          "failed: 127.0.0.1:%d different" % r.port in got["log"][0],
          "--check: different is a warning, the target failed: %r" % got["log"])

    before = shadow_line("frank")
    got = go("--if-different", "--stdin", "--json", "frank", stdin=PW + "\n")
    check(got["rc"] == 0 and json.loads(got["out"])["result"] == "unchanged" and
          shadow_line("frank") == before,
          "mpasswd --if-different with the same password: unchanged, exit 0, shadow "
          "untouched: %r" % got)
    got = go("--if-different", "--stdin", "--json", "frank", stdin=CTL_PW + "\n")
    check(got["rc"] == 0 and json.loads(got["out"])["result"] == "ok" and
          login("frank", CTL_PW)[0] == 0,
          "mpasswd --if-different with a new password: changed: %r" % got)

    got = go("--expire", "--stdin", "frank", stdin=PW + "\n")
    check(got["rc"] == 0 and shadow_line("frank")[2] == "0",
          "mpasswd --expire: set and one-time (last change 0): %r" % got)
    rc, last = login("frank", PW)
    check(rc == 1 and "new one required" in last, "--expire: a new password required: " + last)

    print("mpasswd's single-user runs: %.1f s" % (time.monotonic() - started))
    started = time.monotonic()
    with open("/etc/shadow", "rb") as f:
        shadow = f.read()
    # One weak password: pam_pwquality refuses it in TEST, no one changes.
    def batch_pw(u):
        return "Q%s-Batch-Pw0rd!9x" % u[2:]
    lines = "".join("%s:%s\n" % (u, batch_pw(u)) for u in BATCH_USERS)
    # Letters past f: never in a run id's hex by chance.
    weak = lines.replace("bu042:" + batch_pw("bu042"), "bu042:zqxw")
    got = go("--batch", "--json", stdin=weak)
    results = [json.loads(x) for x in got["out"].splitlines()]
    refused = [o for o in results if o["result"] == "refused"]
    check(got["rc"] == 1 and len(results) == 100 and len(refused) == 1 and
          refused[0]["user"] == "bu042" and refused[0]["step"] == "TEST" and
          all(o["result"] == "skipped" for o in results if o["user"] != "bu042"),
          "--batch with one weak password: refused in TEST, the 99 others skipped")
    with open("/etc/shadow", "rb") as f:
        check(f.read() == shadow, "--batch refused in TEST: /etc/shadow byte for byte the same")
    check(len(got["log"]) == 100, "--batch: one authpriv line per user (%d)" % len(got["log"]))
    print("--batch of 100 refused in TEST: %.1f s" % (time.monotonic() - started))
    started = time.monotonic()
    got = go("--batch", "--json", stdin=lines)
    results = [json.loads(x) for x in got["out"].splitlines()]
    check(got["rc"] == 0 and len(results) == 100 and
          all(o["result"] == "ok" for o in results),
          "--batch of 100 users: all ok, exit 0: %s" % got["err"][-500:])
    print("--batch of 100 changed: %.1f s" % (time.monotonic() - started))
    check(len({o["run"] for o in results}) == 100, "--batch: one run (record) per user")
    changed = [u for u in BATCH_USERS if shadow_line(u)[1] != dict(
        (l.split(":")[0], l.split(":")[1]) for l in shadow.decode().splitlines())[u]]
    check(len(changed) == 100, "--batch: all 100 users' hashes changed (%d)" % len(changed))
    check(all(login(u, batch_pw(u))[0] == 0 for u in ("bu000", "bu042", "bu099")),
          "--batch: the new passwords log in")
    check(len(got["log"]) == 100 and all("change of bu" in x and "1 ok" in x
                                         for x in got["log"]),
          "--batch: 100 authpriv lines, one per user")
    runs = subprocess.run([os.environ["MPASSWD"]] + base[:2] + ["--runs"],
                          capture_output=True, text=True)
    seen.append(runs.stdout)
    check(runs.stdout.count(" done ") == 50,
          "--runs lists the newest 50 runs, the batch's, all done (%d)"
          % runs.stdout.count(" done "))
    passwords = [SECRET, PW, CTL_PW, OLD_PW, "Pw0rd!9", "zqxw"]
    leaked = secrets_in("".join(seen) + journal_text(), passwords)
    check(not leaked, "no password or secret in any output, log line or journal record: %r"
          % leaked)


def test_ambiguous(r):
    before = open("/etc/shadow").read()
    line = ":".join(shadow_line("dave"))
    with open("/etc/shadow", "a") as f:
        f.write(" " + line + "\n")
    doubled = open("/etc/shadow").read()
    c, _ = session(r)
    reply = c.send("LOCK dave")
    check_reply = chck(c, "dave", PW)
    c.send("QUIT")
    check(reply.startswith("451 ") and "2 lines" in reply, "an ambiguous line: " + reply)
    check(check_reply.startswith("451 "), "CHCK on an ambiguous line: " + check_reply)
    check(open("/etc/shadow").read() == doubled, "the ambiguous file is left as it was")
    with open("/etc/shadow", "w") as f:
        f.write(before)


def inside():
    mpasswdd = os.environ["MPASSWDD"]
    real_pam.setup_namespace()
    conf = setup(mpasswdd)
    mode = os.stat("/etc/shadow")
    pwck_before = pwck()
    r = Responder(mpasswdd, conf, env=["LANG=C"])
    try:
        test_expr(r)
        test_lock_unlock(r)
        test_chck(r)
        test_refusals(r)
        test_concurrent(r)
        test_lckpwdf_wait(r)
        test_faillock_wait_outside_lckpwdf(r)
        test_passwd_holds_the_hash(r)
        test_bound(r)
        test_mpasswd(r)
        after = os.stat("/etc/shadow")
        check((after.st_uid, after.st_gid, after.st_mode) == (mode.st_uid, mode.st_gid,
                                                               mode.st_mode),
              "/etc/shadow keeps its owner, group and mode")
        check(pwck() == pwck_before, "pwck -r says the same after as before: %r" % (pwck()[0],))
        leftovers = [n for n in os.listdir("/etc") if ".mpasswdd." in n]
        check(not leftovers, "no temporary file left in /etc: %r" % leftovers)
        test_ambiguous(r)
        time.sleep(0.2)
        log = r.log_text()
        check(all(s not in log for s in (SECRET, PW, OLD_PW, "Conc-0", CTL_PW, "Pw0rd!9")),
              "no password or secret in the log")
    finally:
        r.stop()
    return 1 if failures else 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--inside":
        return inside()
    return real_pam.isolated(real_pam.skip_reason(), ["--mount", "--net"],
                             [sys.executable, os.path.abspath(__file__), "--inside"])


if __name__ == "__main__":
    sys.exit(main())
