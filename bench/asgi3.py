"""WebSocket echo through an ASGI 3 app in ``switchroom worker`` beside the native ``App``'s
echo, in the same run on the same private Redis, one ``switchroom http`` and one worker
each: the price of an app instance per socket and of socket affinity.

    python -m bench.asgi3 --quick
    python -m bench.asgi3 --sockets 50 --seconds 10

``app`` below is the ASGI 3 side: a bare ASGI echo (no framework, so the figure is the
bridge's) and a Starlette ``WebSocketEndpoint`` echo, both at ``/echo`` under their own
targets; the native side is ``bench.apps:app``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.loads import SPAWN, echo_load, join, run_process, wait_for
from bench.measure import cpu_seconds
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]

TARGETS = {
    "native App": "bench.apps:app",
    "ASGI 3 (bare)": "bench.asgi3:app",
    "ASGI 3 (Starlette)": "bench.asgi3:starlette_app",
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI 3 WebSocket echo."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.endpoints import WebSocketEndpoint
    from starlette.routing import WebSocketRoute

    class Echo(WebSocketEndpoint):
        encoding = "text"

        async def on_receive(self, websocket: Any, data: str) -> None:
            await websocket.send_text(data)

    return Starlette(routes=[WebSocketRoute("/echo", Echo)])


starlette_app = _starlette()


def _switchroom(args: list[str], log: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "switchroom.cli", *args, "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def measure(redis_url: str, name: str, target: str, sockets: int, seconds: float) -> dict[str, Any]:
    """One echo run against ``target``: messages per second, latency, CPU per message."""
    url = f"{redis_url}?prefix=asgi3-{abs(hash(name)) % 10**8}"
    port = free_port()
    log = open(os.devnull, "w")
    server = _switchroom(["http", "--port", str(port), "--layer", url, "--no-access-log"], log)
    worker = _switchroom(["worker", target, "--layer", url], log)
    try:
        _wait_port(port)
        time.sleep(1.0)
        ready, go, done = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
        out = SPAWN.Queue()
        loader = run_process(echo_load, port, sockets, seconds, ready, go, done, out)
        wait_for(ready, loader, 60, "the sockets were open")
        cpu_before = cpu_seconds(server.pid) + cpu_seconds(worker.pid)
        go.set()
        result = out.get(timeout=seconds + 60)
        cpu = cpu_seconds(server.pid) + cpu_seconds(worker.pid) - cpu_before
        done.set()
        join(loader)
        result["cpu_ms_per_message"] = 1000 * cpu / max(1, result["messages"])
        return result
    finally:
        for proc in (worker, server):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi3", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="10 sockets for 3 s: proves it runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets, args.seconds = 10, 3.0
    results: dict[str, dict[str, Any]] = {}
    with RedisProcess() as redis:
        for name, target in TARGETS.items():
            results[name] = measure(redis.url, name, target, args.sockets, args.seconds)
    native = results["native App"]["mps"]
    for result in results.values():
        result["ratio_to_native"] = result["mps"] / native if native else 0.0
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"WebSocket echo, {args.sockets} sockets, {args.seconds:.0f} s each, one server and one worker")
    print(f"{'app':<20} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/msg':>11} {'vs native':>10} closed")
    for name, r in results.items():
        print(
            f"{name:<20} {r['mps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['cpu_ms_per_message']:>11.3f} {r['ratio_to_native']:>9.0%} {r['closed']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
