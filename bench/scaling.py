"""How layer throughput grows with Redis shards: 1, 2 and 4 redis-server processes.

Each run starts its shards, then several client processes that each (a) send and
receive batches over 16 channels spread across the shards, and (b) broadcast to a group
of 500 members on their own process queue and drain it. Figures are totals over all
clients. On a 2-core machine the clients and the shards share the cores, so this shows
where the work goes more than a ceiling.

    python -m bench.scaling --quick
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from typing import Any

import redis

from bench.layer import DeliveryCounter
from switchroom.layers import get_layer
from switchroom.shared.redisproc import RedisProcess

BATCH = 100
CHANNELS = 16
GROUP = 500


async def _pairs(urls: list[str], seconds: float, client: int) -> int:
    layer = get_layer(urls, capacity=BATCH * 4, prefix="scale")
    channels = [f"scale.{client}.{i}" for i in range(CHANNELS)]
    message = {"text": "hello", "n": 1}
    done = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            await layer.send_many([(channels[i % CHANNELS], message) for i in range(BATCH)])
            got = 0
            while got < BATCH:
                got += len(await layer.receive_many(channels, BATCH, timeout=5))
            done += BATCH
    finally:
        await layer.close()
    return done


async def _group(urls: list[str], seconds: float, client: int) -> int:
    layer = get_layer(urls, process_capacity=GROUP * 4, prefix="scale")
    counter = DeliveryCounter()
    members = await counter.members(layer, GROUP)
    for member in members:
        await layer.group_add(f"scale-room-{client}", member)
    sent = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            sent += (await layer.group_send(f"scale-room-{client}", {"text": "broadcast"})).reached
            await counter.wait_for(sent)
        delivered = counter.delivered
    finally:
        await layer.close()
    return delivered


def _client(
    kind: str, urls: list[str], seconds: float, client: int, start: Any, out: "multiprocessing.Queue[int]"
) -> None:
    start.wait(60)  # every client process starts together
    work = _pairs if kind == "pairs" else _group
    out.put(asyncio.run(work(urls, seconds, client)))


def _measure(kind: str, urls: list[str], seconds: float, clients: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[int] = ctx.Queue()
    start = ctx.Barrier(clients + 1)
    procs = [ctx.Process(target=_client, args=(kind, urls, seconds, i, start, out)) for i in range(clients)]
    for proc in procs:
        proc.start()
    start.wait(120)
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def _redis_cpu(servers: list[RedisProcess]) -> float:
    """CPU seconds the shards have used so far (user + system, from INFO)."""
    total = 0.0
    for server in servers:
        info = redis.Redis(port=server.port).info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def run(seconds: float, clients: int, shard_counts: list[int]) -> list[dict[str, float]]:
    """Per shard count: throughput, and the Redis CPU each message cost (for capacity models)."""
    rows = []
    for count in shard_counts:
        servers = [RedisProcess().start() for _ in range(count)]
        try:
            urls = [s.url for s in servers]
            row: dict[str, float] = {"shards": count}
            for kind, label in (("pairs", "pairs/s"), ("group", "group deliveries/s")):
                before = _redis_cpu(servers)
                rate = _measure(kind, urls, seconds, clients)
                row[label] = rate
                row[f"redis µs per {kind} message"] = 1e6 * (_redis_cpu(servers) - before) / (rate * seconds)
            rows.append(row)
        finally:
            for server in servers:
                server.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per measurement")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--shards", default="1,2,4", help="shard counts to measure")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    counts = [int(n) for n in args.shards.split(",")]
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {args.clients} client processes")
    rows = run(seconds, args.clients, counts)
    base = rows[0]
    header = ("shards", "pairs/s", "x", "µs/pair", "deliveries/s", "x", "µs/delivery")
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, (6, 10, 5, 8, 12, 5, 11), strict=True)))
    for row in rows:
        pairs, group = row["pairs/s"], row["group deliveries/s"]
        print(
            f"{row['shards']:>6}  {pairs:>10,.0f}  {pairs / base['pairs/s']:>5.2f}"
            f"  {row['redis µs per pairs message']:>8.2f}  {group:>12,.0f}"
            f"  {group / base['group deliveries/s']:>5.2f}  {row['redis µs per group message']:>11.2f}"
        )
    print("µs columns: Redis CPU per message summed over the shards, the cost wherever the clients run")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
