"""switchroom demo: a tour of the channel layer that needs no setup.

It sends and receives a batch of messages, shows a process-specific reply channel and
broadcasts to a group of 1,000 members, printing what happened and how fast. With
--layer redis://... it does the same across Redis (--redis starts a private one).
"""

import argparse
import asyncio
import time
from dataclasses import dataclass

from switchroom.layers import BaseLayer, ChannelFull
from switchroom.layers.redis import label
from switchroom.shared.config import LAYER, LOGS, add_common_arguments
from switchroom.shared.logs import setup_logging
from switchroom.shared.options import add_options, option
from switchroom.shared.startup import StartupError, build_layer, report, start_redis, wait_for_layer


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


@dataclass
class DemoSettings:
    """The demo's own options (``SWITCHROOM_DEMO_*``)."""

    redis: bool = option(False, help="start a private redis-server and use it")
    count: int = option(10_000, help="messages to send and receive")


def build_parser() -> argparse.ArgumentParser:
    """The demo's flags; each has a SWITCHROOM_* environment variable."""
    parser = argparse.ArgumentParser(prog="switchroom demo", description=__doc__)
    add_common_arguments(parser, only=LAYER)
    add_options(parser, DemoSettings, "demo")
    add_common_arguments(parser, only=LOGS)
    return parser


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom demo``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "demo", args.log_format)
    try:
        if args.count < 1:
            raise StartupError(f"--count {args.count}: give at least 1 message to send")
        if args.redis:
            redis = start_redis()
            try:
                print(f"started redis-server (pid {redis.pid}) on {redis.url}")
                return main_on(redis.url, args)
            finally:
                redis.close()
        return main_on(args.layer, args)
    except StartupError as exc:
        return report("demo", exc)


def main_on(url: str, args: argparse.Namespace) -> int:
    layer = build_layer(url)

    async def run() -> None:
        try:
            await wait_for_layer(layer, args.layer_wait)
            print(
                f"layer: {url.partition('://')[0]}://{label(url) if '@' in url else url.partition('://')[2]}"
            )
            await tour(layer, args.count)
        finally:
            await layer.close()

    asyncio.run(run())
    return 0
