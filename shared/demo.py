"""``switchroom demo``: a tour of the channel layer that needs no setup.

It sends and receives a batch of messages, shows a process-specific reply channel and
broadcasts to a group of 1,000 members, printing what happened and how fast. With
``--layer redis://...`` it does the same across Redis (``--redis`` starts a private one).
"""

import argparse
import asyncio
import time

from switchroom.layers import BaseLayer, ChannelFull, get_layer
from switchroom.shared.config import add_common_arguments
from switchroom.shared.redisproc import RedisProcess


async def tour(layer: BaseLayer, count: int) -> None:
    """Run each step of the demo against ``layer`` and print the results."""
    start = time.perf_counter()
    received: list[tuple[str, dict]] = []
    for offset in range(0, count, 100):
        batch = [("demo.jobs", {"n": n}) for n in range(offset, min(count, offset + 100))]
        errors = await layer.send_many(batch)
        if any(errors):
            raise next(e for e in errors if e)
        while len(received) < offset + len(batch):
            received += await layer.receive_many(["demo.jobs"], 100, timeout=5)
    elapsed = time.perf_counter() - start
    in_order = [m["n"] for _, m in received] == list(range(count))
    print(f"sent and received {count:,} messages in {elapsed * 1000:.0f} ms, in order: {in_order}")

    reply = layer.inbox.address("demo.reply")
    await layer.send(reply, {"text": "a reply only this process reads"})
    ((channel, message),) = await layer.inbox.receive(1, timeout=5)
    print(f"process-specific channel {channel} -> {message['text']!r}")

    members = [layer.inbox.address("demo.socket") for _ in range(1000)]
    for member in members:
        await layer.group_add("demo-room", member)
    start = time.perf_counter()
    reached = (await layer.group_send("demo-room", {"text": "hello, room"})).reached
    delivered = []
    while len(delivered) < reached:
        batch = await layer.inbox.receive(1000, timeout=5)
        if not batch:
            break
        delivered += batch
    elapsed = time.perf_counter() - start
    print(f"group send reached {reached} members; all {len(delivered)} delivered in {elapsed * 1000:.1f} ms")

    try:
        for n in range(layer.capacity + 1):
            await layer.send("demo.full", {"n": n})
    except ChannelFull as exc:
        print(f"backpressure: message {n + 1} refused with ChannelFull ({exc})")
    await layer.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchroom demo", description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--redis", action="store_true", help="start a private redis-server and use it")
    parser.add_argument("--count", type=int, default=10_000, help="messages to send and receive")
    args = parser.parse_args(argv)
    if args.redis:
        with RedisProcess() as redis:
            print(f"started redis-server (pid {redis.pid}) on {redis.url}")
            return main_on(redis.url, args.count)
    return main_on(args.layer, args.count)


def main_on(url: str, count: int) -> int:
    print(f"layer: {url}")
    layer = get_layer(url)

    async def run() -> None:
        try:
            await tour(layer, count)
        finally:
            await layer.close()

    asyncio.run(run())
    return 0
