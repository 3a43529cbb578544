"""ASGI 3 apps in ``switchroom worker``, measured side by side in one run:

- ``asgi3_echo``: WebSocket echo through an ASGI 3 app beside the native ``App``'s echo,
  one ``switchroom http`` and one worker each, on one private Redis: the price of an app
  instance per socket and of socket affinity. ``app`` below is a bare ASGI echo (no
  framework, so the figure is the bridge's), ``starlette_app`` a Starlette
  ``WebSocketEndpoint`` echo; the native side is ``bench.apps:app``. Each run measures the
  three in turn (the order rotating from run to run), so their ratios come from one run.
- ``asgi3_chat``: the Channels 4 chat project (``examples.channels4.chatsite``), one socket
  sending lines into a room, served by Switchroom (one server and one worker, Switchroom's
  Channels backend) and by Daphne 4 with channels_redis 4: one process from the ``channels4``
  system's virtualenv, and two sharing one listening socket from ``channels4x2``'s (hiredis),
  as many processes as Switchroom's.

Both are registered with the suite, so ``python -m bench --record`` keeps their figures
(3 runs each) and docs/worker.md shows them; this module's own command runs them once:

    python -m bench.asgi3 --quick
    python -m bench.asgi3 --sockets 50 --seconds 10 --room 200 --messages 100 --runs 3
"""

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.loads import SPAWN, close_reason, echo_load, join, run_process, wait_for
from bench.measure import tree_cpu_seconds
from bench.registry import Options, register
from bench.report import table
from bench.systems import SYSTEMS, Launcher
from bench.venvs import ensure_venv
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]

NATIVE = "native App"
ECHO_APPS = {
    NATIVE: "bench.apps:app",
    "ASGI 3 (bare)": "bench.asgi3:app",
    "ASGI 3 (Starlette)": "bench.asgi3:starlette_app",
}
# As many sockets as the suite's own echo workload, so the native rows compare.
ECHO_SOCKETS = 50
# The chat's room size and lines sent into it: quick mode, and full runs.
CHAT_QUICK = (50, 50)
CHAT_FULL = (200, 100)
CHAT = "examples.channels4.chatsite.asgi:application"
CHAT_SYSTEMS = ("switchroom", "channels4", "channels4x2")
# The Daphne processes each Channels 4 system runs the chat in.
DAPHNES = {"channels4": 1, "channels4x2": 2}
READY_TIMEOUT = 60.0


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


def wait_socket(port: int, path: str, launcher: Launcher, timeout: float = READY_TIMEOUT) -> None:
    """Wait until a WebSocket on ``path`` is accepted: the server and the app behind it are up."""
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    while True:
        launcher.check()
        try:
            with connect(f"ws://127.0.0.1:{port}{path}", open_timeout=5):
                return
        except Exception as exc:  # refused, answered 503, or not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"no WebSocket accepted on {port}{path} in {timeout} s: {exc}") from exc
        time.sleep(0.2)


def _switchroom(launcher: Launcher, python: str, kind: str, args: list[str]) -> None:
    launcher.spawn(kind, [python, "-m", "switchroom.cli", *args, "--log-level", "warning"])


def _server(launcher: Launcher, python: str, port: int, layer: str) -> None:
    args = ["http", "--port", str(port), "--layer", layer, "--no-access-log"]
    _switchroom(launcher, python, "server", args)


@contextlib.contextmanager
def _launcher(env: dict[str, str] | None = None) -> Iterator[Launcher]:
    launcher = Launcher({**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, ROOT)
    try:
        yield launcher
    finally:
        launcher.stop()


# ---------------------------------------------------------------------------- echo


def _echo_once(port: int, pids: list[int], sockets: int, seconds: float) -> dict[str, Any]:
    """One closed-loop echo load: messages per second, latency, server + worker CPU per message."""
    ready, go, done = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    out = SPAWN.Queue()
    loader = run_process(echo_load, port, sockets, seconds, ready, go, done, out)
    try:
        wait_for(ready, loader, 60, "the sockets were open")
        cpu_before = sum(tree_cpu_seconds(pid) for pid in pids)
        go.set()
        result = out.get(timeout=seconds + 60)
        cpu = sum(tree_cpu_seconds(pid) for pid in pids) - cpu_before
    finally:
        done.set()
        join(loader)
    result["cpu_ms_per_message"] = 1000 * cpu / max(1, result["messages"])
    return result


def echo_runs(python: str, sockets: int, seconds: float, runs: int) -> list[dict[str, Any]]:
    """``runs`` rounds of echo through each of ``ECHO_APPS`` (each behind its own server and
    worker, all started once); every round's figures by app, with its ratio to the native
    echo of that round."""
    with RedisProcess() as redis, _launcher() as launcher:
        ports: dict[str, int] = {}
        pids: dict[str, list[int]] = {}
        for n, (name, target) in enumerate(ECHO_APPS.items()):
            url = f"{redis.url}?prefix=asgi3-echo-{n}"
            ports[name] = free_port()
            _server(launcher, python, ports[name], url)
            _switchroom(launcher, python, "worker", ["worker", target, "--layer", url])
            pids[name] = [proc.pid for _, proc in launcher.started[-2:]]
        for port in ports.values():
            wait_socket(port, "/echo", launcher)
        rounds = []
        names = list(ECHO_APPS)
        for index in range(runs):
            order = names[index % len(names) :] + names[: index % len(names)]
            figures = {name: _echo_once(ports[name], pids[name], sockets, seconds) for name in order}
            launcher.check()
            native = figures[NATIVE]["mps"]
            for result in figures.values():
                result["ratio_to_native"] = result["mps"] / native if native else None
            rounds.append({name: figures[name] for name in names})
    return rounds


# ---------------------------------------------------------------------------- chat


def chat_load(port: int, room: str, sockets: int, messages: int, out: Any) -> None:
    """In its own process: ``sockets`` chat sockets in one room; the first sends ``messages``
    lines; counts what each socket receives and when the last line arrived."""
    from websockets.asyncio.client import connect

    async def main() -> None:
        clients = [await connect(f"ws://127.0.0.1:{port}/ws/chat/{room}/") for _ in range(sockets)]
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
        out.put(
            {
                "sockets": sockets,
                "lines": messages,
                "delivered": delivered,
                "expected": sockets * messages,
                "lost": sockets * messages - delivered,
                "deliveries_per_s": delivered / max(last[0] - start, 1e-9),
                "sockets_failed": len(reasons),
                "ended": sorted(set(reasons)),
            }
        )
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())


def _chat_once(port: int, pids: list[int], room: str, sockets: int, messages: int) -> dict[str, Any]:
    out = SPAWN.Queue()
    cpu_before = sum(tree_cpu_seconds(pid) for pid in pids)
    loader = run_process(chat_load, port, room, sockets, messages, out)
    try:
        result = out.get(timeout=120 + messages)
    finally:
        join(loader)
    cpu = sum(tree_cpu_seconds(pid) for pid in pids) - cpu_before
    result["cpu_ms_per_delivery"] = 1000 * cpu / max(1, result["delivered"])
    return result


def _daphnes(launcher: Launcher, python: str, port: int, count: int) -> None:
    """``count`` Daphne processes serving the chat on ``port``; more than one share a
    listening socket (``--fd``), as the suite's ``channels4x2`` system runs."""
    if count == 1:
        launcher.spawn(
            "server", [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", CHAT]
        )
        return
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
        fd = listener.fileno()
        for _ in range(count):
            args = [python, "-m", "daphne", "--fd", str(fd), "-v", "0", CHAT]
            launcher.spawn("server", args, pass_fds=(fd,))


def chat_runs(system: str, python: str, sockets: int, messages: int, runs: int) -> list[dict[str, Any]]:
    """The chat project on ``system`` (``switchroom``: one server and one worker with
    Switchroom's Channels backend; ``channels4`` and ``channels4x2``: one or two Daphne
    processes with channels_redis), run by ``python``; ``runs`` broadcasts, each in a fresh room."""
    if system not in CHAT_SYSTEMS:
        raise ValueError(f"the chat runs on {', '.join(CHAT_SYSTEMS)}, not {system!r}")
    with RedisProcess() as redis:
        url = f"{redis.url}?prefix=asgi3-chat"
        env = {"CHAT_LAYER": url}
        if system != "switchroom":
            env["CHAT_BACKEND"] = "channels_redis"
        with _launcher(env) as launcher:
            port = free_port()
            if system == "switchroom":
                _server(launcher, python, port, url)
                _switchroom(launcher, python, "worker", ["worker", CHAT, "--layer", url])
            else:
                _daphnes(launcher, python, port, DAPHNES[system])
            wait_socket(port, "/ws/chat/ready/", launcher)
            pids = list(launcher.pids().values())
            results = []
            for index in range(runs):
                results.append(_chat_once(port, pids, f"bench{index}", sockets, messages))
                launcher.check()
            return results


# ---------------------------------------------------------------------------- the suite

WHY_NOT = "measures ASGI 3 apps in `switchroom worker`"


@register("asgi3_echo", systems=("switchroom",), why_not=WHY_NOT)
def asgi3_echo(system: Any, options: Options) -> dict[str, Any]:
    """WebSocket echo through a bare ASGI 3 app and a Starlette endpoint beside the native
    ``App``'s, ``runs`` rounds."""
    runs = echo_runs(system.python, ECHO_SOCKETS, options.seconds, options.runs)
    return {"sockets": ECHO_SOCKETS, "apps": list(ECHO_APPS), "runs": runs}


@register("asgi3_chat", systems=CHAT_SYSTEMS, why_not="the Channels 4 chat runs on Switchroom and Daphne")
def asgi3_chat(system: Any, options: Options) -> dict[str, Any]:
    """The Channels 4 chat's broadcast on Switchroom or on Daphne 4 + channels_redis."""
    sockets, lines = CHAT_QUICK if options.quick else CHAT_FULL
    runs = chat_runs(system.name, system.python, sockets, lines, options.runs)
    return {"sockets": sockets, "lines": lines, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi3", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=ECHO_SOCKETS, help="echo: sockets")
    parser.add_argument("--seconds", type=float, default=10.0, help="echo: seconds per app")
    parser.add_argument("--room", type=int, default=CHAT_FULL[0], help="chat: sockets in the room")
    parser.add_argument("--messages", type=int, default=CHAT_FULL[1], help="chat: lines sent into it")
    parser.add_argument("--runs", type=int, default=1, help="runs of each figure (the table shows medians)")
    parser.add_argument("--only", choices=["echo", "chat"], help="run one of the two")
    parser.add_argument("--quick", action="store_true", help="a small load that proves it runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets, args.seconds = 10, 3.0
        args.room, args.messages = CHAT_QUICK
    workloads: dict[str, dict[str, Any]] = {}
    if args.only != "chat":
        runs = echo_runs(sys.executable, args.sockets, args.seconds, args.runs)
        echo = {"sockets": args.sockets, "apps": list(ECHO_APPS), "runs": runs}
        workloads["asgi3_echo"] = {"switchroom": echo}
    if args.only != "echo":
        pythons = {
            "switchroom": sys.executable,
            "channels4": str(ensure_venv("channels4")),
            "channels4x2": str(ensure_venv("channels4-tuned")),
        }
        workloads["asgi3_chat"] = {
            name: {
                "sockets": args.room,
                "lines": args.messages,
                "runs": chat_runs(name, python, args.room, args.messages, args.runs),
            }
            for name, python in pythons.items()
        }
    labels = {name: SYSTEMS[name].label for name in CHAT_SYSTEMS}
    results = {"labels": labels, "workloads": workloads}
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print("\n\n".join(filter(None, (table(key, results) for key in ("asgi3_echo", "asgi3_chat")))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
