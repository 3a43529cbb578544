"""The suite's workloads: each takes one system, starts what it needs, drives it from load
processes on 127.0.0.1 and returns plain figures (numbers, lists, dicts) for the report.
"""

import asyncio
import os
import sys
import time
from typing import Any

from bench.layer import redis_benchmark
from bench.loads import (
    SPAWN,
    broadcast_load,
    echo_load,
    idle_load,
    join,
    python_http_load,
    run_process,
    wait_for,
    wrk,
)
from bench.measure import CpuMeter, calls_between, redis_calls, rss_kb, summary_ms
from bench.systems import ROOT, Launcher, Stack, System
from switchroom.shared.redisproc import RedisProcess, free_port

HTTP_CONNECTIONS = 64
ECHO_SOCKETS = 50
BROADCAST_PER_SERVER = 100


def _per_unit(commands: dict[str, int], units: int) -> tuple[float, dict[str, float]]:
    """Redis commands per request (or message): the total and the mix."""
    units = max(units, 1)
    return sum(commands.values()) / units, {k: round(v / units, 2) for k, v in commands.items()}


def _redis_before(stack: Stack) -> dict[str, int] | None:
    return redis_calls(stack.redis.port) if stack.redis else None


def _redis_per(stack: Stack, before: dict[str, int] | None, units: int) -> dict[str, Any]:
    if stack.redis is None or before is None:
        return {}
    total, mix = _per_unit(calls_between(before, redis_calls(stack.redis.port)), units)
    return {"redis_per_unit": total, "redis_commands": mix}


def http_hello(
    system: System, seconds: float, use_wrk: bool, worker_counts: tuple[int, ...]
) -> dict[str, Any]:
    """GET /hello from 64 keep-alive connections, with each number of workers in turn."""
    load = wrk if use_wrk else python_http_load
    results: dict[str, Any] = {}
    counts = worker_counts if system.runs_workers or system.name == "ceiling" else (1,)
    for workers in counts:
        with system.stack(servers=1, workers=workers) as stack:
            (port,) = stack.ports
            load(port, HTTP_CONNECTIONS, 1)  # warm-up
            meter = CpuMeter(stack.pids)
            before = _redis_before(stack)
            run = load(port, HTTP_CONNECTIONS, seconds)
            run.update(_redis_per(stack, before, int(run["requests"])))
            run["cpu_pct"] = meter.percent()
            results[f"workers_{workers}"] = run
    return results


def websocket_echo(system: System, seconds: float, sockets: int = ECHO_SOCKETS) -> dict[str, Any]:
    """``sockets`` WebSockets each sending a frame and awaiting its echo, for ``seconds``."""
    with system.stack(servers=1, workers=1) as stack:
        ready, go, done, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
        loader = run_process(echo_load, stack.ports[0], sockets, seconds, ready, go, done, out)
        try:
            wait_for(ready, loader, 60, f"{sockets} echo sockets were open")
            meter = CpuMeter({**stack.pids, "load": loader.pid})
            before = _redis_before(stack)
            go.set()
            result = out.get(timeout=seconds + 60)
            result.update(_redis_per(stack, before, result["messages"]))
            result["cpu_pct"] = meter.percent()
        finally:
            done.set()
            join(loader)
    return result


def _broadcast_once(system: System, stack: Stack, rate: int, seconds: float) -> dict[str, Any]:
    """One offered rate: fresh sockets in a fresh room, a publisher, every delivery counted."""
    assert stack.redis is not None
    room = f"r{rate}"
    members = len(stack.ports) * BROADCAST_PER_SERVER
    opened, stop, counts, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Value("q", 0), SPAWN.Queue()
    loader = run_process(broadcast_load, stack.ports, BROADCAST_PER_SERVER, room, opened, counts, stop, out)
    try:
        wait_for(opened, loader, 120, f"{members} broadcast sockets were open")
        time.sleep(0.5)  # let the last joins reach the group before the first send
        meter = CpuMeter({**stack.pids, "load": loader.pid})
        sent = system.publish(stack.redis, f"bench-room-{room}", rate, seconds)
        expected = sent["sends"] * members
        settle = time.monotonic()
        while counts.value < expected and time.monotonic() - settle < 30:
            before = counts.value
            time.sleep(1.0)
            if counts.value == before:
                break
        cpu = meter.percent()
        stop.set()
        got = out.get(timeout=60)
    finally:
        stop.set()
        join(loader)
    span = max(got["last_delivery"] - sent["start"], sent["sends"] / rate)
    lost = expected - got["received"]
    return {
        "offered_dps": rate * members,
        "sockets": members,
        "group_sends": sent["sends"],
        "send_errors": sent["errors"],
        "expected": expected,
        "received": got["received"],
        "sockets_closed": got["closed"],
        "close_reasons": got["close_reasons"],
        "lost_pct": lost / max(expected, 1) * 100,
        "dps": got["received"] / span,
        "p50_ms": got["p50_ms"],
        "p99_ms": got["p99_ms"],
        "cpu_pct": cpu,
    }


def broadcast(system: System, seconds: float, rates: tuple[int, ...]) -> dict[str, Any]:
    """200 sockets over two server processes in one group; a publisher at each rate in turn."""
    with system.stack(servers=2, workers=1) as stack:
        steps = [_broadcast_once(system, stack, rate, seconds) for rate in rates]
    clean = [step["offered_dps"] for step in steps if step["received"] == step["expected"]]
    return {"steps": steps, "highest_lossless_dps": max(clean, default=0)}


def idle_memory(system: System, sockets: int) -> dict[str, Any]:
    """RSS of the server process before and after ``sockets`` idle accepted WebSockets."""

    def hold(count: int, measure: Any) -> Any:
        opened, stop = SPAWN.Event(), SPAWN.Event()
        loader = run_process(idle_load, stack.ports[0], count, opened, stop)
        try:
            wait_for(opened, loader, 180, f"{count} idle sockets were open")
            return measure()
        finally:
            stop.set()
            join(loader, 60)

    def settled_rss() -> int:
        time.sleep(1.0)
        return rss_kb(server)

    with system.stack(servers=1, workers=1) as stack:
        server = stack.pids["server 1"]
        hold(20, lambda: None)  # load the WebSocket code paths once
        before = settled_rss()
        after = hold(sockets, settled_rss)
    return {
        "sockets": sockets,
        "rss_before_kb": before,
        "rss_after_kb": after,
        "kb_per_socket": (after - before) / sockets,
    }


def layer_ops(system: System, seconds: float) -> dict[str, Any]:
    """Send+receive pairs/s through the system's layer client; redis-benchmark for the ceiling."""
    with RedisProcess() as redis:
        if system.name == "ceiling":
            requests = max(20_000, int(60_000 * seconds))
            rates = redis_benchmark(redis.port, requests)
            if not rates:
                return {"skipped": "redis-benchmark is not installed"}
            return {
                "one_at_a_time": rates.get("RPOP", 0.0),
                "batched": rates.get("RPOP -P16", 0.0),
                "redis_benchmark": rates,
            }
        return system.layer_ops(redis, seconds)


def email_ingest(seconds: float, clients: int) -> dict[str, Any]:
    """Small messages from ``clients`` SMTP client processes into one ``switchroom email``."""
    from bench.email_ingest import run

    return {"clients": clients, **asyncio.run(run(0, seconds, clients))}


def slack_round_trip(seconds: float, rate: int) -> dict[str, Any]:
    """Slack events at ``rate``/s through the stand-in, ``switchroom slack`` and a worker that
    posts each text back; latency from the event's injection to the stand-in taking the post.

    The server's per-channel pacing is turned off (``--post-interval 0``) so the figure is
    Switchroom's own cost, not Slack's rate limit.
    """
    import httpx

    standin_port = free_port()
    python = sys.executable
    with RedisProcess() as redis:
        launcher = Launcher({**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            launcher.spawn(
                "stand-in", [python, "-m", "switchroom.servers.slack.standin", "--port", str(standin_port)]
            )
            base = f"http://127.0.0.1:{standin_port}"
            launcher.env.update(
                SWITCHROOM_SLACK_BOT_TOKEN="xoxb-bench", SWITCHROOM_SLACK_APP_TOKEN="xapp-bench"
            )
            cli = [python, "-m", "switchroom.cli"]
            common = ["--layer", redis.url, "--log-level", "warning"]
            launcher.spawn(
                "server", [*cli, "slack", "--api-url", f"{base}/api/", "--post-interval", "0", *common]
            )
            launcher.spawn("worker", [*cli, "worker", "bench.apps:app", *common])
            with httpx.Client(base_url=base, timeout=10) as client:
                sent = _slack_events(client, launcher, rate, seconds)
        finally:
            launcher.stop()
    return sent


def _slack_events(client: Any, launcher: Launcher, rate: int, seconds: float) -> dict[str, Any]:
    """Inject events on a fixed schedule once the app answers one; collect the posts back."""
    import httpx

    def inject(text: str) -> None:
        event = {"type": "message", "channel": "CBENCH", "user": "UBENCH", "text": text}
        client.post("/_standin/event", json={"event": event}).raise_for_status()

    def posts() -> list[dict[str, Any]]:
        return [p for p in client.get("/_standin/posts").json() if p.get("method") == "chat.postMessage"]

    deadline = time.monotonic() + 60
    while True:
        launcher.check()
        if time.monotonic() > deadline:
            raise RuntimeError("the Slack server and worker did not answer within 60 s")
        try:
            if posts():
                break
            inject("warm-up 0")
        except httpx.HTTPError:
            pass  # the stand-in is still starting
        time.sleep(0.5)
    warm = len(posts())
    count = round(rate * seconds)
    start = time.monotonic()
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        inject(f"{n} {time.monotonic()!r}")
    settle = time.monotonic()
    got = posts()[warm:]
    while len(got) < count and time.monotonic() - settle < 30:
        time.sleep(0.2)
        got = posts()[warm:]
    timed = [p for p in got if not p["text"].startswith("warm-up")]
    latencies = [p["at"] - float(p["text"].split()[1]) for p in timed]
    span = max((p["at"] for p in timed), default=start) - start
    return {
        "events": count,
        "answered": len(timed),
        "lost": count - len(timed),
        "rate": len(timed) / max(span, count / rate),
        **summary_ms(latencies),
    }
