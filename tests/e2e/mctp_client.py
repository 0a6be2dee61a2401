"""A tiny MCTP client and test helpers shared by the end-to-end tests."""
import os
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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
