"""The broadcast workload's publisher, run by each system's own Python with its own layer API.

    python publish.py --system channels4 --url redis://127.0.0.1:6390/0 --group bench-room-r10 \
        --rate 10 --seconds 5

Sends ``rate`` group messages a second on a fixed schedule. Each carries
``"<n> <scheduled time.monotonic()>"``: the time it was due, not the time it went out, so a
publisher that falls behind shows in the receivers' latency instead of hiding it. Prints
one JSON line: sends, failed sends, when it started (monotonic), how long it took, how far
behind its schedule a send went out (``max_lag_ms``; ``behind`` when that is more than one
interval), and what the layer said each group send reached and skipped (Switchroom's
``group_send`` reports it; the other layers report nothing, so those stay ``null``).
"""

import argparse
import asyncio
import json
import sys
import time


class Schedule:
    """Send times ``start + n / rate`` from the first send (the layer is built by then); notes
    how late each send actually went out."""

    def __init__(self, rate: float, seconds: float) -> None:
        self.rate = rate
        self.count = round(rate * seconds)
        self.start = time.monotonic()
        self.max_lag = 0.0

    def due(self, n: int) -> float:
        return self.start + n / self.rate

    def sent(self, n: int) -> None:
        self.max_lag = max(self.max_lag, time.monotonic() - self.due(n))

    def __iter__(self):
        self.start = time.monotonic()
        for n in range(self.count):
            delay = self.due(n) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield n, f"{n} {self.due(n)!r}"
            self.sent(n)

    async def __aiter__(self):
        self.start = time.monotonic()
        for n in range(self.count):
            delay = self.due(n) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield n, f"{n} {self.due(n)!r}"
            self.sent(n)


def original(url: str, group: str, plan: Schedule, counts: dict) -> None:
    """asgi_redis 1.x: ``send_group`` is synchronous and returns nothing; full members are
    skipped silently."""
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[url])
    for _, text in plan:
        try:
            layer.send_group(group, {"text": text})
        except Exception:
            counts["errors"] += 1


async def channels4(url: str, group: str, plan: Schedule, counts: dict) -> None:
    """channels_redis 4: consumers receive ``room.message`` events and send their text;
    ``group_send`` returns nothing (full members are skipped with a log line)."""
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[url])
    async for _, text in plan:
        try:
            await layer.group_send(group, {"type": "room.message", "text": text})
        except Exception:
            counts["errors"] += 1


async def switchroom(url: str, group: str, plan: Schedule, counts: dict) -> None:
    """Switchroom: group members are the servers' reply channels; the message is a
    websocket.send; ``group_send`` says whom it reached and skipped (an earlier release
    run with ``--baseline`` returns only a count)."""
    from switchroom.layers import get_layer

    layer = get_layer(url)
    counts.update(reached=0, skipped_full=0, skipped_dead=0, skipped_expired=0)
    try:
        async for _, text in plan:
            try:
                reach = await layer.group_send(group, {"text": text})
            except Exception:
                counts["errors"] += 1
                continue
            if isinstance(reach, int):
                # Releases before the reach report count the members sent to; skips were silent.
                counts.update(skipped_full=None, skipped_dead=None, skipped_expired=None)
                counts["reached"] += reach
                continue
            counts["reached"] += reach.reached
            counts["skipped_full"] += reach.full
            counts["skipped_dead"] += reach.dead
            counts["skipped_expired"] += reach.expired
    finally:
        await layer.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", required=True, choices=["switchroom", "original", "channels4"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    plan = Schedule(args.rate, args.seconds)
    counts: dict = {"errors": 0, "reached": None, "skipped_full": None, "skipped_dead": None}
    counts["skipped_expired"] = None
    run = (args.url, args.group, plan, counts)
    if args.system == "original":
        original(*run)
    elif args.system == "channels4":
        asyncio.run(channels4(*run))
    else:
        asyncio.run(switchroom(*run))
    print(
        json.dumps(
            {
                "sends": plan.count,
                **counts,
                "start": plan.start,
                "seconds": time.monotonic() - plan.start,
                "max_lag_ms": plan.max_lag * 1000,
                "behind": plan.max_lag > 1 / args.rate,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
