"""Where an idle WebSocket's memory goes in one ``switchroom http`` process.

Starts a private Redis, a ``switchroom worker`` with ``bench.apps`` and a server process
that traces its allocations (``tracemalloc``). The server is snapshotted after 20 sockets
were opened and closed (the code paths loaded) and again with N idle sockets open; the
difference, per socket, is printed by source line and by file, with the server's RSS growth
and the size of one open socket's attribute dict (and its TCP connection's). Tracing slows
the server and adds to its RSS, so the RSS figure here is not the suite's (``--workloads
memory``); the allocations are.

    python -m bench.socket_memory --sockets 2000
"""

import argparse
import asyncio
import gc
import os
import signal
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from bench.loads import raise_nofile
from bench.measure import rss_kb
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


def serve(out: str, argv: list[str]) -> int:
    """In the server process: trace, and write a snapshot and a socket's sizes on SIGUSR1."""
    tracemalloc.start()
    taken = [0]

    def dump(*_: Any) -> None:
        from switchroom.servers.http_ws.websocket import LayerSocket

        gc.collect()
        tracemalloc.take_snapshot().dump(f"{out}/snapshot{taken[0]}")
        sockets = [o for o in gc.get_objects() if isinstance(o, LayerSocket)]
        lines = [f"open sockets: {len(sockets)}"]
        if sockets:
            sock = sockets[-1]
            for name, obj in (("socket", sock), ("its transport", sock.transport)):
                own = vars(obj)
                lines.append(f"{name}: {len(own)} attributes, dict of {sys.getsizeof(own)} bytes")
        Path(f"{out}/sizes{taken[0]}").write_text("\n".join(lines))
        taken[0] += 1

    signal.signal(signal.SIGUSR1, dump)
    from switchroom.servers.http_ws.cli import main

    return main(argv)


async def open_sockets(port: int, count: int) -> list[Any]:
    from websockets.asyncio.client import connect

    clients: list[Any] = []
    while len(clients) < count:
        batch = min(50, count - len(clients))  # within the connect channel's capacity
        clients += await asyncio.gather(*(connect(f"ws://127.0.0.1:{port}/idle") for _ in range(batch)))
    return clients


async def snapshot(server: subprocess.Popen, out: str, index: int) -> None:
    server.send_signal(signal.SIGUSR1)
    for _ in range(600):
        if Path(f"{out}/sizes{index}").exists():
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the server wrote no snapshot")


async def measure(count: int, top: int) -> None:
    raise_nofile(count + 1000)
    with RedisProcess() as redis, tempfile.TemporaryDirectory(prefix="socket-memory-") as out:
        port = free_port()
        common = ["--layer", redis.url, "--log-level", "warning"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "switchroom.cli"]
        worker = subprocess.Popen([*cli, "worker", "bench.apps:app", *common], env=env)
        server_args = ["--port", str(port), "--no-access-log", "--max-connections", str(count + 100)]
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.socket_memory", "--serve", out, "--", *server_args, *common],
            env=env,
        )
        try:
            for _ in range(200):
                try:
                    warm = await open_sockets(port, 20)
                    break
                except OSError:
                    await asyncio.sleep(0.3)
            else:
                raise RuntimeError("the server did not start")
            await asyncio.gather(*(ws.close() for ws in warm))
            await asyncio.sleep(1.5)
            before = rss_kb(server.pid)
            await snapshot(server, out, 0)
            clients = await open_sockets(port, count)
            await asyncio.sleep(1.5)
            after = rss_kb(server.pid)
            await snapshot(server, out, 1)
            await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
        finally:
            for process in (server, worker):
                process.terminate()
                process.wait()
        first = tracemalloc.Snapshot.load(f"{out}/snapshot0")
        second = tracemalloc.Snapshot.load(f"{out}/snapshot1")
        print(Path(f"{out}/sizes1").read_text())
    print(f"server RSS (traced): {(after - before) / count:.1f} KB per socket")
    for group in ("lineno", "filename"):
        stats = second.compare_to(first, group)
        total = sum(stat.size_diff for stat in stats)
        print(f"\nallocations by {group}: {total / count:,.0f} bytes per socket")
        for stat in stats[:top]:
            where = str(stat.traceback).replace(str(ROOT) + "/", "").split("site-packages/")[-1]
            print(f"{stat.size_diff / count:8.1f} B {stat.count_diff / count:5.2f} objects  {where}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        sys.exit(serve(sys.argv[2], sys.argv[4:]))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=2000, help="idle sockets to open")
    parser.add_argument("--top", type=int, default=25, help="lines and files to print")
    options = parser.parse_args()
    asyncio.run(measure(options.sockets, options.top))
