"""The load generators: each runs in its own (spawned) process and talks to a server on
127.0.0.1 only through its public protocol, so the same load drives every system.

Every system under test serves the same four endpoints: ``GET /hello`` (a short text
answer), ``/echo`` (a WebSocket that sends back each frame), ``/room/{room}`` (a WebSocket
that joins the room's group) and ``/idle`` (a WebSocket that is accepted and left alone).
"""

import asyncio
import multiprocessing
import re
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.measure import raise_nofile, summary_ms

SPAWN = multiprocessing.get_context("spawn")


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


def wait_for(event: Any, loader: multiprocessing.Process, timeout: float, what: str) -> None:
    """Wait until a load process sets ``event``; fail at once if it died instead."""
    deadline = time.monotonic() + timeout
    while not event.wait(0.2):
        if not loader.is_alive():
            raise RuntimeError(f"the load process failed (exit code {loader.exitcode}) before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting until {what}")


# ---------------------------------------------------------------------------- HTTP

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
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    done = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/hello"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return parse_wrk(done.stdout)


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 response whole (a Content-Length body or a chunked one); its head."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if length:
        await reader.readexactly(int(length.group(1)))
    elif re.search(rb"(?i)\r\ntransfer-encoding:\s*chunked", head):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        raise ConnectionError("response with neither Content-Length nor chunked encoding")
    return head


def http_load(port: int, connections: int, seconds: float, out: Any) -> None:
    """In its own process: ``connections`` keep-alive HTTP/1.1 loops on /hello for ``seconds``."""
    request = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def one(deadline: float, latencies: list[float], counts: dict[str, int]) -> None:
        while time.perf_counter() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                counts["errors"] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    writer.write(request)
                    head = await read_response(reader)
                    latencies.append(time.perf_counter() - start)
                    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                        counts["non_2xx"] += 1
                    if re.search(rb"(?i)\r\nconnection:\s*close", head):
                        break
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                counts["errors"] += 1
            finally:
                writer.close()

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        counts = {"errors": 0, "non_2xx": 0}
        start = time.perf_counter()
        await asyncio.gather(*(one(start + seconds, latencies, counts) for _ in range(connections)))
        return {
            "requests": len(latencies),
            "seconds": time.perf_counter() - start,
            **counts,
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
        "errors": sum(part["errors"] for part in parts),
        "non_2xx": sum(part["non_2xx"] for part in parts),
    }


class Schedule:
    """A fixed schedule of ``rate * seconds`` events, event ``n`` due at ``start + n / rate``:
    iterating waits until each is due (never for an earlier one to be answered, so a slow
    server shows as latency, not as a lower offered rate) and yields ``(n, due)``;
    ``max_lag`` is how late the load process itself was (it fell behind when large)."""

    def __init__(self, rate: float, seconds: float) -> None:
        self.rate = rate
        self.total = round(rate * seconds)
        self.start = 0.0
        self.max_lag = 0.0

    async def __aiter__(self) -> AsyncIterator[tuple[int, float]]:
        self.start = time.perf_counter()
        for n in range(self.total):
            at = self.start + n / self.rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.max_lag = max(self.max_lag, time.perf_counter() - at)
            yield n, at


def http_rate_load(port: int, connections: int, rate: float, seconds: float, out: Any) -> None:
    """In its own process: GET /hello at ``rate``/s on a fixed schedule for ``seconds``, over
    ``connections`` keep-alive connections.

    Request ``n`` is due at ``start + n / rate`` whether or not an earlier one has been
    answered: it waits for a free connection if none is, and its latency runs from when it
    was due, so a server that falls behind shows as latency (no coordinated omission).
    ``max_lag_ms`` is how late the schedule itself put a request in the queue: large
    values mean this load process, not the server, fell behind.
    """
    request = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    async def connection(due: asyncio.Queue, latencies: list[float], counts: dict[str, int]) -> None:
        reader = writer = None
        while True:
            scheduled = await due.get()
            if scheduled is None:
                break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                head = await read_response(reader)
                latencies.append(time.perf_counter() - scheduled)
                if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                    counts["non_2xx"] += 1
                if re.search(rb"(?i)\r\nconnection:\s*close", head):
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, ConnectionError):
                counts["errors"] += 1
                if writer is not None:
                    writer.close()
                writer = None
        if writer is not None:
            writer.close()

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        counts = {"errors": 0, "non_2xx": 0}
        due: asyncio.Queue = asyncio.Queue()
        workers = [asyncio.ensure_future(connection(due, latencies, counts)) for _ in range(connections)]
        schedule = Schedule(rate, seconds)
        async for _, at in schedule:
            due.put_nowait(at)
        for _ in workers:
            due.put_nowait(None)
        _, pending = await asyncio.wait(workers, timeout=seconds + 10)
        for worker in pending:
            worker.cancel()
        elapsed = time.perf_counter() - schedule.start
        total = schedule.total
        return {
            "offered": total,
            "requests": len(latencies),
            "unanswered": total - len(latencies) - counts["errors"],
            "seconds": elapsed,
            "max_lag_ms": schedule.max_lag * 1000,
            **counts,
            "latencies": latencies,
        }

    out.put(asyncio.run(main()))


def python_http_rate_load(port: int, connections: int, rate: float, seconds: float) -> dict[str, Any]:
    """``http_rate_load`` from two processes, each offering half the rate on half the connections."""
    out = SPAWN.Queue()
    halves = [connections // 2, connections - connections // 2]
    procs = [run_process(http_rate_load, port, n, rate / 2, seconds, out) for n in halves]
    try:
        parts = [out.get(timeout=seconds + 90) for _ in procs]
    finally:
        for proc in procs:
            join(proc)
    latencies = [x for part in parts for x in part["latencies"]]
    requests = sum(part["requests"] for part in parts)
    max_lag = max(part["max_lag_ms"] for part in parts)
    return {
        "offered_rps": rate,
        "requests": requests,
        "rps": requests / max(part["seconds"] for part in parts),
        **summary_ms(latencies),
        "errors": sum(part["errors"] for part in parts),
        "non_2xx": sum(part["non_2xx"] for part in parts),
        "unanswered": sum(part["unanswered"] for part in parts),
        "load_max_lag_ms": max_lag,
        "load_behind": max_lag > 50.0,
    }


# ---------------------------------------------------------------------------- WebSocket


def close_reason(exc: Exception) -> str:
    """How a socket ended, for the results: the exception and the close code if there was one."""
    received = getattr(exc, "rcvd", None)
    code = f" {received.code}" if received is not None else ""
    return f"{type(exc).__name__}{code}"


def echo_load(port: int, sockets: int, seconds: float, ready: Any, go: Any, done: Any, out: Any) -> None:
    """In its own process: ``sockets`` WebSockets, each sending and awaiting its echo in a loop."""
    from websockets.asyncio.client import connect

    reasons: list[str] = []

    async def one(ws: Any, deadline: float, latencies: list[float], counts: dict[str, int]) -> None:
        payload = "x" * 32
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await ws.send(payload)
                if await ws.recv() != payload:
                    counts["wrong"] += 1
                latencies.append(time.perf_counter() - start)
        except Exception as exc:  # a socket the server closed is a figure here, not a crash
            counts["closed"] += 1
            reasons.append(close_reason(exc))

    async def main() -> None:
        clients = [await connect(f"ws://127.0.0.1:{port}/echo") for _ in range(sockets)]
        counts = {"closed": 0, "wrong": 0}
        for ws in clients:
            await ws.send("warm-up")
            await ws.recv()
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.01)
        latencies: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(*(one(ws, start + seconds, latencies, counts) for ws in clients))
        elapsed = time.perf_counter() - start
        out.put(
            {
                "messages": len(latencies),
                "mps": len(latencies) / elapsed,
                **counts,
                "close_reasons": sorted(set(reasons)),
                **summary_ms(latencies),
            }
        )
        while not done.is_set():
            await asyncio.sleep(0.05)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())


def echo_rate_load(
    port: int, sockets: int, rate: float, seconds: float, ready: Any, go: Any, done: Any, out: Any
) -> None:
    """In its own process: ``sockets`` WebSockets on /echo, frames sent at ``rate``/s in all on
    a fixed schedule (round robin over the sockets), without waiting for the echoes.

    Each frame is ``"<n> <scheduled time.perf_counter()>"``, and its latency runs from when
    it was due; ``max_lag_ms`` is how late this process sent a frame (it fell behind when
    that is large).
    """
    from websockets.asyncio.client import connect

    reasons: list[str] = []

    async def main() -> None:
        clients = [await connect(f"ws://127.0.0.1:{port}/echo", max_queue=None) for _ in range(sockets)]
        for ws in clients:
            await ws.send("warm-up")
            await ws.recv()
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.01)
        latencies: list[float] = []
        counts = {"closed": 0, "wrong": 0, "send_failed": 0}

        async def drain(ws: Any) -> None:
            try:
                async for text in ws:
                    now = time.perf_counter()
                    try:
                        latencies.append(now - float(text.split()[1]))
                    except (IndexError, ValueError):
                        counts["wrong"] += 1
            except Exception as exc:  # closed by the server: counted
                counts["closed"] += 1
                reasons.append(close_reason(exc))

        readers = [asyncio.ensure_future(drain(ws)) for ws in clients]
        schedule = Schedule(rate, seconds)
        async for n, at in schedule:
            try:
                await clients[n % sockets].send(f"{n} {at!r}")
            except Exception:
                counts["send_failed"] += 1
        total, max_lag = schedule.total, schedule.max_lag
        settle = time.perf_counter()
        while len(latencies) < total - counts["send_failed"] and time.perf_counter() - settle < 10:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - schedule.start
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        out.put(
            {
                "offered_mps": rate,
                "sent": total - counts["send_failed"],
                "messages": len(latencies),
                "mps": len(latencies) / elapsed,
                **counts,
                "lost": total - counts["send_failed"] - len(latencies),
                "close_reasons": sorted(set(reasons)),
                "load_max_lag_ms": max_lag * 1000,
                "load_behind": max_lag > 50e-3,
                **summary_ms(latencies),
            }
        )
        while not done.is_set():
            await asyncio.sleep(0.05)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())


def broadcast_load(
    ports: list[int], per_server: int, room: str, opened: Any, counts: Any, stop: Any, out: Any
) -> None:
    """In its own process: ``per_server`` sockets on each server in ``room``; count every delivery.

    Each broadcast text is ``"<n> <time.monotonic() when it was due>"`` (the publisher's
    schedule, not when it went out); the monotonic clock is shared by the processes of one
    machine, so the difference is the delivery latency including any lag of the publisher.
    """
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
        closed = [0]
        reasons: list[str] = []

        async def drain(ws: Any) -> None:
            try:
                async for text in ws:
                    now = time.monotonic()
                    latencies.append(now - float(text.split()[1]))
                    last[0] = now
            except Exception as exc:  # closed by the server: counted, the others keep receiving
                closed[0] += 1
                reasons.append(close_reason(exc))

        tasks = [asyncio.ensure_future(drain(ws)) for ws in clients]
        while not stop.is_set():
            await asyncio.sleep(0.1)
            counts.value = len(latencies)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.put(
            {
                "received": len(latencies),
                "last_delivery": last[0],
                "closed": closed[0],
                "close_reasons": sorted(set(reasons)),
                **summary_ms(latencies),
            }
        )
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())


def idle_load(port: int, sockets: int, opened: Any, stop: Any) -> None:
    """In its own process: open ``sockets`` WebSockets on /idle and hold them until told to stop."""
    from websockets.asyncio.client import connect

    raise_nofile(sockets + 1000)

    async def main() -> None:
        clients: list[Any] = []
        while len(clients) < sockets:
            # Switchroom's handshakes wait in websocket.connect, which holds 100 messages by
            # default; more at once than that would be answered 503, as designed.
            batch = min(50, sockets - len(clients))
            clients += await asyncio.gather(*(connect(f"ws://127.0.0.1:{port}/idle") for _ in range(batch)))
        opened.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    asyncio.run(main())
