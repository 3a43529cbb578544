"""The worker's own cost per message, in one process on the in-memory layer: a driver sends
``http.request`` (GET /hello) or ``websocket.receive`` (a 32-byte text frame to /echo)
messages of ``bench.apps`` to a real ``Worker`` and counts the answers at inbox addresses,
at most 90 in flight over 64 reply addresses. No sockets, no Redis, no other process: what
is left is the worker, the layer's send and receive, and the driver.

    python -m bench.worker_cost http 20000     # CPU µs per message (process time)

CPU time moves with whatever else runs on a shared machine; instructions do not. Under
``valgrind --tool=callgrind`` the instructions per message are the difference of two runs
divided by the difference of their message counts (start-up cancels out):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.worker_cost http 500       # and again with 2500
"""

import argparse
import asyncio
import gc
import time
from typing import Any

from bench.apps import app
from switchroom.layers import MemoryLayer
from switchroom.worker.runner import Worker

IN_FLIGHT = 90
ADDRESSES = 64


def request(kind: str, address: str, order: int) -> tuple[str, dict[str, Any]]:
    """The channel and message the driver sends for ``kind`` to be answered at ``address``."""
    if kind == "http":
        return "http.request", {
            "reply_channel": address,
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/hello",
            "query_string": b"",
            "root_path": "",
            "headers": [[b"host", b"127.0.0.1"]],
            "body": b"",
            "client": ["127.0.0.1", 5000],
            "server": ["127.0.0.1", 8000],
        }
    return "websocket.receive", {"reply_channel": address, "path": "/echo", "text": "x" * 32, "order": order}


async def run(kind: str, count: int) -> float:
    """Send ``count`` messages of ``kind`` through a worker; CPU seconds per message."""
    layer = MemoryLayer()
    worker = Worker(app, layer)
    await worker.start()
    await layer.inbox.start()
    answered = 0
    done = asyncio.Event()
    window = asyncio.Semaphore(IN_FLIGHT)

    def on_answer(message: dict[str, Any]) -> None:
        nonlocal answered
        answered += 1
        window.release()
        if answered == count:
            done.set()

    kind_of_address = "http.response" if kind == "http" else "websocket.send"
    addresses = [layer.inbox.address(kind_of_address, on_answer) for _ in range(ADDRESSES)]
    orders = [0] * ADDRESSES
    gc.collect()
    gc.freeze()
    started = time.process_time()
    for i in range(count):
        await window.acquire()
        slot = i % ADDRESSES
        orders[slot] += 1
        await layer.send(*request(kind, addresses[slot], orders[slot]))
        if i % 32 == 0:
            await asyncio.sleep(0)
    await done.wait()
    spent = time.process_time() - started
    await worker.stop()
    await layer.close()
    return spent / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["http", "echo"])
    parser.add_argument("count", type=int, nargs="?", default=20_000)
    args = parser.parse_args()
    print(f"{asyncio.run(run(args.kind, args.count)) * 1e6:.1f} µs of CPU per message")


if __name__ == "__main__":
    main()
