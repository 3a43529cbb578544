"""Email ingest benchmark: messages/s that one ``switchroom email`` process takes from 20
concurrent SMTP clients (separate processes) into a real Redis with the layer's default
capacities (a 451 when the channel is full is counted, and the client goes on), and the time from the end
of DATA to the message being readable on the layer, for small and 1 MB messages; and the
server's CPU per small message beside a no-op aiosmtpd server (its ``Sink`` handler, which
accepts and forgets) under the same load in the same run.

    python -m bench.email_ingest                 # 10 s per workload, 3 runs of the small ones
    python -m bench.email_ingest --seconds 5 --clients 20 --runs 5

Latency: each client notes the moment it has written the final ``.`` of DATA; a reader in
this process notes the moment it got the ``email.receive`` with that Message-ID (whole:
the raw message of every 1 MB one is checked, and one is parsed as a worker would). Every
message a client saw accepted (250) must be on the layer, and nothing else.
"""

import argparse
import asyncio
import base64
import multiprocessing
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from email.utils import formatdate
from pathlib import Path

from bench.measure import cpu_seconds
from switchroom.layers import get_layer
from switchroom.servers.email import received
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


class TimedSMTP(smtplib.SMTP):
    """smtplib's client, noting when the end of DATA has been written."""

    data_end = 0.0

    def send(self, s: bytes | str) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.data_end = time.time()


def template(size: int) -> bytes:
    """A message with ``{date}`` and ``{id}`` to fill in, so that no two messages are alike."""
    head = (
        b"From: Load {id} <load.{id}@bench.example>\r\nTo: bench@example.com\r\n"
        b"Subject: bench {id}\r\nDate: {date}\r\nMessage-ID: <{id}@bench.example>\r\n"
    )
    if not size:
        return head + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"hello " * 20 + b"\r\n"
    data = base64.encodebytes(os.urandom(size)).replace(b"\n", b"\r\n")
    return (
        head + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\n" + b"hello " * 20 + b"\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="blob.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + data
        + b"--b--\r\n"
    )


def client(port: int, size: int, seconds: float, index: int, results: "multiprocessing.Queue") -> None:
    """In its own process: send messages back to back on one connection for ``seconds``."""
    text = template(size)
    accepted: list[tuple[str, float]] = []
    refused = 0
    with TimedSMTP("127.0.0.1", port, timeout=120) as smtp:
        started = time.time()
        deadline = started + seconds
        while time.time() < deadline:
            number = len(accepted) + refused
            message_id = f"c{index}.{number}"
            raw = text.replace(b"{id}", message_id.encode()).replace(b"{date}", formatdate().encode())
            try:
                smtp.sendmail("load@bench.example", ["bench@example.com"], raw)
            except smtplib.SMTPDataError:
                refused += 1
                continue
            accepted.append((f"<{message_id}@bench.example>", smtp.data_end))
    results.put((accepted, refused, started, time.time()))


async def drain(url: str, stop: asyncio.Event, seen: dict[str, float], size: int) -> int:
    """Read ``email.receive`` as it comes; check every raw message is whole, and parse one
    big message at the end as a worker would (parsing them all here would slow the reading
    this process times)."""
    layer = get_layer(url)
    wrong = 0
    sample = None
    try:
        while not stop.is_set():
            batch = await layer.receive_many(["email.receive"], 100, timeout=0.2)
            now = time.time()
            for _, message in batch:
                seen[message["message_id"]] = now
                wrong += len(message["raw"]) != message["size"]
                sample = sample or (message if size else None)
        if sample is not None:
            wrong += received(sample)["attachments"][0]["size"] != size
    finally:
        await layer.close()
    return wrong


def wait_for_log(path: str, text: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in Path(path).read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the email server did not start:\n" + Path(path).read_text())
        time.sleep(0.05)


async def load(port: int, size: int, seconds: float, clients: int) -> tuple[list, float]:
    """Run ``clients`` client processes against ``port``; their outcomes, and the time from the
    first client's connection to the last one's end (process start-up is not load)."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=client, args=(port, size, seconds, i, results)) for i in range(clients)]
    for proc in procs:
        proc.start()
    outcomes = []
    while len(outcomes) < clients:
        outcomes.append(await asyncio.to_thread(results.get, True, seconds + 120))
    elapsed = max(o[3] for o in outcomes) - min(o[2] for o in outcomes)
    for proc in procs:
        proc.join(30)
    return outcomes, elapsed


async def run_sink(size: int, seconds: float, clients: int) -> dict:
    """The reference: aiosmtpd's own server with its Sink handler (takes mail, keeps none)."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                f"127.0.0.1:{port}",
                "-c",
                "aiosmtpd.handlers.Sink",
            ],
            stderr=log,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    smtplib.SMTP("127.0.0.1", port, timeout=5).quit()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "the Sink server did not start:\n" + Path(log.name).read_text()
                        ) from None
                    time.sleep(0.05)
            before = cpu_seconds(server.pid)
            outcomes, elapsed = await load(port, size, seconds, clients)
            cpu = cpu_seconds(server.pid) - before
        finally:
            server.terminate()
            server.wait(30)
    count = sum(len(o[0]) for o in outcomes)
    return {"count": count, "rate": count / elapsed, "cpu": cpu / count * 1000}


async def run(size: int, seconds: float, clients: int) -> dict:
    """One workload against a fresh Redis and a fresh server; returns its figures."""
    with RedisProcess() as redis, tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        url = f"{redis.url}?prefix=mailbench"
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchroom.cli",
                "email",
                "--port",
                str(port),
                "--layer",
                url,
                "--domain",
                "example.com",
                "--max-connections-per-ip",
                str(clients + 5),
            ],
            cwd=ROOT,
            stderr=log,
        )
        try:
            wait_for_log(log.name, "listening for SMTP", server)
            stop, seen = asyncio.Event(), {}
            reader = asyncio.ensure_future(drain(url, stop, seen, size))
            server_cpu = cpu_seconds(server.pid)
            outcomes, elapsed = await load(port, size, seconds, clients)
            server_cpu = cpu_seconds(server.pid) - server_cpu
            deadline = time.monotonic() + 30
            accepted = dict(item for o in outcomes for item in o[0])
            while set(accepted) - set(seen) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stop.set()
            wrong = await reader
        finally:
            server.terminate()
            server.wait(30)
        logged = Path(log.name).read_text().count(" 250 ")
    missing = set(accepted) - set(seen)
    extra = set(seen) - set(accepted)
    assert not missing and not extra and not wrong, (len(missing), len(extra), wrong)
    assert logged == len(accepted), f"{logged} log lines for {len(accepted)} accepted messages"
    latencies = sorted(seen[mid] - end for mid, end in accepted.items()) or [float("nan")]
    return {
        "count": len(accepted),
        "refused": sum(o[1] for o in outcomes),
        "rate": len(accepted) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "cpu": server_cpu / len(accepted) * 1000,
    }


def spread(values: list[float]) -> str:
    """The median of ``values`` with their range."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per workload")
    parser.add_argument("--clients", type=int, default=20, help="concurrent SMTP clients (one process each)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the small-message comparison")
    args = parser.parse_args()
    print(f"{args.clients} SMTP clients (processes) -> one switchroom email process -> Redis")
    print(f"{os.cpu_count()} CPUs shared by all of them")
    print("latency: end of DATA written by the client -> email.receive read from the layer")
    print("server CPU: CPU time of the server process per accepted message")
    print(
        f"{'message':<8} {'accepted':>9} {'451':>6} {'msg/s':>8} {'MB/s':>7} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server CPU ms':>14}"
    )
    ours, sink, ratios = [], [], []
    for _ in range(args.runs):
        reference = asyncio.run(run_sink(0, args.seconds, args.clients))
        r = asyncio.run(run(0, args.seconds, args.clients))
        ours.append(r["cpu"])
        sink.append(reference["cpu"])
        ratios.append(r["cpu"] / reference["cpu"])
        print(
            f"{'small':<8} {r['count']:>9} {r['refused']:>6} {r['rate']:>8,.0f} "
            f"{r['rate'] * 400 / 1e6:>7.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['cpu']:>14.2f}"
        )
        print(
            f"{'  Sink':<8} {reference['count']:>9} {'':>6} {reference['rate']:>8,.0f} "
            f"{'':>7} {'':>8} {'':>8} {reference['cpu']:>14.2f}"
        )
    r = asyncio.run(run(1_000_000, args.seconds, args.clients))
    print(
        f"{'1 MB':<8} {r['count']:>9} {r['refused']:>6} {r['rate']:>8,.0f} {r['rate']:>7.1f} "
        f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['cpu']:>14.2f}"
    )
    print(f"small messages, server CPU ms per message, median (range) of {args.runs} runs:")
    print(f"  switchroom email {spread(ours)}; aiosmtpd Sink {spread(sink)}; ratio {spread(ratios)}")


if __name__ == "__main__":
    main()
