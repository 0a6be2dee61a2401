#!/usr/bin/env python3
"""The attack of issue 10 itself: an unprivileged user steers the control
host's ssh through the real setuid passwd.

As root, in a private mount, network and PID namespace with an overlay
over /etc (nothing of this machine changes): alice, an ordinary user of
the control host, runs the real /usr/bin/passwd (setuid root) whose
password stack ends in pam_mctp with the ssh transport. The real target is
an sshd on 127.0.0.1 whose forced command is mpasswdd (pam_matrix as its
password store). alice prepares her own ~/.ssh/config:

  1. ProxyCommand, KnownHostsCommand and `Match exec` lines that record
     that they ran (and as whom);
  2. a ControlPath to a master connection she owns, to an sshd of her own
     whose forced command is a fake MCTP target that records all it gets
     (it would get AUTH <fleet secret> and her new password).

Each time: nothing of hers runs, her listener receives nothing, passwd
succeeds and the change reaches the real target only. The same test with
a tiny RLIMIT_NOFILE, and with SIGPIPE ignored, from alice's shell.

  test_setuid_passwd.py   (as root; exit 77 with the reason when it cannot)
Environment: PAM_MCTP_MODULE, MPASSWDD, SSHD, PAM_WRAPPER_LIB,
PAM_MATRIX_MODULE.
"""
import os
import pty
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mctp_client import answer_prompts, privsep_directory, verifier  # noqa: E402
import real_pam  # noqa: E402
from real_pam import run  # noqa: E402

SKIP = 77
SECRET = "setuid-Fleet-Secret-42"
OLD_LOCAL = "Old-Local-Passw0rd-1"
OLD_REMOTE = "Old-Remote-Passw0rd-1"
REAL_PORT = 2222   # the real target's sshd (a private network namespace)
HER_PORT = 2223    # alice's own sshd
HOME = "/home/alice"


def skip_reason():
    if os.geteuid() != 0:
        return "needs root (runs the real setuid passwd inside a private namespace)"
    for var in ("PAM_MCTP_MODULE", "MPASSWDD", "SSHD", "PAM_WRAPPER_LIB", "PAM_MATRIX_MODULE"):
        if not os.environ.get(var):
            return "%s is not set (run through meson test)" % var
    if not os.path.exists(os.environ["SSHD"]):
        return "no sshd at %s: run scripts/install-deps" % os.environ["SSHD"]
    if not os.path.exists("/usr/bin/passwd") or not os.stat("/usr/bin/passwd").st_mode & 0o4000:
        return "/usr/bin/passwd is missing or not setuid"
    probe = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "--", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        return "cannot make a private namespace: " + probe.stderr.decode().strip()
    return None


def outside():
    reason = skip_reason()
    scratch = tempfile.mkdtemp(prefix="mpasswd-setuid-")
    try:
        return real_pam.isolated(
            reason, ["--mount", "--net", "--pid", "--fork", "--mount-proc"],
            [sys.executable, os.path.abspath(__file__), "--inside", scratch],
            more=["/root/.ssh/*"], untouched="/etc and /root/.ssh")
    finally:
        os.rmdir(scratch)  # its tmpfs went with the namespace

def write(path, text, mode=0o600, owner=None):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, *owner)


def keygen(path, owner=None):
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path])
    if owner is not None:
        os.chown(path, *owner)
        os.chown(path + ".pub", *owner)
    with open(path + ".pub") as f:
        return " ".join(f.read().split()[:2])


def as_user(user):
    return ["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--"]


def start_sshd(config, user=None, log=None):
    """sshd -D on its port; waits until it listens."""
    log = log or config + ".log"
    with open(log, "wb") as out:
        proc = subprocess.Popen((as_user(user) if user else []) +
                                [os.path.abspath(os.environ["SSHD"]), "-D", "-e", "-f", config],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    deadline = time.time() + 10
    while time.time() < deadline:
        with open(log, "rb") as f:
            if b"Server listening" in f.read():
                return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    with open(log, "rb") as f:
        raise SystemExit("FAIL: sshd did not start:\n" + f.read().decode("utf-8", "replace"))


FAKE_TARGET = r"""#!/usr/bin/python3
# alice's fake MCTP target: records every line it gets, says yes to all.
import sys
rec = open(sys.argv[1], "ab", buffering=0)
out = sys.stdout.buffer
out.write(b"220 evil MCTP ready\r\n"); out.flush()
data = False
for line in sys.stdin.buffer:
    rec.write(line)
    if data:
        if line.rstrip(b"\r\n") == b".":
            data = False
            out.write(b"250 changed\r\n")
    elif line.upper().startswith(b"DATA"):
        data = True
        out.write(b"354 go ahead\r\n")
    elif line.upper().startswith(b"QUIT"):
        out.write(b"221 bye\r\n"); out.flush()
        break
    else:
        out.write(b"250 ok\r\n")
    out.flush()
"""

RECORD = """#!/bin/sh
# alice's probe: that it ran, as whom, and why.
echo "$1 uid=$(id -u) euid=$(id -u) ruid=$(id -ru)" >> %s/ran
exit 1
"""


# ssh_command: what ssh is started with, recorded before the real ssh
# (the signals by sh, as Python ignores SIGPIPE itself).
SSH_WRAPPER_SH = """#!/bin/sh
{ grep -E '^(SigIgn|SigBlk)' /proc/$$/status | tr '\\n' ' '; echo; } >> /etc/mpasswd/ssh-signals
exec /usr/bin/python3 -I /etc/mpasswd/ssh-wrapper.py "$@"
"""
SSH_WRAPPER = r"""#!/usr/bin/python3 -I
import json, os, resource, sys
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass  # the listing's own descriptor, closed by now
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines()
              if ":\t" in l)
seen = {"uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
        "cwd": os.getcwd(), "umask": os.umask(0o077), "env": dict(os.environ),
        "fds": sorted(int(fd) for fd, target in fds.items() if "/proc/" not in target),
        "sid_is_pid": os.getsid(0) == os.getpid(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "core": resource.getrlimit(resource.RLIMIT_CORE)[0],
        "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
        "sigblk": int(status["SigBlk"].strip(), 16)}
try:  # not as alice (dash drops a setuid caller's privileges)
    with open("/etc/mpasswd/ssh-seen", "a") as f:
        f.write(json.dumps(seen) + "\n")
except OSError:
    pass
os.execv("/usr/bin/ssh", ["/usr/bin/ssh"] + sys.argv[1:])
"""


class Bed:
    """Everything inside the namespace."""

    def __init__(self, scratch):
        self.failures = []
        run(["ip", "link", "set", "lo", "up"])
        run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", scratch])
        os.mkdir(scratch + "/u")
        os.mkdir(scratch + "/w")
        run(["mount", "-t", "overlay", "overlay", "-o",
             "lowerdir=/etc,upperdir=%s/u,workdir=%s/w" % (scratch, scratch), "/etc"])
        run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/home"])
        self.scratch = scratch
        # alice, the local user, and mctp, the user the real target's sshd
        # and mpasswdd run as.
        run(["useradd", "--create-home", "--home-dir", HOME, "--shell", "/bin/sh", "alice"])
        run(["chpasswd"], input=("alice:%s\n" % OLD_LOCAL).encode())
        run(["useradd", "--create-home", "--home-dir", "/home/mctp", "--shell", "/bin/sh",
             "mctp"])
        import pwd
        a = pwd.getpwnam("alice")
        m = pwd.getpwnam("mctp")
        self.alice = (a.pw_uid, a.pw_gid)
        self.mctp = (m.pw_uid, m.pw_gid)
        self.setup_real_target()
        self.setup_control_host()

    # The real target: sshd as mctp, forced command mpasswdd --ssh over
    # pam_matrix (its own password store, so the local change by pam_unix
    # and the remote one are told apart).
    def setup_real_target(self):
        t = "/home/mctp/target"
        os.mkdir(t, 0o755)
        os.chown(t, *self.mctp)
        services = t + "/services"
        os.mkdir(services, 0o755)
        self.passdb = t + "/passdb"
        write(self.passdb, "alice:%s:mpasswdd-test\n" % OLD_REMOTE, 0o600, self.mctp)
        write(services + "/mpasswdd-test",
              "password [success=ok auth_err=ignore default=bad] %s passdb=%s\n"
              "password required pam_permit.so\n" % (os.environ["PAM_MATRIX_MODULE"],
                                                     self.passdb), 0o644)
        write(services + "/other", "password required pam_deny.so\n", 0o644)
        # TEST's check service (mpasswdd-check): accepts, stores nothing.
        write(services + "/mpasswdd-check", "password required pam_permit.so\n", 0o644)
        conf = t + "/mpasswdd.conf"
        write(conf, "host_name = realtarget\npam_service = mpasswdd-test\n"
              "auth_failure_delay = 0.05\nstate_directory = %s/state\nprivsep_directory = %s\n"
              "[controller control1]\nfrom = 127.0.0.1\n"
              "secret_verifier = %s\n" % (t, privsep_directory(t), verifier(os.environ["MPASSWDD"], SECRET)), 0o600,
              self.mctp)
        self.target_log = t + "/log"
        write(self.target_log, "", 0o600, self.mctp)
        mpasswdd = t + "/mpasswdd"
        run(["cp", os.environ["MPASSWDD"], mpasswdd])
        os.chmod(mpasswdd, 0o755)
        host_key = t + "/host_key"
        self.real_host_key = keygen(host_key, self.mctp)
        self.identity = "/etc/mpasswd/id_ed25519"
        os.makedirs("/etc/mpasswd", exist_ok=True)
        client_key = keygen(self.identity)
        forced = ("env LD_PRELOAD=%s PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=%s %s --ssh -c %s "
                  "--log-stderr 2>>%s" % (os.environ["PAM_WRAPPER_LIB"], services, mpasswdd,
                                          conf, self.target_log))
        write(t + "/authorized_keys", 'restrict,command="%s" %s\n' % (forced, client_key),
              0o644, self.mctp)
        write(t + "/sshd_config", "ListenAddress 127.0.0.1\nPort %d\nHostKey %s\n"
              "AuthorizedKeysFile %s/authorized_keys\nPidFile none\nStrictModes no\n"
              "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
              "AllowUsers mctp\nLogLevel VERBOSE\n" % (REAL_PORT, host_key, t), 0o644,
              self.mctp)
        start_sshd(t + "/sshd_config", "mctp")

    def setup_control_host(self):
        write("/etc/mpasswd/secret", SECRET + "\n")
        write("/etc/mpasswd/hosts", "127.0.0.1:%d\n" % REAL_PORT, 0o644)
        write("/etc/mpasswd/known_hosts", "[127.0.0.1]:%d %s\n" % (REAL_PORT,
                                                                  self.real_host_key))
        write("/etc/mpasswd/mpasswd.conf",
              "name = control1\nsecret_file = /etc/mpasswd/secret\nhosts = /etc/mpasswd/hosts\n"
              "transport = ssh\nssh_user = mctp\nssh_identity = %s\n"
              "ssh_known_hosts = /etc/mpasswd/known_hosts\nreply_timeout = 10\n"
              "ssh_command = /etc/mpasswd/ssh-wrapper\njournal_directory = /etc/mpasswd/runs\n"
              % self.identity)
        write("/etc/mpasswd/ssh-wrapper", SSH_WRAPPER_SH, 0o755)
        write("/etc/mpasswd/ssh-wrapper.py", SSH_WRAPPER, 0o755)
        write("/etc/pam.d/passwd",
              "password [success=1 default=ignore] pam_unix.so obscure yescrypt\n"
              "password requisite pam_deny.so\n"
              "password required pam_permit.so\n"
              "password required %s use_authtok config=/etc/mpasswd/mpasswd.conf\n"
              % os.environ["PAM_MCTP_MODULE"], 0o644)

    # alice's side.
    def setup_alice(self, config_text):
        ssh = HOME + "/.ssh"
        os.makedirs(ssh, mode=0o700, exist_ok=True)
        os.chown(ssh, *self.alice)
        write(ssh + "/config", config_text, 0o600, self.alice)
        for f in ("ran", "got"):
            if os.path.exists(HOME + "/" + f):
                os.unlink(HOME + "/" + f)

    def setup_alice_master(self):
        """Her own sshd (as alice) whose forced command is a fake MCTP
        target, and her master connection to it at ~/ctl."""
        a = HOME + "/evil"
        os.makedirs(a, mode=0o755, exist_ok=True)
        os.chown(a, *self.alice)
        write(a + "/fake_target.py", FAKE_TARGET, 0o755, self.alice)
        host_key = a + "/host_key"
        her_host = keygen(host_key, self.alice)
        her_key = a + "/id"
        her_pub = keygen(her_key, self.alice)
        write(a + "/authorized_keys", 'command="%s/fake_target.py %s/got" %s\n'
              % (a, HOME, her_pub), 0o644, self.alice)
        write(a + "/sshd_config", "ListenAddress 127.0.0.1\nPort %d\nHostKey %s\n"
              "AuthorizedKeysFile %s/authorized_keys\nPidFile none\nStrictModes no\n"
              "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
              % (HER_PORT, host_key, a), 0o644, self.alice)
        start_sshd(a + "/sshd_config", "alice", log=a + "/sshd.log")
        write(a + "/known_hosts", "[127.0.0.1]:%d %s\n" % (HER_PORT, her_host), 0o644,
              self.alice)
        run(as_user("alice") + ["env", "HOME=" + HOME, "ssh", "-F", "/dev/null", "-M", "-S",
                                HOME + "/ctl", "-fN", "-o", "BatchMode=yes",
                                "-o", "UserKnownHostsFile=%s/known_hosts" % a, "-i", her_key,
                                "-p", str(HER_PORT), "alice@127.0.0.1"], timeout=30)
        # The master works: a plain client through it reaches her target.
        probe = subprocess.run(as_user("alice") + ["ssh", "-F", "/dev/null", "-S", HOME + "/ctl",
                                                   "-o", "BatchMode=yes", "x"],
                               input=b"QUIT\r\n", capture_output=True, timeout=30)
        if b"220 evil" not in probe.stdout:
            raise SystemExit("FAIL: alice's master connection does not work: %r" % (probe,))
        os.unlink(HOME + "/got")

    def remote_password(self):
        with open(self.passdb) as f:
            return f.read().split(":")[1]

    def passwd(self, new, prelude=""):
        """alice runs the real setuid passwd on a terminal, from her shell
        (prelude: what her shell does first, e.g. a ulimit)."""
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(HOME)
            env = {"HOME": HOME, "USER": "alice", "LOGNAME": "alice", "PATH": "/usr/bin:/bin",
                   "LANG": "C", "SHELL": "/bin/sh", "TERM": "dumb"}
            os.execvpe("setpriv", as_user("alice") + ["/bin/sh", "-c", prelude + "exec passwd"],
                       env)
        out, timed_out = answer_prompts(fd, [OLD_LOCAL, new, new], lambda o: o.endswith(b":"), 60)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
            out += b"\n[killed: passwd still running after 60 s]"
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")

    def local_password_is(self, password):
        with open("/etc/shadow") as f:
            for line in f:
                if line.startswith("alice:"):
                    h = line.split(":")[1]
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt  # deprecated, still in 3.11
        return crypt.crypt(password, h) == h

    def check_ssh_start(self, name):
        """What each ssh was started with: nothing of alice's."""
        import json
        seen, signals = [], []
        if os.path.exists("/etc/mpasswd/ssh-seen"):
            seen = [json.loads(line) for line in open("/etc/mpasswd/ssh-seen")]
            os.unlink("/etc/mpasswd/ssh-seen")
        if os.path.exists("/etc/mpasswd/ssh-signals"):
            signals = open("/etc/mpasswd/ssh-signals").read().splitlines()
            os.unlink("/etc/mpasswd/ssh-signals")
        self.check(len(seen) >= 1 and len(signals) == len(seen),
                   "%s: ssh was started as root and said how (%d times)" % (name, len(seen)))
        for s in seen:
            env = set(s["env"]) - {"PWD"}  # sh sets PWD itself
            problems = [what for what, bad in (
                ("real and effective uid root", s["uid"] != [0, 0, 0]),
                ("gid root", s["gid"] != [0, 0, 0]),
                ("no supplementary groups of alice's", set(s["groups"]) - {0}),
                ("working folder /", s["cwd"] != "/"),
                ("umask 077", s["umask"] != 0o077),
                ("environment PATH and LC_ALL only", env - {"PATH", "LC_ALL"}),
                ("descriptors 0, 1 and 2 only", s["fds"] != [0, 1, 2]),
                ("a session of its own (no terminal)", not s["sid_is_pid"]),
                ("RLIMIT_NOFILE of at least 1024", 0 <= s["nofile"] < 1024),
                ("no core files", s["core"] != 0),
                ("RLIMIT_FSIZE unlimited", s["fsize"] != -1),
                ("no signal blocked", s["sigblk"] != 0)) if bad]
            self.check(not problems, "%s: ssh started with %s" % (
                name, "nothing of alice's" if not problems else
                "NOT " + ", ".join(problems) + ": " + repr(s)))
        for line in signals:
            self.check("SigIgn:\t0000000000000000" in line and "SigBlk:\t0000000000000000" in line,
                       "%s: ssh started with no signal ignored or blocked (%s)" % (name, line))

    def check(self, ok, what):
        print(("ok: " if ok else "FAIL: ") + what, flush=True)
        if not ok:
            self.failures.append(what)

    def attempt(self, name, new, prelude=""):
        before_log = open(self.target_log).read()
        status, out = self.passwd(new, prelude)
        ran = open(HOME + "/ran").read() if os.path.exists(HOME + "/ran") else ""
        got = open(HOME + "/got", "rb").read() if os.path.exists(HOME + "/got") else b""
        self.check(ran == "", "%s: nothing of alice's ran (ran: %r)" % (name, ran))
        self.check(got == b"", "%s: alice's fake target received nothing (%d octets%s)"
                   % (name, len(got), ", the fleet secret among them" if SECRET.encode() in got
                      else ""))
        self.check(status == 0, "%s: passwd succeeded (exit %d)" % (name, status)
                   + ("" if status == 0 else "\n" + out))
        self.check(self.remote_password() == new,
                   "%s: the real target has the new password" % name)
        changed = self.local_password_is(new)
        self.check(changed, "%s: the local password is the new one" % name)
        self.check_ssh_start(name)
        log = open(self.target_log).read()[len(before_log):]
        self.check("AUTH" in log or "authenticated" in log or "changed" in log,
                   "%s: the real target's log shows the session" % name)
        self.check(SECRET not in log and new not in log and SECRET not in out,
                   "%s: no secret in the target's log or on alice's terminal" % name)
        return new if changed else OLD_LOCAL


def inside(scratch):
    bed = Bed(scratch)
    record = HOME + "/record"
    write(record, RECORD % HOME, 0o755, bed.alice)
    global OLD_LOCAL
    # 1. Commands of hers in ~/.ssh/config.
    bed.setup_alice("Match exec \"%s match-exec\"\n"
                    "Host *\n"
                    "  ProxyCommand %s proxy-command %%h %%p\n"
                    "  KnownHostsCommand %s known-hosts-command %%H\n"
                    "  PermitLocalCommand yes\n"
                    "  LocalCommand %s local-command\n" % (record, record, record, record))
    OLD_LOCAL = bed.attempt("ProxyCommand/Match exec/KnownHostsCommand", "Pr0xy-N3w-Pass!")

    # 2. A ControlPath to a master connection of hers.
    bed.setup_alice("Host *\n  ControlMaster auto\n  ControlPath %s/ctl\n" % HOME)
    bed.setup_alice_master()
    OLD_LOCAL = bed.attempt("ControlPath to her master", "C0ntrol-N3w-Pass!")

    # 3. Her limits and signals: a tiny descriptor limit, SIGPIPE ignored
    # and a pending alarm, with the master still in her config.
    OLD_LOCAL = bed.attempt("ulimit -Sn 16 -Sf 8 -Sc 1000, umask 0, SIGPIPE, SIGTERM and "
                            "SIGCHLD ignored", "L1mits-N3w-Pass!",
                            prelude="ulimit -Sn 16; ulimit -Sf 8; ulimit -Sc 1000; umask 0; "
                                    "trap '' PIPE TERM CHLD; ")

    # 4. The journal of runs: one whole record per push, root's only,
    # whatever her umask and limits, naming her, with no password.
    runs = "/etc/mpasswd/runs"
    st = os.lstat(runs)
    bed.check(stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700,
              "the journal folder is root's, mode 0700 (%o, uid %d)"
              % (stat.S_IMODE(st.st_mode), st.st_uid))
    records = sorted(f for f in os.listdir(runs) if f.endswith(".run"))
    bed.check(len(records) == 3, "three runs recorded (%s)" % records)
    for name in records:
        st = os.lstat(os.path.join(runs, name))
        text = open(os.path.join(runs, name)).read()
        bed.check(stat.S_ISREG(st.st_mode) and st.st_uid == 0 and
                  stat.S_IMODE(st.st_mode) == 0o600,
                  "%s: root's, mode 0600 (%o)" % (name, stat.S_IMODE(st.st_mode)))
        bed.check(text.startswith("mpasswd-run 1\n") and text.endswith("\nend\n") and
                  "\nprogram pam_mctp\n" in text and "\nuid %d\n" % bed.alice[0] in text and
                  "\nuid_name alice\n" in text and "\nended 0\n" not in text and
                  " ok 250 change " in text,
                  "%s: a whole record of alice's finished push" % name)
        bed.check(not any(p in text for p in (SECRET, "Pr0xy-N3w-Pass!", "C0ntrol-N3w-Pass!",
                                              "L1mits-N3w-Pass!")),
                  "%s: no secret or password" % name)
    if bed.failures:
        print("FAIL: %d checks failed" % len(bed.failures))
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        sys.exit(inside(sys.argv[2]))
    sys.exit(outside())
