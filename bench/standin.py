#!/usr/bin/env python3
"""Benchmark stand-in (not a test, not a responder): N MCTP targets in one
asyncio process on 127.0.0.1, each on a port of its own, cheap enough that
a benchmark of the controller measures the controller.

Each target speaks the part of MCTP a password change uses, in the real
responder's order and reply codes (mpasswd-protocol(7)): the banner, EHLO
(AUTH SCRAM-SHA-256, TEST, LINEMAX), AUTH SCRAM-SHA-256 checked against a
verifier as the real responder keeps it (StoredKey and ServerKey, never
the secret: a wrong proof gets 530, and the controller checks the
server's signature), VRFY, TEST and CHPW with DATA, the password line and
".", RSET, NOOP, QUIT. No PAM and nothing stored: the password is counted
and dropped. Every reply, the banner included, is held back by --rtt
milliseconds, as a network round trip would.

usage: bench/standin.py [-n N] [--rtt MS] [--secret-file FILE]
                        [--controller NAME] [--hosts-out FILE]
It binds N ports (chosen by the kernel), writes one "127.0.0.1:PORT" line a
target to --hosts-out (an mpasswd hosts file), prints "ready N" and then
answers lines on standard input: "stats" prints one JSON line of counts
(sessions, authenticated, auth_failed, vrfy, tested, changed, open, peak
open); "reset" zeroes them; "quit" or the end of input stops it."""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import resource
import socket
import sys

LINE_MAX = 1024  # the SCRAM lines; every line here is bounded by it


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def hmac256(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


class Verifier:
    """SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>, as mpasswdd
    --verifier writes it."""

    def __init__(self, secret, iterations=4096, salt=None):
        self.salt = salt or os.urandom(16)
        self.iterations = iterations
        salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), self.salt, iterations)
        self.stored_key = hashlib.sha256(hmac256(salted, "Client Key")).digest()
        self.server_key = hmac256(salted, "Server Key")


class Stats:
    def __init__(self):
        self.reset()
        self.open = 0

    def reset(self):
        self.sessions = self.authenticated = self.auth_failed = 0
        self.vrfy = self.tested = self.changed = self.peak_open = 0

    def as_dict(self):
        return {k: getattr(self, k) for k in ("sessions", "authenticated", "auth_failed", "vrfy",
                                               "tested", "changed", "open", "peak_open")}


class Target:
    def __init__(self, name, controller, verifier, rtt, stats):
        self.name, self.controller, self.verifier = name, controller, verifier
        self.rtt, self.stats = rtt, stats

    async def session(self, reader, writer):
        st = self.stats
        st.sessions += 1
        st.open += 1
        st.peak_open = max(st.peak_open, st.open)
        try:
            await self._dialogue(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError):
            pass
        finally:
            st.open -= 1
            writer.close()

    async def _reply(self, writer, text):
        if self.rtt:
            await asyncio.sleep(self.rtt)
        writer.write(text.encode() + b"\r\n")
        await writer.drain()

    async def _line(self, reader):
        line = await reader.readuntil(b"\n")
        if len(line) > LINE_MAX:
            raise ValueError("line too long")
        return line.rstrip(b"\r\n").decode("ascii", "replace")

    async def _dialogue(self, reader, writer):
        st = self.stats
        await self._reply(writer, "220 %s MCTP ready" % self.name)
        greeted = authed = False
        pending = None  # "TEST" or "CHPW" after the verb, "DATA" while receiving
        lines = 0
        receiving = None  # the verb whose password is being received
        while True:
            line = await self._line(reader)
            if pending == "DATA":
                if line != ".":
                    lines += 1
                    await self._reply(writer, "355 go on")
                    continue
                verb, pending = receiving, None
                if lines != 1:
                    await self._reply(writer, "501 exactly one password line")
                elif verb == "TEST":
                    st.tested += 1
                    await self._reply(writer, "250 password acceptable")
                else:
                    st.changed += 1
                    await self._reply(writer, "250 password changed")
                continue
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO" and not greeted:
                greeted = True
                await self._reply(writer, "250-%s hello %s [127.0.0.1]\r\n250-AUTH SCRAM-SHA-256"
                                  "\r\n250-TEST\r\n250 LINEMAX 128" % (self.name, arg))
            elif verb == "AUTH" and greeted and not authed:
                authed = await self._scram(reader, writer, arg)
                if not authed:
                    return
            elif verb == "VRFY" and authed:
                st.vrfy += 1
                await self._reply(writer, "250 %s may be managed" % arg)
            elif verb in ("TEST", "CHPW") and authed and pending is None:
                pending = verb
                await self._reply(writer, "250 send DATA")
            elif verb == "DATA" and pending in ("TEST", "CHPW"):
                receiving, pending, lines = pending, "DATA", 0
                await self._reply(writer, "354 send the password, end with .")
            elif verb == "NOOP":
                await self._reply(writer, "250 ok")
            elif verb == "RSET":
                greeted = authed = False
                pending = None
                await self._reply(writer, "250 reset")
            elif verb == "QUIT":
                await self._reply(writer, "221 bye")
                return
            else:
                await self._reply(writer, "503 bad sequence of commands")

    async def _scram(self, reader, writer, arg):
        """AUTH SCRAM-SHA-256 <client-first>: True once authenticated."""
        v = self.verifier
        mech, _, first64 = arg.partition(" ")
        try:
            first = base64.b64decode(first64, validate=True).decode("ascii")
            gs2, _, bare = first.partition(",,")
            attrs = dict(x.split("=", 1) for x in bare.split(","))
            if mech.upper() != "SCRAM-SHA-256" or gs2 != "n" or attrs.get("n") != self.controller:
                raise ValueError(first)
            nonce = attrs["r"] + b64(os.urandom(12))
        except (ValueError, KeyError):
            await self._reply(writer, "501 bad SCRAM client-first")
            return False
        server_first = "r=%s,s=%s,i=%d" % (nonce, b64(v.salt), v.iterations)
        await self._reply(writer, "334 " + b64(server_first))
        try:
            final = base64.b64decode(await self._line(reader), validate=True).decode("ascii")
            without_proof, _, proof64 = final.rpartition(",p=")
            if not without_proof.startswith("c=biws,r=" + nonce):
                raise ValueError(final)
            proof = base64.b64decode(proof64, validate=True)
        except ValueError:
            await self._reply(writer, "501 bad SCRAM client-final")
            return False
        auth_message = ",".join([bare, server_first, without_proof])
        signature = hmac256(v.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if len(proof) != 32 or not hmac.compare_digest(hashlib.sha256(client_key).digest(),
                                                       v.stored_key):
            self.stats.auth_failed += 1
            await self._reply(writer, "530 authentication failed")
            return False
        await self._reply(writer, "334 " + b64("v=" + b64(hmac256(v.server_key, auth_message))))
        if await self._line(reader) != "":
            await self._reply(writer, "501 expected an empty line")
            return False
        self.stats.authenticated += 1
        await self._reply(writer, "250 authenticated as " + self.controller)
        return True


async def main_async(args):
    with open(args.secret_file) as f:
        secret = f.readline().strip()
    verifier = Verifier(secret)
    stats = Stats()
    rtt = args.rtt / 1000.0
    loop = asyncio.get_running_loop()
    servers, ports = [], []
    for i in range(args.n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        ports.append(sock.getsockname()[1])
        target = Target("t%05d.standin" % i, args.controller, verifier, rtt, stats)
        servers.append(await asyncio.start_server(target.session, sock=sock, backlog=64,
                                                  limit=LINE_MAX * 2))
    with open(args.hosts_out, "w") as f:
        f.write("".join("127.0.0.1:%d\n" % p for p in ports))
    print("ready %d" % args.n, flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if line == "stats":
            print(json.dumps(stats.as_dict()), flush=True)
        elif line == "reset":
            stats.reset()
            print("reset", flush=True)
        elif line in ("quit", ""):
            break
    for s in servers:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=1, help="targets (default 1)")
    ap.add_argument("--rtt", type=float, default=0.0, help="ms before each reply (default 0)")
    ap.add_argument("--secret-file", required=True, help="the controller's secret (first line)")
    ap.add_argument("--controller", default="bench.example", help="the controller's name")
    ap.add_argument("--hosts-out", required=True, help="the hosts file to write")
    args = ap.parse_args()
    if not 1 <= args.n <= 20000:
        ap.error("-n must be 1 to 20000")
    # A descriptor a listening socket, one a connection, and some spare.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.n + 4096 + 64) if hard != resource.RLIM_INFINITY else args.n + 4160
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
