"""The Redis layer's own client cost per message, in one process against a private
redis-server (started here on a free loopback port, stopped by PID).

Each round does what an HTTP server and a worker do with the layer: ``send_many`` of a
batch of ``http.request`` messages (the server's gathered sends), ``receive_many`` of
them (the worker's batched read), ``send_many`` of one reply each to inbox addresses
(the worker's answers) and the inbox's batched read of those (the server's). Nothing
else runs, so what is measured is the layer and its Redis client.

    python -m bench.layer_cost 20000          # CPU µs per message (process time)

CPU time moves with whatever else runs on a shared machine; instructions do not. Under
``valgrind --tool=callgrind`` the instructions per message are the difference of two runs
divided by the difference of their message counts (start-up cancels out); redis-server is
a separate process and is not counted:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.layer_cost 2000       # and again with 6000

It also prints the commands the layer sent Redis per message (script calls, blocking
reads, script loads and health-check pings, from the server's own counters; the commands
a script runs inside Redis are not round trips and are left out).
"""

import argparse
import asyncio
import gc
import time
from typing import Any

import redis

from bench.worker_cost import request
from switchroom.layers import RedisLayer
from switchroom.shared.redisproc import RedisProcess

BATCH = 10
READ = 100


RESPONSE = {
    "status": 200,
    "headers": [[b"content-type", b"text/plain"]],
    "content": b"hello",
    "more_content": False,
}


async def take(read: Any, count: int) -> int:
    """Call ``read()`` until ``count`` messages came back; how many did."""
    got = 0
    while got < count:
        batch = await read()
        if not batch:
            raise RuntimeError(f"{count - got} messages did not arrive")
        got += len(batch)
    return got


async def run(url: str, count: int, batch: int) -> float:
    """Move ``count`` messages (half requests, half replies) through the layer; CPU
    seconds per message."""
    layer = RedisLayer([url], prefix="cost")
    addresses = [layer.inbox.address("http.response") for _ in range(batch)]
    requests = [request("http", a, 0) for a in addresses]
    replies = [(a, RESPONSE) for a in addresses]
    rounds = max(1, count // (2 * batch))
    gc.collect()
    gc.freeze()
    started = time.process_time()
    for _ in range(rounds):
        assert await layer.send_many(requests) == [None] * batch
        await take(lambda: layer.receive_many(["http.request"], READ, timeout=5), batch)
        assert await layer.send_many(replies) == [None] * batch
        await take(lambda: layer.inbox.receive(READ, timeout=5), batch)
    spent = time.process_time() - started
    await layer.flush()
    await layer.close()
    return spent / (2 * batch * rounds)


SENT = ("evalsha", "eval", "blpop", "script", "ping")


def commands(port: int) -> int:
    """The commands of ``SENT`` the server has run so far."""
    client = redis.Redis(port=port)
    try:
        stats = client.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in SENT)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("count", type=int, nargs="?", default=20_000, help="messages (requests + replies)")
    parser.add_argument("--batch", type=int, default=BATCH, help="messages per send_many")
    args = parser.parse_args()
    with RedisProcess() as server:
        before = commands(server.port)
        spent = asyncio.run(run(server.url, args.count, args.batch))
        used = commands(server.port) - before
    print(f"{spent * 1e6:.1f} µs of CPU per message; {used / args.count:.2f} Redis commands per message")


if __name__ == "__main__":
    main()
