"""A tiny MCTP client and test helpers shared by the end-to-end tests."""
import base64
import hashlib
import hmac
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

    def ehlo(self, name):
        """EHLO; the reply's lines."""
        self.transcript.append("C: EHLO " + name)
        self.sock.sendall(b"EHLO " + name.encode() + b"\r\n")
        lines = [self.reply()]
        while lines[-1][3:4] == "-":
            lines.append(self.reply())
        return lines

    def scram(self, name, secret, mechanism="SCRAM-SHA-256"):
        """AUTH SCRAM-SHA-256 as controller `name`: the final reply. Checks
        the server's signature before it sends the empty line."""
        c = ScramClient(name, secret)
        r = self.send("AUTH %s %s" % (mechanism, b64(c.first())), "AUTH %s (client-first)" % mechanism)
        if not r.startswith("334 "):
            return r
        r = self.send(b64(c.final(unb64(r[4:]))), "(client-final)")
        if not r.startswith("334 "):
            return r
        if not c.verify(unb64(r[4:])):
            raise AssertionError("the target's SCRAM signature is wrong")
        return self.send("", "(empty line)")

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


# SCRAM-SHA-256 (RFC 5802, 7677) in a few lines, for the tests and the
# benchmark: the controller's half and a target's half.
def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def unb64(text):
    return base64.b64decode(text, validate=True).decode("ascii")


def _hmac(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


class ScramClient:
    """cache: a dict shared by sessions, (salt, iterations) -> SaltedPassword,
    as the controller's engine keeps it for one run."""

    def __init__(self, name, secret, nonce=None, cache=None):
        self.name, self.secret, self.cache = name, secret, cache
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.bare = "n=%s,r=%s" % (name, self.nonce)
        self.server_signature = None

    def first(self):
        return "n,," + self.bare

    def final(self, server_first):
        f = dict(x.split("=", 1) for x in server_first.split(","))
        assert f["r"].startswith(self.nonce) and f["r"] != self.nonce, server_first
        key = (f["s"], f["i"])
        if self.cache is not None and key in self.cache:
            salted = self.cache[key]
        else:
            salted = hashlib.pbkdf2_hmac("sha256", self.secret.encode(),
                                         base64.b64decode(f["s"]), int(f["i"]))
            if self.cache is not None:
                self.cache[key] = salted
        without_proof = "c=biws,r=" + f["r"]
        auth_message = ",".join([self.bare, server_first, without_proof])
        client_key = _hmac(salted, "Client Key")
        proof = _xor(client_key, _hmac(hashlib.sha256(client_key).digest(), auth_message))
        self.server_signature = _hmac(_hmac(salted, "Server Key"), auth_message)
        return without_proof + ",p=" + base64.b64encode(proof).decode()

    def verify(self, server_final):
        return (self.server_signature is not None and server_final.startswith("v=") and
                hmac.compare_digest(base64.b64decode(server_final[2:]), self.server_signature))


def verifier(mpasswdd, secret):
    """The secret_verifier value of a secret, made by mpasswdd --verifier
    (4096 iterations: the tests' secrets need no stretching)."""
    out = subprocess.run([mpasswdd, "--verifier", "--iterations", "4096"], input=secret + "\n",
                         capture_output=True, text=True, check=True)
    line = out.stdout.strip()
    assert line.startswith("secret_verifier = SCRAM-SHA-256$"), line
    return line[len("secret_verifier = "):]


def scram_server_first(client_first, secret, salt=b"0123456789abcdef", iterations=4096):
    """A target's answer for a secret it knows (tests' fake targets):
    (server-first, state for scram_server_final)."""
    bare = client_first.split(",", 2)[2]
    nonce = dict(x.split("=", 1) for x in bare.split(","))["r"] + "srv" + b64(os.urandom(9))
    sf = "r=%s,s=%s,i=%d" % (nonce, b64(salt), iterations)
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    return sf, (bare, sf, salted)


def scram_server_final(client_final, state):
    """v=... for a right proof, None for a wrong one."""
    bare, sf, salted = state
    without_proof, proof = client_final.rsplit(",p=", 1)
    auth_message = ",".join([bare, sf, without_proof])
    stored = hashlib.sha256(_hmac(salted, "Client Key")).digest()
    client_key = _xor(base64.b64decode(proof), _hmac(stored, auth_message))
    if not hmac.compare_digest(hashlib.sha256(client_key).digest(), stored):
        return None
    return "v=" + b64(_hmac(_hmac(salted, "Server Key"), auth_message))


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
            if "MPASSWDD_TLS_PLUGIN" in os.environ:  # the build tree's (tls = yes)
                cmd += ["-E", "MPASSWDD_TLS_PLUGIN=" + os.environ["MPASSWDD_TLS_PLUGIN"]]
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


class LoopbackServer:
    """A listening socket on 127.0.0.1 served by a thread: subclasses
    answer each accepted connection in _connection(conn), one at a time."""

    def __init__(self, backlog=16):
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._connection(conn)

    def target(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=10)


class ScriptedTarget(LoopbackServer):
    """A fake MCTP target on 127.0.0.1 (a thread, no mpasswdd): a banner,
    250 to every command, and `refusal` (a whole reply line, bytes) to
    VRFY and CHPW; 221 to QUIT. It records what it received, but not the
    AUTH line."""

    def __init__(self, refusal=b"554 " + HOSTILE_TEXT, secret=None):
        super().__init__()
        self.refusal = refusal
        self.secret = secret  # with one: EHLO offers SCRAM, and AUTH runs it
        self.received = []
        self.start()

    def _connection(self, conn):
        with conn:
            conn.settimeout(10)
            self._session(conn)

    def _session(self, conn):
        buf = b""
        scram = None  # during AUTH SCRAM: ("final", state) or ("empty", None)
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
            if verb != b"AUTH" and scram is None:
                self.received.append(line.rstrip(b"\r"))
            if verb == b"EHLO" and self.secret:
                conn.sendall(b"250-scripted hello\r\n250 AUTH SCRAM-SHA-256\r\n")
            elif scram is not None and scram[0] == "final":
                v = scram_server_final(unb64(line.strip().decode()), scram[1])
                conn.sendall(b"334 " + b64(v or "e=invalid-proof").encode() + b"\r\n")
                scram = ("empty", None)
            elif scram is not None:
                conn.sendall(b"250 authenticated as ctl\r\n")
                scram = None
            elif verb == b"AUTH" and self.secret:
                sf, state = scram_server_first(unb64(line.split()[2].decode()), self.secret)
                conn.sendall(b"334 " + b64(sf).encode() + b"\r\n")
                scram = ("final", state)
            elif verb in (b"VRFY", b"CHPW"):
                conn.sendall(self.refusal + b"\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")



class StagedTarget(LoopbackServer):
    """A fake MCTP target on 127.0.0.1 that holds the controller's verifier
    and announces TEST: it passes SCRAM and accepts every TEST. What it
    does with a change depends on `mode`: "ok" takes it (250); "gone"
    closes every connection after the first at once, without a banner (a
    host that died between TEST and CHPW); "silent" takes CHPW and the
    password and never answers the final "." (a host that died after the
    password was sent). It counts AUTHs and the changes it took."""

    def __init__(self, secret, mode="ok"):
        super().__init__()
        self.secret = secret
        self.mode = mode
        self.connections = 0
        self.auths = 0
        self.tests = 0
        self.changes = 0  # CHPW sessions that got as far as the final "."
        self.start()

    def _connection(self, conn):
        with conn:
            conn.settimeout(10)
            self.connections += 1
            if self.mode == "gone" and self.connections > 1:
                return
            try:
                self._session(conn)
            except OSError:
                pass

    def _lines(self, conn):
        buf = b""
        while True:
            while b"\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            yield line.rstrip(b"\r")

    def _session(self, conn):
        conn.sendall(b"220 staged ready\r\n")
        lines = self._lines(conn)
        verb_of_data = None
        for line in lines:
            verb = line[:4]
            if verb == b"EHLO":
                conn.sendall(b"250-staged hello\r\n250-AUTH SCRAM-SHA-256\r\n250 TEST\r\n")
            elif verb == b"AUTH":
                sf, state = scram_server_first(unb64(line.split()[2].decode()), self.secret)
                conn.sendall(b"334 " + b64(sf).encode() + b"\r\n")
                final = next(lines, None)
                if final is None:
                    return
                v = scram_server_final(unb64(final.strip().decode()), state)
                conn.sendall(b"334 " + b64(v or "e=invalid-proof").encode() + b"\r\n")
                if next(lines, None) is None:
                    return
                if not v:
                    conn.sendall(b"530 authentication failed\r\n")
                    return
                self.auths += 1
                conn.sendall(b"250 authenticated as ctl\r\n")
            elif verb in (b"TEST", b"CHPW", b"VRFY"):
                verb_of_data = verb
                conn.sendall(b"250 ok\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                for body in lines:
                    if body == b".":
                        break
                    conn.sendall(b"355 data line received\r\n")
                if verb_of_data == b"TEST":
                    self.tests += 1
                    conn.sendall(b"250 acceptable\r\n")
                elif self.mode == "silent":
                    self.changes += 1
                    for _ in lines:  # holds the connection, answers nothing
                        pass
                    return
                else:
                    self.changes += 1
                    conn.sendall(b"250 password changed\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"500 unknown\r\n")


def control_octets(data, allowed=b"\n"):
    """The octets of data (bytes) outside 0x20-0x7E, except `allowed`."""
    return sorted({c for c in data if (c < 0x20 or c > 0x7E) and c not in allowed})


class FakeTarget(LoopbackServer):
    """A fake target (a thread on 127.0.0.1, optionally TLS with the given
    certificate and key): it says yes to everything. EHLO offers SCRAM
    (and PLUS), AUTH gets a well-formed challenge, the proof a made-up
    signature, every other line 250. It records every octet it receives."""

    def __init__(self, tls=None):
        import ssl
        super().__init__()
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(tls[0], tls[1])
        self.received = b""
        self.lines = []
        self.start()

    def _connection(self, conn):
        try:
            if self.ctx:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            conn.settimeout(10)
            self._session(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def _session(self, conn):
        buf = b""
        conn.sendall(b"220 fake MCTP ready\r\n")
        while True:
            while b"\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                self.received += chunk
                buf += chunk
            line, buf = buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("ascii", "replace")
            self.lines.append(line)
            if line.upper().startswith("EHLO"):
                conn.sendall(b"250-fake hello\r\n250 AUTH SCRAM-SHA-256 SCRAM-SHA-256-PLUS\r\n")
            elif line.upper().startswith("AUTH SCRAM"):
                first = unb64(line.split()[2])
                nonce = first.split("r=", 1)[1]
                sf = "r=%sfake,s=%s,i=4096" % (nonce, b64(os.urandom(16)))
                conn.sendall(b"334 " + b64(sf).encode() + b"\r\n")
            elif line.startswith("Yz"):  # base64 of "c=...": the proof
                conn.sendall(b"334 " + b64("v=" + b64(os.urandom(32))).encode() + b"\r\n")
            elif line.upper() == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")



class TlsRelay(LoopbackServer):
    """A man in the middle between two TLS connections: it presents its
    own certificate (one the controller trusts), connects to the real
    target over TLS and passes the octets through both ways."""

    def __init__(self, tls, upstream_port):
        import ssl
        super().__init__(backlog=4)
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(tls[0], tls[1])
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.check_hostname = False
        self.client_ctx.verify_mode = ssl.CERT_NONE
        self.upstream_port = upstream_port
        self.relayed = 0
        self.start()

    def _connection(self, conn):
        import threading
        try:
            down = self.server_ctx.wrap_socket(conn, server_side=True)
            up = self.client_ctx.wrap_socket(
                socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10))
        except OSError:
            conn.close()
            return
        self.relayed += 1

        def pump(a, b):
            try:
                while True:
                    data = a.recv(4096)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pump, args=(down, up), daemon=True).start()
        threading.Thread(target=pump, args=(up, down), daemon=True).start()

