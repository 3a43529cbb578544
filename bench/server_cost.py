"""What ``switchroom up`` in one process costs per HTTP request or echoed WebSocket frame:
the HTTP/WebSocket server, the worker running ``bench.apps`` and the in-memory layer, all of
it, with the load coming from another (spawned) process that is not measured.

    python -m bench.server_cost http 20000     # CPU µs per request (process time, start-up included)

CPU time moves with whatever else runs on a shared machine; instructions do not. Under
``valgrind --tool=callgrind`` (which follows this process, not the load's) the instructions
per request are the difference of two runs divided by the difference of their counts, so
start-up and shutdown cancel out:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.server_cost http 500       # and again with 2500

The load keeps ``--connections`` keep-alive connections (or WebSockets on ``/echo``) busy,
each sending its next request or 32-byte frame once the answer to the last one is in, and
stops the server with SIGINT once every answer has arrived.
"""

import argparse
import asyncio
import os
import signal
import socket
import sys
import time

from bench.loads import SPAWN, read_response
from switchroom.shared.redisproc import free_port
from switchroom.up import main as up_main

# Valgrind makes start-up tens of times slower: how long the load waits for the port.
START_TIMEOUT = 900.0
# No metrics listener and no log lines: only what a request costs.
QUIET = ["--metrics-port", "0", "--log-level", "warning"]


def wait_for_port(port: int) -> None:
    """Block until something accepts connections on ``port``."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listened on port {port} within {START_TIMEOUT:.0f} s") from None
            time.sleep(0.5)


async def http_requests(port: int, count: int) -> None:
    """Send ``count`` GET /hello requests on one keep-alive connection, one at a time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await read_response(reader)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:40]!r}")
    writer.close()


async def echo_frames(port: int, count: int) -> None:
    """Send ``count`` 32-byte text frames on one WebSocket to /echo, each after its echo."""
    from websockets.asyncio.client import connect

    payload = "x" * 32
    # No handshake timeout and no keepalive pings: under valgrind the server is slow to
    # answer, and pings every so many seconds of wall time would add to what is counted.
    async with connect(f"ws://127.0.0.1:{port}/echo", open_timeout=None, ping_interval=None) as ws:
        for _ in range(count):
            await ws.send(payload)
            if await ws.recv() != payload:
                raise RuntimeError("the echo differed from the frame sent")


def load(kind: str, port: int, count: int, connections: int, server_pid: int) -> None:
    """In its own process: ``count`` requests or frames over ``connections``, then SIGINT."""
    wait_for_port(port)
    one = http_requests if kind == "http" else echo_frames
    shares = [count // connections + (i < count % connections) for i in range(connections)]

    async def main() -> None:
        await asyncio.gather(*(one(port, share) for share in shares if share))

    try:
        asyncio.run(main())
    finally:
        os.kill(server_pid, signal.SIGINT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["http", "echo"])
    parser.add_argument("count", type=int, help="requests (http) or frames (echo) in all")
    parser.add_argument("--connections", type=int, default=32, help="connections or sockets at once")
    args = parser.parse_args()
    port = free_port()
    loader = SPAWN.Process(target=load, args=(args.kind, port, args.count, args.connections, os.getpid()))
    loader.start()
    # Under valgrind a handshake waits long for the worker in the same process: no 503 for it.
    os.environ.setdefault("SWITCHROOM_HTTP_CONNECT_TIMEOUT", str(START_TIMEOUT))
    started = time.process_time()
    code = up_main(["bench.apps:app", "--http-port", str(port), "--slack", "off", *QUIET])
    spent = time.process_time() - started
    loader.join(60)
    if loader.exitcode != 0:
        print(f"the load process failed (exit code {loader.exitcode})", file=sys.stderr)
        return 1
    each = spent / args.count * 1e6
    print(f"{args.kind}: {args.count} in {spent:.2f} s of CPU, {each:.0f} µs each (start-up included)")
    return code


if __name__ == "__main__":
    sys.exit(main())
