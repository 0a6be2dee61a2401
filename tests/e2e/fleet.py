"""A fleet of socket-activated mpasswdd responders on 127.0.0.1 ports, each
with its own pam_wrapper service folder and pam_matrix password file, plus
the controller's config and secret file. Shared by the controller tests and
the benchmark."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

from mctp_client import NOBODY_GROUP, NOBODY_PASSWD, free_port, privsep_directory, verifier

SERVICE = "mpasswdd-fleet"
# The controller's name: mpasswd.conf's name and the targets' [controller NAME]
# (SCRAM's user name).
CONTROLLER = "control-test"
USERS = ["alice", "bob", "carol"]


# pam_wrapper keeps its copy of the service folder in /tmp/pam.X, where X
# is one character (the path must be as long as /etc/pam.d): dozens of
# responders starting at once collide there and read each other's service
# files. Each responder process therefore gets a /tmp of its own, in a
# private mount namespace (a user namespace too when not root). The
# wrappers are preloaded into mpasswdd only, not into unshare, sh or mount.
PRIVATE_TMP = (["unshare", "--mount"] if os.geteuid() == 0 else
               ["unshare", "--user", "--map-root-user", "--mount"]) + [
    "sh", "-c", 'mount -t tmpfs -o mode=1777 tmpfs /tmp && '
                'export LD_PRELOAD="$FLEET_PRELOAD" && exec "$0" "$@"']


def fleet_env():
    """What a Fleet needs, from the environment the test runner sets."""
    env = {k: os.environ[k] for k in
           ("MPASSWDD", "PAM_WRAPPER_LIB", "NSS_WRAPPER_LIB", "PAM_MATRIX_MODULE")}
    # Only a 'strict' responder needs it (its check service).
    env["PWQUALITY_MODULE"] = os.environ.get("PWQUALITY_MODULE", "")
    return env


def _write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Fleet:
    """n responders. kinds maps an index to a special case:
    'closed' (nothing listens), 'silent' (accepts, never answers),
    'other-secret' (expects another secret), 'deny-alice' (policy refuses
    alice), 'strict' (its check service, TEST's, refuses every password:
    pam_pwquality minlen=40)."""

    def __init__(self, env, n, secret, kinds=None, old_password="Old-Passw0rd-1",
                 workdir=None, cheap=True, tls=None):
        """tls maps an index to (certificate, key): that responder does TLS."""
        self.env = env  # MPASSWDD, PAM_WRAPPER_LIB, NSS_WRAPPER_LIB, PAM_MATRIX_MODULE
        # Not under /tmp: each responder gets a private /tmp (see below).
        self.dir = workdir or tempfile.mkdtemp(prefix="mpasswd-fleet-", dir="/var/tmp")
        self.secret = secret
        self.old_password = old_password
        self.kinds = kinds or {}
        self.procs = []
        self.listeners = []
        self.ports = []
        self.logs = []
        # The private /tmp hides the build tree when it is under /tmp (a
        # fresh clone in CI): run a copy from the fleet's own folder.
        mpasswdd = os.path.join(self.dir, "mpasswdd")
        shutil.copy2(env["MPASSWDD"], mpasswdd)
        # The same for pam_pwquality.so (unpacked into the tree's .deps/
        # where the host has none), which a 'strict' responder loads.
        pwquality = env.get("PWQUALITY_MODULE", "")
        if pwquality and os.path.exists(pwquality) and any(
                k == "strict" for k in (kinds or {}).values()):
            pwquality = os.path.join(self.dir, "pam_pwquality.so")
            shutil.copy2(env["PWQUALITY_MODULE"], pwquality)
        # And for the TLS plug-in (tls = yes loads it by path at run time).
        tls_plugin = os.environ.get("MPASSWDD_TLS_PLUGIN", "")
        if tls_plugin and tls:
            copy = os.path.join(self.dir, "mpasswdd-tls.so")
            shutil.copy2(tls_plugin, copy)
            tls_plugin = copy
        users = os.path.join(self.dir, "passwd")
        groups = os.path.join(self.dir, "group")
        _write(users, "root:x:0:0:root:/root:/bin/sh\n" + "".join(
            "%s:x:%d:%d::/home/%s:/bin/sh\n" % (u, 1001 + i, 1001 + i, u)
            for i, u in enumerate(USERS)) + NOBODY_PASSWD, 0o644)
        _write(groups, "root:x:0:\n" + "".join(
            "%s:x:%d:\n" % (u, 1001 + i) for i, u in enumerate(USERS)) + NOBODY_GROUP, 0o644)
        good = verifier(mpasswdd, secret)
        other = verifier(mpasswdd, secret + "-other") if "other-secret" in self.kinds.values() else None
        starting = []
        self._proc_of = {}  # responder index -> index in self.procs
        for i in range(n):
            kind = self.kinds.get(i, "normal")
            port = self._new_port()
            self.ports.append(port)
            if kind == "closed":
                # Bound and never listening: a connect is refused, and
                # nothing else (a later responder of this fleet, another
                # suite running beside it) can take the port meanwhile.
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                self.listeners.append(s)
                self.logs.append(None)
                continue
            if kind == "silent":
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen(16)
                self.listeners.append(s)
                self.logs.append(None)
                continue
            tdir = os.path.join(self.dir, "t%d" % i)
            services = os.path.join(tdir, "services")
            os.makedirs(services)
            passdb = self.passdb(i)
            _write(passdb, "".join("%s:%s:%s\n" % (u, old_password, SERVICE) for u in USERS))
            _write(os.path.join(services, SERVICE),
                   "password [success=ok auth_err=ignore default=bad] %s passdb=%s\n"
                   "password required pam_permit.so\n" % (env["PAM_MATRIX_MODULE"], passdb), 0o644)
            _write(os.path.join(services, "other"), "password required pam_deny.so\n", 0o644)
            # TEST's check service: accepts every password, stores nothing;
            # on a 'strict' responder it refuses every one, with a reason.
            _write(os.path.join(services, "mpasswdd-check"),
                   ("password requisite %s minlen=40 enforce_for_root retry=1\n"
                    % pwquality if kind == "strict" else "")
                   + "password required pam_permit.so\n", 0o644)
            conf = os.path.join(tdir, "mpasswdd.conf")
            tls_lines = ("tls = yes\ntls_certificate = %s\ntls_key = %s\n" % tls[i]
                         if tls and i in tls else "")
            _write(conf, "host_name = t%d\npam_service = %s\nauth_failure_delay = 0.1\n"
                   "state_directory = %s\nprivsep_directory = %s\n%s%s"
                   "[controller %s]\nfrom = 127.0.0.1\nsecret_verifier = %s\n"
                   % (i, SERVICE, os.path.join(tdir, "state"), privsep_directory(tdir), "deny_users = alice\n" if kind == "deny-alice" else "",
                      tls_lines, CONTROLLER, other if kind == "other-secret" else good))
            log_path = os.path.join(tdir, "log")
            self.logs.append(log_path)
            cmd = ["-E", "FLEET_PRELOAD=%s %s" % (env["PAM_WRAPPER_LIB"], env["NSS_WRAPPER_LIB"]),
                   "-E", "PAM_WRAPPER=1", "-E", "PAM_WRAPPER_SERVICE_DIR=" + services,
                   "-E", "NSS_WRAPPER_PASSWD=" + users, "-E", "NSS_WRAPPER_GROUP=" + groups,
                   ] + (["-E", "MPASSWDD_TLS_PLUGIN=" + tls_plugin] if tls_plugin else []
                        ) + PRIVATE_TMP + [mpasswdd, "-c", conf, "--log-stderr"]
            self._proc_of[i] = len(self.procs)
            self.procs.append(self._start(port, cmd, log_path))
            starting.append((i, cmd, log_path))
        deadline = time.time() + 30
        for i, cmd, log_path in starting:
            while True:
                with open(log_path, "rb") as f:
                    text = f.read()
                if b"Listening on" in text:
                    break
                proc = self.procs[self._proc_of[i]][0]
                if proc.poll() is not None:
                    # The port picked by free_port() was taken in between
                    # (tests run side by side): start again on another.
                    if b"already in use" not in text or time.time() > deadline:
                        raise RuntimeError("a responder did not start: %s\n%s"
                                           % (log_path, text.decode(errors="replace")))
                    self.procs[self._proc_of[i]][1].close()
                    self.ports[i] = self._new_port()
                    self.procs[self._proc_of[i]] = self._start(self.ports[i], cmd, log_path)
                    continue
                if time.time() > deadline:
                    raise RuntimeError("a responder did not start: " + log_path)
                time.sleep(0.01)
        # The controller's side: config and secret file, root-only.
        self.secret_file = os.path.join(self.dir, "secret")
        _write(self.secret_file, secret + "\n")
        self.config = os.path.join(self.dir, "mpasswd.conf")
        self.write_config()

    def _new_port(self):
        """A free port that no target of this fleet has: the kernel may hand
        out a port again once the socket that found it is closed."""
        while True:
            port = free_port()
            if port not in self.ports:
                return port

    def _start(self, port, cmd, log_path):
        """systemd-socket-activate on 127.0.0.1:port running cmd (its
        options then the command); returns (process, log file)."""
        log = open(log_path, "wb")
        proc = subprocess.Popen(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port, "-a",
                                 "--inetd"] + cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
        return proc, log

    def write_config(self, extra="", ports=None, options=""):
        """ports: what the hosts file names instead of the responders' own
        (a relay in front of them); options: words after each host."""
        # The journal of runs in the fleet's folder, never this machine's.
        self.journal = os.path.join(self.dir, "journal")
        _write(self.config, "name = " + CONTROLLER + "\nsecret_file = %s\nhosts = %s\n"
               "journal_directory = %s\n%s"
               % (self.secret_file, os.path.join(self.dir, "hosts"), self.journal, extra))
        _write(os.path.join(self.dir, "hosts"), "# the test fleet\n" + "".join(
            "127.0.0.1:%d%s\n" % (p, " " + options if options else "")
            for p in (ports or self.ports)), 0o644)

    def passdb(self, i):
        return os.path.join(self.dir, "t%d" % i, "passdb")

    def password_of(self, i, user):
        with open(self.passdb(i)) as f:
            for line in f:
                u, pw, _ = line.rstrip("\n").split(":", 2)
                if u == user:
                    return pw
        return None

    def reset(self):
        for i in range(len(self.ports)):
            if os.path.exists(self.passdb(i)):
                _write(self.passdb(i), "".join(
                    "%s:%s:%s\n" % (u, self.old_password, SERVICE) for u in USERS))

    def targets(self, indexes=None):
        idx = range(len(self.ports)) if indexes is None else indexes
        return ["127.0.0.1:%d" % self.ports[i] for i in idx]

    def log_text(self, i):
        if self.logs[i] is None:
            return ""
        with open(self.logs[i], "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        for proc, log in self.procs:
            proc.terminate()
        for proc, log in self.procs:
            proc.wait(timeout=10)
            log.close()
        for s in self.listeners:
            s.close()

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)
