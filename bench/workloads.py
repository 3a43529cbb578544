"""The suite's workloads: each takes one system and the run's options, starts what it
needs, drives it from load processes on 127.0.0.1 and returns plain figures for the report.

Every figure is measured ``options.runs`` times and kept as a list of runs, so that the
report shows the median and the range; the first workloads measure each system's
maximum in a closed loop and then offer it 50 % and 80 % of that on a fixed schedule.
"""

import asyncio
import os
import shutil
import statistics
import sys
import time
from typing import Any

from bench.layer import redis_benchmark
from bench.loads import (
    SPAWN,
    broadcast_load,
    echo_load,
    echo_rate_load,
    idle_load,
    join,
    python_http_load,
    python_http_rate_load,
    run_process,
    wait_for,
    wrk,
)
from bench.measure import CpuMeter, calls_between, redis_calls, rss_kb, summary_ms
from bench.registry import Options, register
from bench.systems import ROOT, Launcher, Stack, System
from switchroom.shared.redisproc import RedisProcess, free_port

HTTP_CONNECTIONS = 64
ECHO_SOCKETS = 50
BROADCAST_PER_SERVER = 100
# The shares of each system's measured maximum offered on a schedule.
RATE_SHARES = (50, 80)


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


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


@register("http")
def http_hello(system: System, options: Options) -> dict[str, Any]:
    """GET /hello from 64 keep-alive connections, with each number of workers in turn; then,
    with the first, at 50 % and 80 % of its median rate on a fixed schedule."""
    use_wrk = shutil.which("wrk") is not None and not options.python_load
    load = wrk if use_wrk else python_http_load
    generator = "wrk -t2 (closed loop)" if use_wrk else "python asyncio, 2 processes (closed loop)"
    worker_counts = (1,) if options.quick else (1, 2)
    results: dict[str, Any] = {}
    counts = worker_counts if system.runs_workers or system.name == "ceiling" else (1,)
    for workers in counts:
        with system.stack(servers=1, workers=workers) as stack:
            (port,) = stack.ports
            load(port, HTTP_CONNECTIONS, 1)  # warm-up
            runs = []
            for _ in range(options.runs):
                meter = CpuMeter(stack.pids)
                before = _redis_before(stack)
                run = load(port, HTTP_CONNECTIONS, options.seconds)
                run.update(_redis_per(stack, before, int(run["requests"])))
                run["cpu_pct"] = meter.percent()
                runs.append(run)
            results[f"workers_{workers}"] = {"load": generator, "runs": runs}
            if workers != counts[0]:
                continue
            top = _median(runs, "rps")
            for share in RATE_SHARES if top > 0 else ():
                rate = top * share / 100
                paced = []
                for _ in range(options.runs):
                    meter = CpuMeter(stack.pids)
                    run = python_http_rate_load(port, HTTP_CONNECTIONS, rate, options.seconds)
                    run["cpu_pct"] = meter.percent()
                    paced.append(run)
                results[f"rate_{share}"] = {
                    "load": "python asyncio, 2 processes, on a fixed schedule (open loop)",
                    "share_of_max": share,
                    "offered_rps": rate,
                    "runs": paced,
                }
    return results


def _echo_loaded(stack: Stack, target: Any, *args: Any) -> dict[str, Any]:
    """Run one echo load process against ``stack``; its figures with the stack's CPU and Redis."""
    ready, go, done, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    loader = run_process(target, stack.ports[0], *args, ready, go, done, out)
    try:
        wait_for(ready, loader, 60, f"{args[0]} echo sockets were open")
        meter = CpuMeter({**stack.pids, "load": loader.pid})
        before = _redis_before(stack)
        go.set()
        result = out.get(timeout=args[-1] + 90)
        result.update(_redis_per(stack, before, result["messages"]))
        result["cpu_pct"] = meter.percent()
    finally:
        done.set()
        join(loader)
    return result


@register("echo")
def websocket_echo(system: System, options: Options) -> dict[str, Any]:
    """50 WebSockets each sending a frame and awaiting its echo (closed loop); then frames
    at 50 % and 80 % of the median round trips/s on a fixed schedule, timed from when due."""
    results: dict[str, Any] = {}
    with system.stack(servers=1, workers=1) as stack:
        runs = [_echo_loaded(stack, echo_load, ECHO_SOCKETS, options.seconds) for _ in range(options.runs)]
        results["closed"] = {"runs": runs}
        top = _median(runs, "mps")
        for share in RATE_SHARES if top > 0 else ():
            rate = top * share / 100
            paced = [
                _echo_loaded(stack, echo_rate_load, ECHO_SOCKETS, rate, options.seconds)
                for _ in range(options.runs)
            ]
            results[f"rate_{share}"] = {"share_of_max": share, "offered_mps": rate, "runs": paced}
    return results


def _broadcast_once(system: System, stack: Stack, rate: int, seconds: float, tag: str) -> dict[str, Any]:
    """One offered rate: fresh sockets in a fresh room, a publisher, every delivery counted."""
    assert stack.redis is not None
    room = f"r{rate}x{tag}"
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
    reached = sent.get("reached")
    reasons = [sent.get(f"skipped_{why}") for why in ("full", "dead", "expired")]
    skipped = None if reached is None or None in reasons else sum(reasons)
    return {
        "offered_dps": rate * members,
        "sockets": members,
        "group_sends": sent["sends"],
        "send_errors": sent["errors"],
        "publisher_max_lag_ms": sent["max_lag_ms"],
        "publisher_behind": sent["behind"],
        "expected": expected,
        "layer_reached": reached,
        "layer_skipped": skipped,
        "layer_skipped_by_reason": None
        if skipped is None
        else {k: sent[f"skipped_{k}"] for k in ("full", "dead", "expired")},
        "received": got["received"],
        "lost_after_layer": None if reached is None else reached - got["received"],
        "sockets_closed": got["closed"],
        "close_reasons": got["close_reasons"],
        "lost_pct": lost / max(expected, 1) * 100,
        "dps": got["received"] / span,
        "p50_ms": got["p50_ms"],
        "p99_ms": got["p99_ms"],
        "cpu_pct": cpu,
    }


@register("broadcast", why_not="no layer, so nothing to broadcast across processes")
def broadcast(system: System, options: Options) -> dict[str, Any]:
    """200 sockets over two server processes in one group; a publisher at each rate in turn,
    ``runs`` times each (fresh sockets in a fresh room every time)."""
    steps = []
    with system.stack(servers=2, workers=1) as stack:
        for rate in options.rates:
            runs = [
                _broadcast_once(system, stack, rate, options.seconds, str(i)) for i in range(options.runs)
            ]
            steps.append({"rate": rate, "offered_dps": runs[0]["offered_dps"], "runs": runs})
    clean = [
        step["offered_dps"] for step in steps if all(r["received"] == r["expected"] for r in step["runs"])
    ]
    return {"steps": steps, "highest_lossless_dps": max(clean, default=0)}


@register("memory")
def idle_memory(system: System, options: Options) -> dict[str, Any]:
    """RSS of the server processes before and after ``idle_sockets`` idle accepted WebSockets,
    on a fresh stack each run."""

    def hold(stack: Stack, count: int, measure: Any) -> Any:
        opened, stop = SPAWN.Event(), SPAWN.Event()
        loader = run_process(idle_load, stack.ports[0], count, opened, stop)
        try:
            wait_for(opened, loader, 180, f"{count} idle sockets were open")
            return measure()
        finally:
            stop.set()
            join(loader, 60)

    def settled_rss(stack: Stack) -> int:
        time.sleep(1.0)
        return sum(rss_kb(pid) for name, pid in stack.pids.items() if name.startswith("server"))

    runs = []
    sockets = options.idle_sockets
    for _ in range(options.runs):
        with system.stack(servers=1, workers=1) as stack:
            hold(stack, 20, lambda: None)  # load the WebSocket code paths once
            before = settled_rss(stack)
            after = hold(stack, sockets, lambda s=stack: settled_rss(s))
        runs.append(
            {
                "sockets": sockets,
                "rss_before_kb": before,
                "rss_after_kb": after,
                "kb_per_socket": (after - before) / sockets,
            }
        )
    return {"runs": runs}


@register("layer")
def layer_ops(system: System, options: Options) -> dict[str, Any]:
    """Send+receive pairs/s through the system's layer client; redis-benchmark for the ceiling."""
    runs = []
    for _ in range(options.runs):
        with RedisProcess() as redis:
            if system.name != "ceiling":
                runs.append(system.layer_ops(redis, options.seconds))
                continue
            requests = max(20_000, int(60_000 * options.seconds))
            rates = redis_benchmark(redis.port, requests)
            if not rates:
                return {"skipped": "redis-benchmark is not installed"}
            runs.append(
                {
                    "one_at_a_time": rates.get("RPOP", 0.0),
                    "loop": None,
                    "batched": rates.get("RPOP -P16", 0.0),
                    "redis_benchmark": rates,
                }
            )
    return {"runs": runs}


@register("email", systems=("switchroom",))
def email_ingest(system: System, options: Options) -> dict[str, Any]:
    """Small messages from SMTP client processes into one ``switchroom email`` (default
    capacities), beside aiosmtpd's no-op Sink server under the same load, ``runs`` times
    each in turns; the same with Postfix's ``smtp-source`` as the load when it is found
    (``bench.smtp_source``); then 1 MB messages."""
    from bench.email_ingest import pairs, run
    from bench.smtp_source import find

    clients = 10 if options.quick else 20
    ours, sink = pairs(options.seconds, clients, options.runs)
    result: dict[str, Any] = {"clients": clients, "small": {"runs": ours}, "sink": {"runs": sink}}
    source, where = find()
    if source is None:
        result["smtp_source"] = {"skipped": where}
    else:
        ours, sink = pairs(options.seconds, clients, options.runs, source)
        result["small_smtp_source"] = {"runs": ours}
        result["sink_smtp_source"] = {"runs": sink}
    big = [asyncio.run(run(1_000_000, options.seconds, clients)) for _ in range(options.runs)]
    result["large"] = {"runs": big}
    return result


@register("slack", systems=("switchroom",))
def slack_round_trip(system: System, options: Options) -> dict[str, Any]:
    """Slack events on a fixed schedule through the stand-in, ``switchroom slack`` and a
    worker that posts each text back; latency from when each event was due to the stand-in
    taking the post.

    The server's per-channel pacing is turned off (``--post-interval 0``) so the figure is
    Switchroom's own cost, not Slack's rate limit.
    """
    rate = 50 if options.quick else 100
    return {"rate": rate, "runs": [_slack_once(options.seconds, rate) for _ in range(options.runs)]}


def _slack_once(seconds: float, rate: int) -> dict[str, Any]:
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
    """Inject events on a fixed schedule once the app answers one, each stamped with when it
    was due; collect the posts back."""
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
    max_lag = 0.0
    for n in range(count):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        max_lag = max(max_lag, time.monotonic() - due)
        inject(f"{n} {due!r}")
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
        "load_max_lag_ms": max_lag * 1000,
        "load_behind": max_lag > 1 / rate,
        **summary_ms(latencies),
    }
