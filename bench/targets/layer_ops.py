"""Send+receive pairs/s through one system's own layer client, run by that system's Python.

    python layer_ops.py --system original --url redis://127.0.0.1:6390/0 --seconds 3

Three figures, printed as one JSON line: ``one_at_a_time`` (send one message, receive it,
repeat: the round-trip cost); ``loop`` (send 100 with one call each, then receive 100 with
one call each: the same calls on every system, so the like-for-like comparison); and
``batched`` (send 100, then receive 100, with Switchroom's ``send_many``/``receive_many``;
channels_redis and asgi_redis have no batch calls (and channels_redis's connection pool
refuses 100 concurrent sends), so ``null`` for them).
"""

import argparse
import asyncio
import json
import sys
import time

BATCH = 100
MESSAGE = {"type": "bench.message", "text": "hello", "bytes": b"x" * 32, "n": 1}
CHANNEL = "bench.ops"


def original(url: str, seconds: float, batch: int) -> int:
    from asgi_redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[url], capacity=BATCH * 2)
    pairs = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(batch):
            layer.send(CHANNEL, MESSAGE)
        got = 0
        while got < batch:
            channel, _ = layer.receive([CHANNEL], block=True)
            got += channel is not None
        pairs += got
    return pairs


async def channels4(url: str, seconds: float, batch: int) -> int:
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[url], capacity=BATCH * 2)
    pairs = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(batch):
            await layer.send(CHANNEL, MESSAGE)
        for _ in range(batch):
            await layer.receive(CHANNEL)
        pairs += batch
    await layer.flush()
    return pairs


async def switchroom(url: str, seconds: float, batch: int, batch_calls: bool = True) -> int:
    from switchroom.layers import get_layer

    layer = get_layer(url, capacity=BATCH * 2)
    pairs = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            if batch == 1 or not batch_calls:
                for _ in range(batch):
                    await layer.send(CHANNEL, MESSAGE)
                for _ in range(batch):
                    await layer.receive([CHANNEL], timeout=5)
                pairs += batch
                continue
            errors = await layer.send_many([(CHANNEL, MESSAGE)] * batch)
            if any(errors):
                raise RuntimeError(f"send_many failed: {errors}")
            got = 0
            while got < batch:
                got += len(await layer.receive_many([CHANNEL], batch - got, timeout=5))
            pairs += got
    finally:
        await layer.flush()
        await layer.close()
    return pairs


def measure(system: str, url: str, seconds: float, batch: int, batch_calls: bool = False) -> float | None:
    """Pairs per second for one system and batch size; ``None`` where the system has no
    batch calls and they were asked for."""
    start = time.perf_counter()
    if system == "original":
        if batch_calls:
            return None
        pairs = original(url, seconds, batch)
    elif system == "channels4":
        if batch_calls:
            return None
        pairs = asyncio.run(channels4(url, seconds, batch))
    else:
        pairs = asyncio.run(switchroom(url, seconds, batch, batch_calls))
    return pairs / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--system", required=True, choices=["switchroom", "original", "channels4"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    result = {
        "one_at_a_time": measure(args.system, args.url, args.seconds, 1),
        "loop": measure(args.system, args.url, args.seconds, BATCH),
        "batched": measure(args.system, args.url, args.seconds, BATCH, batch_calls=True),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
