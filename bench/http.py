"""Benchmark of the HTTP/WebSocket server against the original stack's reference figures.

Each workload starts a private Redis, ``switchroom http`` server processes and
``switchroom worker bench.apps:app`` processes, and drives them from separate load
processes on 127.0.0.1:

- W1 HTTP hello: 64 keep-alive connections for ~10 s (``wrk`` if on PATH, else a Python
  load generator), with 1 and then 2 workers; requests/s, p50, p99, Redis commands per request.
- W2 WebSocket echo: 50 sockets, each sends and waits for its echo; msg/s, p50, p99.
- W3 broadcast: 200 sockets in one group over two server processes; a publisher process
  calls ``group_send`` at 10 and 100 sends/s (2k and 20k deliveries/s offered); deliveries,
  loss and latency from the timestamp each message carries.
- W4 memory: RSS of one server process before and after 2,000 idle accepted WebSockets.

    python bench/http.py            # full runs, ~2 minutes
    python bench/http.py --quick --json results.json
"""

# ruff: noqa: E402
import sys
from pathlib import Path

# Run as ``python bench/http.py``, this file's folder comes first on sys.path and would shadow
# the standard library's ``http`` package (which this file, redis and websockets import).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import redis

from switchroom.layers import get_layer
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
APP = "bench.apps:app"
SPAWN = multiprocessing.get_context("spawn")

# The original stack (Daphne 1.4.2 + runworker + asgi_redis 1.4.3) from
# /work/shared/notes/reference-figures.md; None where the notes give no single figure.
REFERENCE: dict[str, float | None] = {
    "w1_1_rps": 581,
    "w1_1_p50_ms": 109,
    "w1_1_p99_ms": 168,
    "w1_2_rps": 584,
    "w1_2_p50_ms": 106,
    "w1_2_p99_ms": 168,
    "w1_redis_per_request": 36,
    "w2_mps": 814,
    "w2_p50_ms": 58,
    "w2_p99_ms": 114,
    "w2_redis_per_message": 29,
    "w3_20k_dps": 1800,
    "w4_kb_per_socket": 12.8,
}
REFERENCE_TEXT = {
    "w3_20k_lost_pct": "1–50 %",
    "w3_20k_p50_ms": "3,800–5,600",
    "w3_2k_lost_pct": "0.8–11.6 %",
}


# ---------------------------------------------------------------------------- helpers


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0–100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summary_ms(latencies: list[float]) -> dict[str, float]:
    """p50 and p99 of latencies given in seconds, in milliseconds."""
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def raise_nofile(wanted: int) -> None:
    """Raise this process's open-files soft limit to ``wanted`` (capped at the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))


def redis_calls(port: int) -> dict[str, int]:
    """Redis's own per-command call counters, minus the commands this measuring makes."""
    client = redis.Redis(port=port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_client", "cmdstat_hello"))
    }


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two ``redis_calls`` snapshots, by name, most first."""
    diff = {name: after[name] - before.get(name, 0) for name in after}
    return dict(sorted(((k, v) for k, v in diff.items() if v), key=lambda kv: -kv[1]))


class Processes:
    """Starts the servers and workers of one workload and stops every one by PID."""

    def __init__(self, layer_url: str) -> None:
        self.layer_url = layer_url
        self.started: list[subprocess.Popen[bytes]] = []

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchroom.shared.cli",
                *args,
                "--layer",
                self.layer_url,
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.started.append(proc)
        return proc

    def server(self, port: int) -> subprocess.Popen[bytes]:
        """A ``switchroom http`` process on ``port`` without the access log (as a benchmark runs)."""
        return self._spawn(["http", "--port", str(port), "--no-access-log", "--max-connections", "5000"])

    def worker(self) -> subprocess.Popen[bytes]:
        """A ``switchroom worker`` process serving bench/apps.py."""
        return self._spawn(["worker", APP])

    def stop(self) -> None:
        """SIGTERM each started process, SIGKILL any still running after 20 s."""
        for proc in self.started:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.started.clear()


@contextlib.contextmanager
def stack(servers: int, workers: int) -> Iterator[tuple[RedisProcess, Processes, list[int]]]:
    """A private Redis, ``servers`` server processes and ``workers`` workers, answering /hello."""
    with RedisProcess() as redis_proc:
        procs = Processes(redis_proc.url)
        try:
            ports = [free_port() for _ in range(servers)]
            for port in ports:
                procs.server(port)
            for _ in range(workers):
                procs.worker()
            for port in ports:
                wait_ready(port, procs)
            yield redis_proc, procs, ports
        finally:
            procs.stop()


def wait_ready(port: int, procs: Processes, timeout: float = 30.0) -> None:
    """Wait until GET /hello on ``port`` answers 200, i.e. the server and a worker are up."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs.started:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, proc.args))} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/hello")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server on port {port} did not answer /hello within {timeout} s")
        time.sleep(0.2)


class CpuMeter:
    """CPU each named process uses from now until ``percent()``, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = time.perf_counter()
        self.before = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def percent(self) -> dict[str, int]:
        elapsed = time.perf_counter() - self.start
        return {
            name: round((cpu_seconds(pid) - self.before[name]) / elapsed * 100)
            for name, pid in self.pids.items()
        }


def stack_pids(redis_proc: RedisProcess, procs: Processes) -> dict[str, int]:
    """The PIDs of a stack's servers, workers and Redis, by name."""
    pids: dict[str, int] = {}
    for proc in procs.started:
        kind = "server" if proc.args[3] == "http" else "worker"
        pids[f"{kind} {sum(name.startswith(kind) for name in pids) + 1}"] = proc.pid
    if redis_proc.pid is not None:
        pids["redis"] = redis_proc.pid
    return pids


def wait_for(event: Any, loader: multiprocessing.Process, timeout: float, what: str) -> None:
    """Wait until a load process sets ``event``; fail at once if it died instead."""
    deadline = time.monotonic() + timeout
    while not event.wait(0.2):
        if not loader.is_alive():
            raise RuntimeError(f"the load process failed (exit code {loader.exitcode}) before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting until {what}")


def run_process(target: Any, *args: Any) -> multiprocessing.Process:
    """Start ``target(*args)`` in a fresh (spawned) Python process."""
    proc = SPAWN.Process(target=target, args=args)
    proc.start()
    return proc


def join(proc: multiprocessing.Process, timeout: float = 30.0) -> None:
    """Wait for a load process; terminate it by PID if it overstays."""
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join(10)


# ---------------------------------------------------------------------------- W1: HTTP hello

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """Requests, requests/s, p50/p99 (ms) and error counts from ``wrk --latency`` output."""

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        if not match:
            raise ValueError(f"no {label} latency in wrk output:\n{output}")
        return float(match.group(1)) * UNITS[match.group(2)]

    requests = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not requests or not rps:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(requests.group(1)),
        "rps": float(rps.group(1)),
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def wrk(port: int, connections: int, seconds: float) -> dict[str, float]:
    """Run ``wrk -t2`` against /hello and parse its report."""
    cmd = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        f"http://127.0.0.1:{port}/hello",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout)


def http_load(port: int, connections: int, seconds: float, out: Any) -> None:
    """In its own process: ``connections`` keep-alive HTTP/1.1 loops on /hello for ``seconds``."""
    request = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def one(deadline: float, latencies: list[float], failures: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if not length:
                    raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
                await reader.readexactly(int(length.group(1)))
                latencies.append(time.perf_counter() - start)
                if not head.startswith(b"HTTP/1.1 200"):
                    failures.append(1)
        finally:
            writer.close()

    async def main() -> dict[str, float]:
        latencies: list[float] = []
        failures: list[int] = []
        start = time.perf_counter()
        await asyncio.gather(*(one(start + seconds, latencies, failures) for _ in range(connections)))
        elapsed = time.perf_counter() - start
        return {
            "requests": len(latencies),
            "seconds": elapsed,
            "non_2xx": len(failures),
            "latencies": latencies,
        }

    out.put(asyncio.run(main()))


def python_http_load(port: int, connections: int, seconds: float) -> dict[str, float]:
    """The ``wrk`` stand-in: two load processes with half the connections each."""
    out = SPAWN.Queue()
    halves = [connections // 2, connections - connections // 2]
    procs = [run_process(http_load, port, n, seconds, out) for n in halves]
    try:
        parts = [out.get(timeout=seconds + 60) for _ in procs]
    finally:
        for proc in procs:
            join(proc)
    latencies = [x for part in parts for x in part["latencies"]]
    requests = sum(part["requests"] for part in parts)
    return {
        "requests": requests,
        "rps": requests / max(part["seconds"] for part in parts),
        **summary_ms(latencies),
        "errors": 0,
        "non_2xx": sum(part["non_2xx"] for part in parts),
    }


def w1(seconds: float, use_wrk: bool) -> dict[str, Any]:
    """HTTP hello with one worker, then with a second worker added."""
    load = (lambda port, c, s: wrk(port, c, s)) if use_wrk else python_http_load
    results: dict[str, Any] = {"load": "wrk -t2 -c64 --latency" if use_wrk else "python asyncio, 2 processes"}
    with stack(servers=1, workers=1) as (redis_proc, procs, [port]):
        load(port, 64, 1)  # warm-up: imports, connection pools, JIT-free but cache-warm
        for workers in (1, 2):
            if workers == 2:
                procs.worker()
                wait_ready(port, procs)
                load(port, 64, 1)
            meter = CpuMeter(stack_pids(redis_proc, procs))
            before = redis_calls(redis_proc.port)
            run = load(port, 64, seconds)
            commands = calls_between(before, redis_calls(redis_proc.port))
            run["cpu_pct"] = meter.percent()
            run["redis_per_request"] = sum(commands.values()) / max(run["requests"], 1)
            run["redis_commands"] = {k: round(v / max(run["requests"], 1), 2) for k, v in commands.items()}
            results[f"workers_{workers}"] = run
    return results


# ---------------------------------------------------------------------------- W2: WebSocket echo


def echo_load(port: int, sockets: int, seconds: float, ready: Any, go: Any, done: Any, out: Any) -> None:
    """In its own process: ``sockets`` WebSockets, each sending and awaiting its echo in a loop."""
    from websockets.asyncio.client import connect

    async def one(ws: Any, deadline: float, latencies: list[float]) -> None:
        payload = "x" * 32
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await ws.send(payload)
            if await ws.recv() != payload:
                raise RuntimeError("the echo differs from what was sent")
            latencies.append(time.perf_counter() - start)

    async def main() -> None:
        clients = [await connect(f"ws://127.0.0.1:{port}/echo") for _ in range(sockets)]
        await asyncio.gather(*(one(ws, 0, []) for ws in clients))
        for ws in clients:
            await ws.send("warm-up")
            await ws.recv()
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.01)
        latencies: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(*(one(ws, start + seconds, latencies) for ws in clients))
        elapsed = time.perf_counter() - start
        out.put({"messages": len(latencies), "mps": len(latencies) / elapsed, **summary_ms(latencies)})
        while not done.is_set():
            await asyncio.sleep(0.05)
        await asyncio.gather(*(ws.close() for ws in clients))

    asyncio.run(main())


def w2(seconds: float, sockets: int = 50) -> dict[str, Any]:
    """WebSocket echo with one worker; Redis commands counted over the timed part only."""
    with stack(servers=1, workers=1) as (redis_proc, procs, [port]):
        ready, go, done, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
        loader = run_process(echo_load, port, sockets, seconds, ready, go, done, out)
        try:
            wait_for(ready, loader, 60, f"{sockets} echo sockets were open")
            meter = CpuMeter({**stack_pids(redis_proc, procs), "load": loader.pid})
            before = redis_calls(redis_proc.port)
            go.set()
            result = out.get(timeout=seconds + 60)
            commands = calls_between(before, redis_calls(redis_proc.port))
            result["cpu_pct"] = meter.percent()
        finally:
            done.set()
            join(loader)
    result["redis_per_message"] = sum(commands.values()) / max(result["messages"], 1)
    result["redis_commands"] = {k: round(v / max(result["messages"], 1), 2) for k, v in commands.items()}
    return result


# ---------------------------------------------------------------------------- W3: broadcast


def broadcast_load(
    ports: list[int], per_server: int, room: str, opened: Any, counts: Any, stop: Any, out: Any
) -> None:
    """In its own process: ``per_server`` sockets on each server in ``room``; count every delivery."""
    from websockets.asyncio.client import connect

    raise_nofile(len(ports) * per_server + 1000)

    async def main() -> None:
        clients = []
        for port in ports:
            for _ in range(per_server):
                clients.append(await connect(f"ws://127.0.0.1:{port}/room/{room}", max_queue=None))
        opened.set()
        latencies: list[float] = []
        last = [0.0]

        async def drain(ws: Any) -> None:
            async for text in ws:
                now = time.monotonic()
                latencies.append(now - float(text.split()[1]))
                last[0] = now

        tasks = [asyncio.ensure_future(drain(ws)) for ws in clients]
        while not stop.is_set():
            await asyncio.sleep(0.1)
            counts.value = len(latencies)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.put({"received": len(latencies), "last_delivery": last[0], **summary_ms(latencies)})
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())


def publish(url: str, group: str, rate: float, seconds: float, out: Any) -> None:
    """In its own process: ``group_send`` ``rate`` times a second on a fixed schedule."""

    async def main() -> None:
        layer = get_layer(url)
        sends = reached = errors = 0
        start = time.monotonic()
        try:
            for i in range(round(rate * seconds)):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    reached += await layer.group_send(group, {"text": f"{i} {time.monotonic()!r}"})
                except Exception as exc:  # a failed send is a figure here, not a crash
                    errors += 1
                    if errors == 1:
                        print(f"group_send failed: {exc!r}", file=sys.stderr)
                sends += 1
        finally:
            await layer.close()
        out.put(
            {
                "sends": sends,
                "reached": reached,
                "errors": errors,
                "start": start,
                "seconds": time.monotonic() - start,
            }
        )

    asyncio.run(main())


def w3(seconds: float, per_server: int = 100, rates: tuple[int, ...] = (10, 100)) -> dict[str, Any]:
    """Broadcast to 2 × ``per_server`` sockets over two servers at each offered rate."""
    results: dict[str, Any] = {}
    with stack(servers=2, workers=1) as (redis_proc, procs, ports):
        for rate in rates:
            room = f"r{rate}"
            members = len(ports) * per_server
            opened, stop, counts, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Value("q", 0), SPAWN.Queue()
            loader = run_process(broadcast_load, ports, per_server, room, opened, counts, stop, out)
            try:
                wait_for(opened, loader, 60, f"{members} broadcast sockets were open")
                meter = CpuMeter({**stack_pids(redis_proc, procs), "load": loader.pid})
                published = SPAWN.Queue()
                group = f"bench-room-{room}"
                publisher = run_process(publish, redis_proc.url, group, rate, seconds, published)
                try:
                    sent = published.get(timeout=seconds + 60)
                finally:
                    join(publisher)
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
            results[f"offered_{rate * members}"] = {
                "sockets": members,
                "group_sends": sent["sends"],
                "send_errors": sent["errors"],
                "reached": sent["reached"],
                "expected": expected,
                "received": got["received"],
                "lost": expected - got["received"],
                "lost_pct": (expected - got["received"]) / max(expected, 1) * 100,
                "dps": got["received"] / span,
                "p50_ms": got["p50_ms"],
                "p99_ms": got["p99_ms"],
                "cpu_pct": cpu,
            }
    return results


# ---------------------------------------------------------------------------- W4: memory


def idle_load(port: int, sockets: int, opened: Any, stop: Any) -> None:
    """In its own process: open ``sockets`` WebSockets on /idle and hold them until told to stop."""
    from websockets.asyncio.client import connect

    raise_nofile(sockets + 1000)

    async def main() -> None:
        clients: list[Any] = []
        while len(clients) < sockets:
            # Handshakes wait in websocket.connect, which holds 100 messages by default; more at
            # once than that would be answered 503, as designed.
            batch = min(50, sockets - len(clients))
            clients += await asyncio.gather(*(connect(f"ws://127.0.0.1:{port}/idle") for _ in range(batch)))
        opened.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())


def hold_sockets(port: int, sockets: int, measure: Any) -> Any:
    """Open ``sockets`` idle sockets from a load process, call ``measure()``, close them."""
    opened, stop = SPAWN.Event(), SPAWN.Event()
    loader = run_process(idle_load, port, sockets, opened, stop)
    try:
        wait_for(opened, loader, 120, f"{sockets} idle sockets were open")
        return measure()
    finally:
        stop.set()
        join(loader, 60)


def w4(sockets: int) -> dict[str, Any]:
    """Server RSS before and after ``sockets`` idle accepted WebSockets (after a small warm-up)."""
    with stack(servers=1, workers=1) as (_, procs, [port]):
        server = procs.started[0].pid
        hold_sockets(port, 20, lambda: None)  # load the WebSocket code paths once
        time.sleep(1.0)
        before = rss_kb(server)

        def after() -> int:
            time.sleep(1.0)
            return rss_kb(server)

        with_sockets = hold_sockets(port, sockets, after)
    return {
        "sockets": sockets,
        "rss_before_kb": before,
        "rss_after_kb": with_sockets,
        "kb_per_socket": (with_sockets - before) / sockets,
    }


# ---------------------------------------------------------------------------- report


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, ours, original stack, ours ÷ original) rows for whatever was run."""
    out: list[tuple[str, str, str, str]] = []

    def add(label: str, ours: float, ref_key: str | None, fmt: str = "{:,.0f}") -> None:
        ref = REFERENCE.get(ref_key) if ref_key else None
        ref_text = REFERENCE_TEXT.get(ref_key or "", "–") if ref is None else fmt.format(ref)
        ratio = f"{ours / ref:.2f}" if ref else "–"
        out.append((label, fmt.format(ours), ref_text, ratio))

    if "w1" in results:
        for n in (1, 2):
            run = results["w1"][f"workers_{n}"]
            add(f"W1 HTTP req/s, {n} worker{'s' * (n > 1)} (higher is better)", run["rps"], f"w1_{n}_rps")
            add(f"W1 p50 ms, {n} worker{'s' * (n > 1)}", run["p50_ms"], f"w1_{n}_p50_ms", "{:,.1f}")
            add(f"W1 p99 ms, {n} worker{'s' * (n > 1)}", run["p99_ms"], f"w1_{n}_p99_ms", "{:,.1f}")
        add(
            "W1 Redis commands per request, 1 worker",
            results["w1"]["workers_1"]["redis_per_request"],
            "w1_redis_per_request",
            "{:,.2f}",
        )
    if "w2" in results:
        run = results["w2"]
        add("W2 echo msg/s (higher is better)", run["mps"], "w2_mps")
        add("W2 p50 ms", run["p50_ms"], "w2_p50_ms", "{:,.1f}")
        add("W2 p99 ms", run["p99_ms"], "w2_p99_ms", "{:,.1f}")
        add(
            "W2 Redis commands per echoed message",
            run["redis_per_message"],
            "w2_redis_per_message",
            "{:,.2f}",
        )
    if "w3" in results:
        for offered, tag in (("offered_20000", "20k"), ("offered_2000", "2k")):
            run = results["w3"].get(offered)
            if run is None:
                continue
            add(f"W3 {tag}/s offered: deliveries/s", run["dps"], "w3_20k_dps" if tag == "20k" else None)
            add(f"W3 {tag}/s offered: lost %", run["lost_pct"], f"w3_{tag}_lost_pct", "{:,.2f}")
            add(f"W3 {tag}/s offered: p50 ms", run["p50_ms"], f"w3_{tag}_p50_ms", "{:,.1f}")
            add(f"W3 {tag}/s offered: p99 ms", run["p99_ms"], None, "{:,.1f}")
    if "w4" in results:
        add(
            "W4 KB per idle WebSocket (lower is better)",
            results["w4"]["kb_per_socket"],
            "w4_kb_per_socket",
            "{:,.1f}",
        )
    return out


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number's median over ``runs`` (same-shaped results); other values from the first run."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: median_of([run[key] for run in runs if key in run]) for key in first}
    if isinstance(first, int | float) and not isinstance(first, bool):
        return statistics.median(runs)
    return first


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table beside the original stack's figures."""
    lines = ["| measure | Switchroom | original stack | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    return "\n".join(lines)


def details(results: dict[str, Any]) -> str:
    """Figures the table leaves out: CPU per process, the Redis command mix, W3 counts."""
    lines = []
    for n in (1, 2):
        run = results.get("w1", {}).get(f"workers_{n}")
        if run:
            lines.append(
                f"W1 {n} worker(s): {run['requests']:,} requests, {run['non_2xx']} non-2xx, "
                f"{run['errors']} socket errors; CPU % of a core {run['cpu_pct']}; "
                f"Redis per request {run['redis_commands']}"
            )
    if "w2" in results:
        run = results["w2"]
        lines.append(
            f"W2: {run['messages']:,} echoes; CPU % of a core {run['cpu_pct']}; "
            f"Redis per message {run['redis_commands']}"
        )
    for offered, run in results.get("w3", {}).items():
        lines.append(
            f"W3 {offered}: {run['group_sends']} group sends to {run['sockets']} sockets "
            f"({run['send_errors']} failed, {run['reached']:,} reached), "
            f"{run['received']:,} of {run['expected']:,} received, {run['lost']:,} lost; "
            f"CPU % of a core {run['cpu_pct']}"
        )
    if "w4" in results:
        w = results["w4"]
        lines.append(
            f"W4: RSS {w['rss_before_kb']:,} KB before, {w['rss_after_kb']:,} KB with "
            f"{w['sockets']:,} sockets"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 s runs instead of 10 s")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--only", default="w1,w2,w3,w4", help="comma-separated workloads to run")
    parser.add_argument(
        "--python-load",
        action="store_true",
        help="drive W1 with the Python load generator even if wrk is on PATH",
    )
    parser.add_argument("--idle-sockets", type=int, default=2000, help="sockets W4 opens")
    parser.add_argument("--runs", type=int, default=1, help="repeat every workload; report medians")
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else 10.0
    chosen = {w.strip().lower() for w in args.only.split(",") if w.strip()}
    unknown = chosen - {"w1", "w2", "w3", "w4"}
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    use_wrk = shutil.which("wrk") is not None and not args.python_load

    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        results: dict[str, Any] = {}
        if "w1" in chosen:
            results["w1"] = w1(seconds, use_wrk)
        if "w2" in chosen:
            results["w2"] = w2(seconds)
        if "w3" in chosen:
            results["w3"] = w3(seconds)
        if "w4" in chosen:
            results["w4"] = w4(args.idle_sockets)
        runs.append(results)
    results = median_of(runs)

    if args.runs > 1:
        print(f"medians of {args.runs} runs")
    print(table(results))
    print()
    print(details(results))
    if args.json:
        meta = {
            "command": " ".join(["python", "bench/http.py", *(argv or sys.argv[1:])]),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "seconds": seconds,
            "runs": args.runs,
        }
        args.json.write_text(
            json.dumps(
                {
                    "meta": meta,
                    "results": results,
                    "each_run": runs,
                    "reference": REFERENCE,
                    "reference_text": REFERENCE_TEXT,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
