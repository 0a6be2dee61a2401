"""A tiny MCTP client and test helpers shared by the end-to-end tests."""
import os
import select
import socket
import subprocess
import tempfile
import time


class Client:
    def __init__(self, host, port, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.transcript = []

    def reply(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("connection closed; got %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.rstrip(b"\r").decode("ascii")
        self.transcript.append("S: " + text)
        return text

    def send(self, line, shown=None):
        self.transcript.append("C: " + (shown if shown is not None else line))
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def closed(self):
        """True when the server has closed the connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def answer_prompts(fd, answers, is_prompt, timeout, exited=lambda: False):
    """Reads a pseudo-terminal's master side until end of file, `timeout`
    seconds, or exited() while no output is waiting. Each time the output
    that came after the last answer looks like a prompt (is_prompt of it,
    right-stripped), writes the next of answers and a newline: a prompt is
    answered once however its output is split into reads. Returns the
    output and whether the time ran out."""
    answers = list(answers)
    out = since = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            if exited():
                return out, False
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return out, False
        if not chunk:
            return out, False
        out += chunk
        since += chunk
        if answers and is_prompt(since.rstrip()):
            os.write(fd, answers.pop(0).encode() + b"\n")
            since = b""
    return out, True


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def privsep_directory(parent):
    """An empty folder, root's and 0755 when the tests run as root, for
    the network child's chroot (privsep_directory), so that no test needs
    /usr/share/mpasswdd/empty on the host."""
    path = os.path.join(parent, "empty")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    return path


# Lines for the wrappers' passwd and group files: the network child's
# user (privsep_user _mpasswdd falls back to nobody).
NOBODY_PASSWD = "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
NOBODY_GROUP = "nogroup:x:65534:\n"


def hash_secret(mpasswdd, secret):
    out = subprocess.run([mpasswdd, "--hash-secret", "--cost", "1"], input=secret + "\n",
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Responder:
    """mpasswdd behind systemd-socket-activate --inetd on 127.0.0.1."""

    def __init__(self, mpasswdd, config_path, env=(), address="127.0.0.1", log_path=None):
        self.log_path = log_path or tempfile.mktemp(prefix="mpasswdd-log-")
        self.address = address.strip("[]")
        deadline = time.time() + 10
        # The port free_port() picked may be taken before it is bound again
        # (tests run side by side): then try another.
        for _ in range(5):
            self.port = free_port()
            self.log = open(self.log_path, "wb")
            cmd = ["systemd-socket-activate", "-l", "%s:%d" % (address, self.port), "-a",
                   "--inetd"]
            for kv in env:
                cmd += ["-E", kv]
            cmd += [mpasswdd, "-c", config_path, "--log-stderr"]
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self.log)
            text = b""
            while time.time() < deadline:
                with open(self.log_path, "rb") as f:
                    text = f.read()
                if b"Listening on" in text:
                    return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            self.log.close()
            if b"already in use" not in text:
                break
        self.proc.kill()
        raise RuntimeError("systemd-socket-activate did not start: " +
                           text.decode("utf-8", "replace"))

    def connect(self):
        return Client(self.address, self.port)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


# What a hostile target answers: a window-title change (OSC ... BEL), a
# screen clear (CSI 2 J), a bare CR and a forged line meant to look like
# mpasswd's own summary, and a C1 CSI in UTF-8.
HOSTILE_TEXT = (b"no\x1b]0;pwned\x07\x1b[2J\ralice: password changed on 9 of 9 targets"
                b"\xc2\x9b31m")


class ScriptedTarget:
    """A fake MCTP target on 127.0.0.1 (a thread, no mpasswdd): a banner,
    250 to every command, and `refusal` (a whole reply line, bytes) to
    VRFY and CHPW; 221 to QUIT. It records what it received, but not the
    AUTH line."""

    def __init__(self, refusal=b"554 " + HOSTILE_TEXT):
        import threading
        self.refusal = refusal
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                self._session(conn)

    def _session(self, conn):
        buf = b""
        conn.sendall(b"220 scripted ready\r\n")
        while True:
            while b"\n" not in buf:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            verb = line[:4]
            if verb != b"AUTH":
                self.received.append(line.rstrip(b"\r"))
            if verb in (b"VRFY", b"CHPW"):
                conn.sendall(self.refusal + b"\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")

    def target(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)


def control_octets(data, allowed=b"\n"):
    """The octets of data (bytes) outside 0x20-0x7E, except `allowed`."""
    return sorted({c for c in data if (c < 0x20 or c > 0x7E) and c not in allowed})
