"""Channel-layer throughput: send+receive pairs/s and group_send deliveries/s, and an
at-least-once (durable) channel's add+read+acknowledge beside an at-most-once channel's
send+receive.

Runs each workload on the memory layer and on a private Redis (started here, stopped by
PID), from one process and from several, and prints the figures beside
``redis-benchmark``'s LPUSH/RPOP rates on the same server in the same run: the ceiling
a Python client can approach. The two delivery classes are also compared on a Redis
with its append-only file on (fsync every second), as a durable channel needs.

    python -m bench.layer            # about 1 minute
    python -m bench.layer --quick    # a few seconds per workload
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

from switchroom.layers import BaseLayer, get_layer
from switchroom.shared.redisproc import RedisProcess

BATCH = 100
GROUP_SIZE = 1000


async def _pairs(url: str | None, seconds: float, batch: int, channel: str, flush: bool = True) -> int:
    """Send ``batch`` messages then receive them, repeatedly; returns pairs completed.
    ``flush=False`` when other clients share the layer (a flush would empty their queues)."""
    layer = get_layer(url or "memory://", capacity=batch * 2)
    message = {"text": "hello", "bytes": b"x" * 32, "n": 1}
    pairs = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            if batch == 1:
                await layer.send(channel, message)
                got = [await layer.receive([channel], timeout=5)]
                if got[0][0] is None:
                    raise RuntimeError(f"a message sent on {channel} was not received within 5 s")
            else:
                errors = await layer.send_many([(channel, message)] * batch)
                assert not any(errors), errors
                got = []
                while len(got) < batch:
                    more = await layer.receive_many([channel], batch - len(got), timeout=5)
                    if not more:
                        raise RuntimeError(f"{batch - len(got)} messages on {channel} not received in 5 s")
                    got += more
            pairs += len(got)
    finally:
        if flush:
            await layer.flush()
        await layer.close()
    return pairs


async def _durable_pairs(url: str | None, seconds: float, batch: int) -> int:
    """Add ``batch`` entries to a durable channel, then read and acknowledge them,
    repeatedly; returns entries done (the at-least-once counterpart of ``_pairs``)."""
    layer = get_layer(url or "memory://", durable_channels="bench.durable", durable_capacity=batch * 2)
    message = {"text": "hello", "bytes": b"x" * 32, "n": 1}
    done = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            if batch == 1:
                await layer.durable.add("bench.durable", message, key="k")
            else:
                outcomes = await layer.durable.add_many([("bench.durable", message, None)] * batch)
                assert all(outcome is True for outcome in outcomes), outcomes
            taken = 0
            while taken < batch:
                deliveries = await layer.durable.read(["bench.durable"], batch - taken, timeout=5)
                if not deliveries:
                    raise RuntimeError(f"{batch - taken} durable entries added were not read within 5 s")
                await layer.durable.ack(deliveries)
                taken += len(deliveries)
            done += taken
    finally:
        await layer.flush()
        await layer.close()
    return done


def _pairs_process(
    url: str, seconds: float, index: int, start: Any, results: "multiprocessing.Queue[int]"
) -> None:
    start.wait(60)  # every client process starts its timed loop together
    results.put(asyncio.run(_pairs(url, seconds, BATCH, f"bench.pairs.{index}", flush=False)))


class DeliveryCounter:
    """Counts what reaches addresses of this process's inbox, as a server does: a group
    message for many addresses counts once per address without being copied."""

    def __init__(self) -> None:
        self.delivered = 0
        self.target = 0
        self.reached = asyncio.Event()

    async def members(self, layer: BaseLayer, count: int) -> list[str]:
        await layer.inbox.start()
        layer.inbox.fanout = self._fanned
        return [layer.inbox.address("bench.sock", self._one) for _ in range(count)]

    def _count(self, n: int) -> None:
        self.delivered += n
        if self.delivered >= self.target:
            self.reached.set()

    def _one(self, message: dict) -> None:
        self._count(1)

    def _fanned(self, addresses: list[str], message: dict) -> list[str]:
        self._count(len(addresses))
        return []

    async def wait_for(self, total: int) -> None:
        self.target = total
        if self.delivered < total:
            self.reached.clear()
            await asyncio.wait_for(self.reached.wait(), 5)


async def _group(url: str | None, seconds: float) -> tuple[int, int]:
    """group_send to GROUP_SIZE process channels, drained by one reader; returns (sent, delivered)."""
    layer = get_layer(url or "memory://", process_capacity=GROUP_SIZE * 4)
    counter = DeliveryCounter()
    members = await counter.members(layer, GROUP_SIZE)
    for member in members:
        await layer.group_add("bench-room", member)
    sent = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            sent += (await layer.group_send("bench-room", {"text": "broadcast", "n": sent})).reached
            await counter.wait_for(sent)
        delivered = counter.delivered
    finally:
        await layer.flush()
        await layer.close()
    return sent, delivered


async def _request_reply(url: str, local: bool, seconds: float) -> tuple[float, float]:
    """Server and worker in one process: requests on a plain channel, replies on ``!`` channels.

    Returns (round trips/s, Redis commands per round trip).
    """
    layer = get_layer(url, local=local, capacity=BATCH * 2)
    counter = DeliveryCounter()
    replies = await counter.members(layer, BATCH)
    client = layer._shards[0].client
    before = int((await client.info("stats"))["total_commands_processed"])
    done = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            await layer.send_many([("bench.request", {"reply_channel": r, "n": done}) for r in replies])
            requests = []
            while len(requests) < BATCH:
                requests += await layer.receive_many(["bench.request"], BATCH, timeout=5)
            await layer.send_many([(m["reply_channel"], {"status": 200}) for _, m in requests])
            done += BATCH
            await counter.wait_for(done)
        elapsed = time.perf_counter() - start
        commands = int((await client.info("stats"))["total_commands_processed"]) - before - 1
    finally:
        await layer.flush()
        await layer.close()
    return done / elapsed, commands / done


def redis_benchmark(port: int, requests: int) -> dict[str, float]:
    """LPUSH/RPOP requests/s from redis-benchmark, unpipelined and with -P 16 (if installed)."""
    binary = shutil.which("redis-benchmark")
    if not binary:
        return {}
    out = {}
    for label, extra in (("", []), (" -P16", ["-P", "16"])):
        text = subprocess.run(
            [
                binary,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-t",
                "lpush,rpop",
                "-n",
                str(requests),
                "-q",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        for name, rate in re.findall(
            r"(LPUSH|RPOP).*?: ([\d.]+) requests per second", text.replace("\r", "\n")
        ):
            out[name + label] = float(rate)
    return out


def run(seconds: float, processes: int) -> dict[str, float]:
    results: dict[str, float] = {}
    results["memory pairs/s, batched"] = asyncio.run(_pairs(None, seconds, BATCH, "bench.pairs")) / seconds
    results["memory at-least-once pairs/s, batched"] = (
        asyncio.run(_durable_pairs(None, seconds, BATCH)) / seconds
    )
    sent, delivered = asyncio.run(_group(None, seconds))
    results["memory group deliveries/s"] = delivered / seconds
    with RedisProcess() as redis:
        url = redis.url
        results["redis pairs/s, one at a time"] = (
            asyncio.run(_pairs(url, seconds, 1, "bench.pairs")) / seconds
        )
        results["redis pairs/s, batched"] = asyncio.run(_pairs(url, seconds, BATCH, "bench.pairs")) / seconds
        results["redis at-least-once pairs/s, one at a time"] = (
            asyncio.run(_durable_pairs(url, seconds, 1)) / seconds
        )
        results["redis at-least-once pairs/s, batched"] = (
            asyncio.run(_durable_pairs(url, seconds, BATCH)) / seconds
        )
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[int] = ctx.Queue()
        start = ctx.Barrier(processes + 1)
        workers = [
            ctx.Process(target=_pairs_process, args=(url, seconds, i, start, queue), daemon=True)
            for i in range(processes)
        ]
        for worker in workers:
            worker.start()
        start.wait(120)
        total = sum(queue.get(timeout=seconds + 60) for _ in workers)
        for worker in workers:
            worker.join()
        results[f"redis pairs/s, batched, {processes} processes"] = total / seconds
        sent, delivered = asyncio.run(_group(url, seconds))
        results["redis group deliveries/s (group of 1,000)"] = delivered / seconds
        results["redis group loss %"] = 100.0 * (sent - delivered) / sent if sent else 0.0
        for local in (False, True):
            rate, commands = asyncio.run(_request_reply(url, local, seconds))
            mode = "local-and-remote" if local else "remote only"
            results[f"redis request+reply/s in one process, {mode}"] = rate
            results[f"redis commands (incl. in scripts) per request+reply, {mode}"] = commands
        for name, rate in redis_benchmark(redis.port, 100_000 if seconds < 3 else 300_000).items():
            results[f"redis-benchmark {name} req/s"] = rate
    with RedisProcess(persistent=True) as redis:
        results["redis (AOF) pairs/s, batched"] = (
            asyncio.run(_pairs(redis.url, seconds, BATCH, "bench.pairs")) / seconds
        )
        results["redis (AOF) at-least-once pairs/s, batched"] = (
            asyncio.run(_durable_pairs(redis.url, seconds, BATCH)) / seconds
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (2 s per workload)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per workload")
    parser.add_argument("--processes", type=int, default=2, help="client processes for the multi-process run")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {seconds:g} s per workload")
    results = run(seconds, args.processes)
    width = max(len(k) for k in results)
    ceiling = results.get("redis-benchmark RPOP req/s")
    for key, value in results.items():
        ratio = ""
        if ceiling and key.startswith("redis pairs"):
            ratio = f"  ({value / ceiling:.2f}x redis-benchmark RPOP)"
        print(f"{key:<{width}}  {value:>12,.1f}{ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seconds": seconds, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
