"""Send+receive pairs/s through one system's own layer client, run by that system's Python.

    python layer_ops.py --system original --url redis://127.0.0.1:6390/0 --seconds 3

Two figures, printed as one JSON line: ``one_at_a_time`` (send one message, receive it,
repeat: the round-trip cost) and ``batched`` (send 100, then receive 100, in the fastest
way the client offers: Switchroom's ``send_many``/``receive_many``; channels_redis and
asgi_redis have no batch calls (and channels_redis's connection pool refuses 100 concurrent
sends), so plain loops for them).
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


async def switchroom(url: str, seconds: float, batch: int) -> int:
    from switchroom.layers import get_layer

    layer = get_layer(url, capacity=BATCH * 2)
    pairs = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            if batch == 1:
                await layer.send(CHANNEL, MESSAGE)
                await layer.receive([CHANNEL], timeout=5)
                pairs += 1
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


def measure(system: str, url: str, seconds: float, batch: int) -> float:
    """Pairs per second for one system and batch size."""
    start = time.perf_counter()
    if system == "original":
        pairs = original(url, seconds, batch)
    elif system == "channels4":
        pairs = asyncio.run(channels4(url, seconds, batch))
    else:
        pairs = asyncio.run(switchroom(url, seconds, batch))
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
        "batched": measure(args.system, args.url, args.seconds, BATCH),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
