"""The broadcast workload's publisher, run by each system's own Python with its own layer API.

    python publish.py --system channels4 --url redis://127.0.0.1:6390/0 --group bench-room-r10 \
        --rate 10 --seconds 5

Sends ``rate`` group messages a second on a fixed schedule, each carrying
``"<n> <time.monotonic()>"`` so receivers can tell the delivery latency, then prints one JSON
line: sends, failed sends, when it started (monotonic) and how long it took.
"""

import argparse
import asyncio
import json
import sys
import time


def schedule(rate: float, seconds: float):
    """Yield ``(n, text)`` at ``n / rate`` seconds after the start, sleeping in between."""
    start = time.monotonic()
    for n in range(round(rate * seconds)):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield n, f"{n} {time.monotonic()!r}"


async def aschedule(rate: float, seconds: float):
    """``schedule`` for asyncio layers: sleeps without blocking the loop."""
    start = time.monotonic()
    for n in range(round(rate * seconds)):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield n, f"{n} {time.monotonic()!r}"


def original(url: str, group: str, rate: float, seconds: float) -> int:
    """asgi_redis 1.x: ``send_group`` is synchronous; full member channels are skipped silently."""
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[url])
    errors = 0
    for _, text in schedule(rate, seconds):
        try:
            layer.send_group(group, {"text": text})
        except Exception:
            errors += 1
    return errors


async def channels4(url: str, group: str, rate: float, seconds: float) -> int:
    """channels_redis 4: consumers receive ``room.message`` events and send their text."""
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[url])
    errors = 0
    async for _, text in aschedule(rate, seconds):
        try:
            await layer.group_send(group, {"type": "room.message", "text": text})
        except Exception:
            errors += 1
    return errors


async def switchroom(url: str, group: str, rate: float, seconds: float) -> int:
    """Switchroom: group members are the servers' reply channels; the message is a websocket.send."""
    from switchroom.layers import get_layer

    layer = get_layer(url)
    errors = 0
    try:
        async for _, text in aschedule(rate, seconds):
            try:
                await layer.group_send(group, {"text": text})
            except Exception:
                errors += 1
    finally:
        await layer.close()
    return errors


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
    start = time.monotonic()
    run = (args.url, args.group, args.rate, args.seconds)
    if args.system == "original":
        errors = original(*run)
    elif args.system == "channels4":
        errors = asyncio.run(channels4(*run))
    else:
        errors = asyncio.run(switchroom(*run))
    sends = round(args.rate * args.seconds)
    print(json.dumps({"sends": sends, "errors": errors, "start": start, "seconds": time.monotonic() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
