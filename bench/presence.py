"""Presence benchmark on a private Redis: what a join and a leave cost, how long listing a
group of 10,000 members takes, and the presence traffic watchers get under churn.

    python -m bench.presence --quick             # short runs, to check it works
    python -m bench.presence                     # 10 s of churn, 2,000 joins and leaves timed

- **join / leave**: ``track`` and ``untrack`` one at a time; round trips to Redis per call
  (counted in the layer), commands Redis ran per call (inside scripts too, from ``INFO``),
  microseconds per call; the flushes the calls start are counted in.
- **list 10,000**: ``presence.list`` of a group with 10,000 entries from 10 processes;
  median of 5 calls, each timed from the call to its result (the target is at most 50 ms).
- **churn**: joins at a steady rate (1,000/s), each entry leaving a second later, into a
  group watched by 100 watchers in another process; presence messages and bytes each
  watcher got per second, with the default interval (100 ms) and with none (every change
  flushed at once), in the same run.
"""

import argparse
import asyncio
import statistics
import time
from typing import Any, Self

import msgpack
import redis

from switchroom.layers import get_layer
from switchroom.layers.redis import _Shard
from switchroom.shared.redisproc import RedisProcess

# The bench's own processes do not sweep during the timed calls (they would add commands).
QUIET = {"heartbeat_interval": 60.0, "liveness_timeout": 120.0}


class RoundTrips:
    """Counts the layer's round trips to Redis while it is open: each one holds a connection
    slot of its shard (``_Shard.use``) for exactly one command, pipeline or script call."""

    def __init__(self) -> None:
        self.count = 0
        self._original = _Shard.use

    def __enter__(self) -> Self:
        original = self._original

        def counted(shard: _Shard, quiet: bool = False) -> Any:
            self.count += 1
            return original(shard, quiet)

        _Shard.use = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        _Shard.use = self._original  # type: ignore[method-assign]


def _commands(client: redis.Redis) -> int:
    """Commands Redis has run, those inside scripts included (minus the INFO asking)."""
    return int(client.info("stats")["total_commands_processed"])


async def join_leave(url: str, client: redis.Redis, trips: "RoundTrips", count: int) -> dict[str, float]:
    layer = get_layer(url, prefix="bench-jl", **QUIET)
    addresses = [f"websocket.send.benchproc{n % 4}!{n:08d}" for n in range(count)]
    out: dict[str, float] = {}
    try:
        await layer.presence.track("warm", "websocket.send.benchproc0!warm", "w")
        for phase in ("join", "leave"):
            before = (trips.count, _commands(client))
            started = time.perf_counter()
            for n, address in enumerate(addresses):
                if phase == "join":
                    await layer.presence.track("jl", address, f"user{n % 500}", {"via": "web"})
                else:
                    await layer.presence.untrack("jl", address)
            elapsed = time.perf_counter() - started
            after = (trips.count, _commands(client))
            # The flushes the calls start run beside them and are counted in.
            out[f"{phase}_us"] = elapsed / count * 1e6
            out[f"{phase}_round_trips"] = (after[0] - before[0]) / count
            out[f"{phase}_commands"] = (after[1] - before[1] - 1) / count
    finally:
        await layer.flush()
        await layer.close()
    return out


async def list_large(url: str, members: int) -> dict[str, float]:
    layer = get_layer(url, prefix="bench-list", **QUIET)
    try:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                layer.presence.track(
                    "big", f"websocket.send.benchproc{n % 10}!{n:08d}", f"user{n}", {"via": "web"}
                )
                for n in range(members)
            )
        )
        filled = time.perf_counter() - started
        # The fill's events go out as one diff; the lists are timed on the settled group.
        await layer.presence.flush("big")
        await asyncio.sleep(0.3)
        times = []
        listed: dict[str, Any] = {}
        for _ in range(5):
            # The previous list is freed first: that is its holder's cost, not this call's.
            listed = {}
            started = time.perf_counter()
            listed = await layer.presence.list("big")
            times.append(time.perf_counter() - started)
        assert sum(len(m) for m in listed.values()) == members, "the list lost members"
        return {"members": members, "list_ms": statistics.median(times) * 1000, "fill_s": filled}
    finally:
        await layer.flush()
        await layer.close()


async def churn(url: str, rate: int, seconds: float, watchers: int, interval: float) -> dict[str, Any]:
    prefix = f"bench-churn-{int(interval * 1000)}"
    watching = get_layer(url, prefix=prefix, presence_interval=interval)
    driver = get_layer(url, prefix=prefix, presence_interval=interval)
    got = [0] * watchers
    size = [0] * watchers
    arrivals: list[list[float]] = [[] for _ in range(watchers)]
    try:
        inbox = watching.inbox
        await inbox.start()
        for n in range(watchers):

            def note(message: dict, n: int = n) -> None:
                got[n] += 1
                size[n] += len(msgpack.packb(message))
                arrivals[n].append(time.perf_counter())

            address = inbox.address("bench.watch", note)
            await watching.presence.watch("churn", address)
        await asyncio.sleep(0.5)
        start_counts = list(got)
        flushes: list[float] = []
        take = driver.presence.store.take

        async def noted_take(group: str) -> list[bytes]:
            events = await take(group)
            if events:
                flushes.append(time.perf_counter())
            return events

        driver.presence.store.take = noted_take  # type: ignore[method-assign]
        in_flight: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(64)

        async def one(n: int) -> None:
            address = f"websocket.send.churnproc{n % 8}!{n:08d}"
            async with limit:
                await driver.presence.track("churn", address, f"user{n % 300}", {"via": "web"})
            await asyncio.sleep(1.0)
            async with limit:
                await driver.presence.untrack("churn", address)

        started = time.perf_counter()
        n = 0
        while (now := time.perf_counter() - started) < seconds:
            due = int(now * rate)
            while n < due:
                task = asyncio.ensure_future(one(n))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                n += 1
            await asyncio.sleep(0.002)
        joins_per_s = n / (time.perf_counter() - started)
        await asyncio.gather(*in_flight)
        await asyncio.sleep(interval + 0.5)
        # Over the whole churn: from the first join to the last diff (of the last leaves).
        window = max(a[-1] for a in arrivals) - started
        messages = [g - s for g, s in zip(got, start_counts, strict=True)]
        gaps = [later - earlier for earlier, later in zip(flushes, flushes[1:], strict=False)]
        return {
            "interval_ms": interval * 1000,
            "joins_per_s": joins_per_s,
            "messages_per_watcher_per_s": statistics.mean(messages) / window,
            "bytes_per_watcher_per_s": statistics.mean(size) / window,
            "shortest_gap_ms": min(gaps) * 1000,
        }
    finally:
        await driver.flush()
        await driver.close()
        await watching.close()


def measure(
    seconds: float, calls: int, members: int, rate: int = 1000, watchers: int = 100
) -> dict[str, Any]:
    """One run on a private Redis: join and leave costs, the time to list ``members``, and
    the watchers' traffic under churn with the default interval and with none."""
    with RedisProcess() as server:
        client = redis.Redis(port=server.port)
        try:
            with RoundTrips() as trips:
                figures: dict[str, Any] = asyncio.run(join_leave(server.url, client, trips, calls))
            figures.update(asyncio.run(list_large(server.url, members)))
            batched, unbatched = (
                asyncio.run(churn(server.url, rate, seconds, watchers, interval)) for interval in (0.1, 0.0)
            )
        finally:
            client.close()
    figures["churn"] = [batched, unbatched]
    figures["messages_per_watcher_per_s"] = batched["messages_per_watcher_per_s"]
    figures["fewer_messages_batched"] = unbatched["messages_per_watcher_per_s"] / max(
        batched["messages_per_watcher_per_s"], 1e-9
    )
    figures.update(url=server.url, calls=calls, watchers=watchers)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.presence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (2 s of churn, 500 joins timed)")
    parser.add_argument("--seconds", type=float, help="seconds of churn (default 10, quick 2)")
    parser.add_argument("--rate", type=int, default=1000, help="joins per second under churn (default 1000)")
    parser.add_argument(
        "--watchers", type=int, default=100, help="watchers of the churning group (default 100)"
    )
    parser.add_argument(
        "--members", type=int, default=10_000, help="members of the listed group (default 10000)"
    )
    parser.add_argument(
        "--calls", type=int, help="joins and leaves timed one at a time (default 2000, quick 500)"
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    calls = args.calls or (500 if args.quick else 2000)
    figures = measure(seconds, calls, args.members, args.rate, args.watchers)
    print(f"presence on Redis ({figures['url']}), {'quick' if args.quick else 'full'} run")
    for phase in ("join", "leave"):
        print(
            f"  {phase:5}  {figures[f'{phase}_us']:7.0f} µs/call  "
            f"{figures[f'{phase}_round_trips']:4.2f} round trips  "
            f"{figures[f'{phase}_commands']:5.1f} Redis commands  ({calls} calls one at a time)"
        )
    verdict = "within" if figures["list_ms"] <= 50 else "OVER"
    print(
        f"  list   {figures['list_ms']:7.1f} ms for {args.members} members ({verdict} the 50 ms target; "
        f"median of 5; filled in {figures['fill_s']:.1f} s)"
    )
    for row in figures["churn"]:
        print(
            f"  churn  interval {row['interval_ms']:3.0f} ms: {row['joins_per_s']:6.0f} joins/s (each "
            f"leaving 1 s later) -> {row['messages_per_watcher_per_s']:6.1f} messages/s and "
            f"{row['bytes_per_watcher_per_s'] / 1024:6.1f} KiB/s per watcher ({args.watchers} watchers; "
            f"flushes at least {row['shortest_gap_ms']:.0f} ms apart)"
        )
    fewer = figures["fewer_messages_batched"]
    print(f"  batching sends {fewer:.1f}x fewer presence messages than flushing every change")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
