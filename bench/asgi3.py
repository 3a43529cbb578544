"""ASGI 3 apps in ``switchroom worker``, measured in one run on one private Redis:

- **echo**: WebSocket echo through an ASGI 3 app beside the native ``App``'s echo, one
  ``switchroom http`` and one worker each: the price of an app instance per socket and of
  socket affinity. ``app`` below is a bare ASGI echo (no framework, so the figure is the
  bridge's), ``starlette_app`` a Starlette ``WebSocketEndpoint`` echo; the native side is
  ``bench.apps:app``.
- **broadcast**: the Channels 4 chat project (``examples.channels4.chatsite``), one socket
  sending into a room of N, served by Switchroom (one server, one worker, Switchroom's
  Channels backend) and by Daphne 4 with channels_redis.

    python -m bench.asgi3 --quick
    python -m bench.asgi3 --sockets 50 --seconds 10 --room 200 --messages 100
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.loads import SPAWN, close_reason, echo_load, join, run_process, wait_for
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


def _switchroom(args: list[str], log: Any, env: dict[str, str] | None = None) -> subprocess.Popen:
    return _process([sys.executable, "-m", "switchroom.cli", *args, "--log-level", "warning"], log, env)


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


CHAT = "examples.channels4.chatsite.asgi:application"
CHAT_SYSTEMS = ("Switchroom + its Channels backend", "Daphne 4 + channels_redis")


def broadcast_load(port: int, sockets: int, messages: int, out: Any) -> None:
    """In its own process: ``sockets`` chat sockets in one room; the first sends
    ``messages`` lines; counts what each socket receives and when the last line arrived."""
    from websockets.asyncio.client import connect

    async def main() -> None:
        clients = [await connect(f"ws://127.0.0.1:{port}/ws/chat/bench/") for _ in range(sockets)]
        counts = [0] * sockets
        last = [0.0]
        reasons: list[str] = []

        async def read(index: int, ws: Any) -> None:
            try:
                while counts[index] < messages:
                    await asyncio.wait_for(ws.recv(), 10)
                    counts[index] += 1
                    last[0] = time.perf_counter()
            except Exception as exc:  # a lost line or a closed socket is a figure here
                reasons.append(close_reason(exc))

        readers = [asyncio.ensure_future(read(i, ws)) for i, ws in enumerate(clients)]
        start = time.perf_counter()
        for n in range(messages):
            await clients[0].send(json.dumps({"message": str(n)}))
        await asyncio.gather(*readers)
        delivered = sum(counts)
        elapsed = max(last[0] - start, 1e-9)
        out.put(
            {
                "delivered": delivered,
                "expected": sockets * messages,
                "deliveries_per_s": delivered / elapsed,
                "ended": sorted(set(reasons)),
            }
        )
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())


def broadcast(redis_url: str, system: str, sockets: int, messages: int) -> dict[str, Any]:
    """The chat project's broadcast on ``system``: deliveries per second and CPU per delivery."""
    url = f"{redis_url}?prefix=asgi3-chat"
    port = free_port()
    log = open(os.devnull, "w")
    env = {"CHAT_LAYER": url}
    if system == CHAT_SYSTEMS[0]:
        procs = [
            _switchroom(["http", "--port", str(port), "--layer", url, "--no-access-log"], log),
            _switchroom(["worker", CHAT, "--layer", url], log, env),
        ]
    else:
        env["CHAT_BACKEND"] = "channels_redis"
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), CHAT]
        procs = [_process(command, log, env)]
    try:
        _wait_port(port)
        time.sleep(1.0)
        out = SPAWN.Queue()
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        loader = run_process(broadcast_load, port, sockets, messages, out)
        result = out.get(timeout=120)
        result["cpu_ms_per_delivery"] = (
            1000 * (sum(cpu_seconds(p.pid) for p in procs) - cpu_before) / max(1, result["delivered"])
        )
        join(loader)
        return result
    finally:
        _stop(procs)
        log.close()


def _process(command: list[str], log: Any, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        _stop([server, worker])
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi3", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=50, help="echo: sockets")
    parser.add_argument("--seconds", type=float, default=10.0, help="echo: seconds per app")
    parser.add_argument("--room", type=int, default=200, help="broadcast: sockets in the room")
    parser.add_argument("--messages", type=int, default=100, help="broadcast: lines sent into it")
    parser.add_argument("--only", choices=["echo", "broadcast"], help="run one workload")
    parser.add_argument("--quick", action="store_true", help="a small load that proves it runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets, args.seconds, args.room, args.messages = 10, 3.0, 20, 30
    echo: dict[str, dict[str, Any]] = {}
    chat: dict[str, dict[str, Any]] = {}
    with RedisProcess() as redis:
        if args.only != "broadcast":
            for name, target in TARGETS.items():
                echo[name] = measure(redis.url, name, target, args.sockets, args.seconds)
        if args.only != "echo":
            for system in CHAT_SYSTEMS:
                chat[system] = broadcast(redis.url, system, args.room, args.messages)
    if echo:
        native = echo["native App"]["mps"]
        for result in echo.values():
            result["ratio_to_native"] = result["mps"] / native if native else 0.0
    if chat:
        daphne = chat[CHAT_SYSTEMS[1]]["deliveries_per_s"]
        for result in chat.values():
            result["ratio_to_daphne"] = result["deliveries_per_s"] / daphne if daphne else 0.0
    if args.json:
        print(json.dumps({"echo": echo, "broadcast": chat}, indent=2))
        return 0
    if echo:
        print(f"WebSocket echo, {args.sockets} sockets, {args.seconds:.0f} s each, one server and one worker")
        head = f"{'app':<20} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/msg':>11} {'vs native':>10}"
        print(head + " closed")
        for name, r in echo.items():
            print(
                f"{name:<20} {r['mps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                f"{r['cpu_ms_per_message']:>11.3f} {r['ratio_to_native']:>9.0%} {r['closed']}"
            )
    if chat:
        print(f"Channels 4 chat broadcast, {args.messages} lines into a room of {args.room}")
        head = f"{'system':<34} {'deliveries/s':>13} {'delivered':>12} {'CPU ms/delivery':>16}"
        print(head + f" {'vs Daphne':>10}")
        for name, r in chat.items():
            print(
                f"{name:<34} {r['deliveries_per_s']:>13.0f} {r['delivered']:>6}/{r['expected']:<5} "
                f"{r['cpu_ms_per_delivery']:>16.3f} {r['ratio_to_daphne']:>9.0%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
