#!/usr/bin/env python3
"""A TCP relay that adds a fixed one-way delay, for the fan-out benchmark.

This kernel has no netem, so network latency is emulated here: every chunk
read from one side is written to the other side DELAY_MS milliseconds
later, in order, in both directions. A request-reply exchange through the
relay therefore costs 2 * DELAY_MS (the round-trip time) on top of the
target's own time. Connecting is not delayed.

usage: delay_proxy.py DELAY_MS   (reads one line on stdin: the target
ports on 127.0.0.1, separated by spaces; listens on a new port for each and
prints "ready" and those ports, in the same order, on one line; runs until
stdin is closed)"""
import asyncio
import os
import sys
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                break
    except ConnectionError:
        queue.put_nowait((0, b""))
    try:
        await sender
    except ConnectionError:
        pass


async def relay(target_port, delay, client_reader, client_writer):
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, up_writer, delay),
                         pump(up_reader, client_writer, delay))


async def main():
    delay = float(sys.argv[1]) / 1000.0
    servers = []
    for target in (int(x) for x in sys.stdin.readline().split()):
        servers.append(await asyncio.start_server(
            lambda r, w, t=target: relay(t, delay, r, w), "127.0.0.1", 0,
            backlog=1024))
    print("ready", *(s.sockets[0].getsockname()[1] for s in servers), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until stdin closes
    sys.stdout.flush()
    os._exit(0)  # relays still waiting are simply dropped


if __name__ == "__main__":
    asyncio.run(main())
