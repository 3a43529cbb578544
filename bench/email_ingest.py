"""Email ingest benchmark: messages/s that one ``switchroom email`` process takes from 20
concurrent SMTP clients (separate processes) into a real Redis with the layer's default
capacities (a 451 when the channel is full is counted, and the client goes on), and the time from the end
of DATA to the message being readable on the layer, for small and 1 MB messages; and the
server's CPU per small message beside a no-op aiosmtpd server (its ``Sink`` handler, which
accepts and forgets) under the same load in the same run.

Two load generators take turns on the small messages: the suite's own smtplib clients, and
Postfix's ``smtp-source`` when it is found (``bench.smtp_source`` says where it is looked
for, and fetches it); each figure is labelled with the one that produced it.

    python -m bench.email_ingest                 # 10 s per workload, 3 runs of the small ones
    python -m bench.email_ingest --seconds 5 --clients 20 --runs 5
    python -m bench.email_ingest --smtp-source /path/to/smtp-source

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
from bench.smtp_source import SmtpSource, find
from switchroom.layers import get_layer
from switchroom.servers.email import received
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
SUITE = "the suite's smtplib clients"
# smtp-source's body, in bytes: with its headers about as large as the suite's small message.
SOURCE_BODY = 200
# smtp-source sends a count, not for a time: this many messages per second of ``--seconds``.
SOURCE_RATE = 300


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


async def drain(url: str, stop: asyncio.Event, seen: dict[str, float], size: int, count: list[int]) -> int:
    """Read ``email.receive`` as it comes, counting every message in ``count[0]``; check
    every raw message is whole, and parse one big message at the end as a worker would
    (parsing them all here would slow the reading this process times)."""
    layer = get_layer(url)
    wrong = 0
    sample = None
    try:
        while not stop.is_set():
            batch = await layer.receive_many(["email.receive"], 100, timeout=0.2)
            now = time.time()
            count[0] += len(batch)
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


async def source_load(source: SmtpSource, port: int, seconds: float, clients: int) -> tuple[int, float]:
    """Run ``smtp-source`` against ``port``: the messages it sent (every one answered 250,
    or it fails) and how long it took."""
    messages = max(200, int(seconds * SOURCE_RATE))
    started = time.monotonic()
    done = await asyncio.to_thread(
        subprocess.run,
        source.command(port, clients, messages, SOURCE_BODY),
        env=source.env,
        capture_output=True,
        text=True,
        timeout=seconds * 20 + 120,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return messages, elapsed


async def run_sink(size: int, seconds: float, clients: int, source: SmtpSource | None = None) -> dict:
    """The reference: aiosmtpd's own server with its Sink handler (takes mail, keeps none),
    loaded by the suite's clients or by ``source``."""
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
            if source is None:
                outcomes, elapsed = await load(port, size, seconds, clients)
                count = sum(len(o[0]) for o in outcomes)
            else:
                count, elapsed = await source_load(source, port, seconds, clients)
            cpu = cpu_seconds(server.pid) - before
        finally:
            server.terminate()
            server.wait(30)
    return {
        "count": count,
        "rate": count / elapsed,
        "cpu": cpu / count * 1000,
        "load": source.label if source else SUITE,
    }


async def run(size: int, seconds: float, clients: int, source: SmtpSource | None = None) -> dict:
    """One workload against a fresh Redis and a fresh server, loaded by the suite's clients
    or by ``source`` (small messages only); returns its figures."""
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
            stop, seen, count = asyncio.Event(), {}, [0]
            reader = asyncio.ensure_future(drain(url, stop, seen, size, count))
            server_cpu = cpu_seconds(server.pid)
            if source is not None:
                sent, elapsed = await source_load(source, port, seconds, clients)
                server_cpu = cpu_seconds(server.pid) - server_cpu
                deadline = time.monotonic() + 30
                while count[0] < sent and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                stop.set()
                wrong = await reader
            else:
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
    if source is not None:
        # smtp-source's Message-IDs are not all distinct: the counts must agree instead.
        assert count[0] == sent == logged and not wrong, (count[0], sent, logged, wrong)
        return {
            "count": sent,
            "rate": sent / elapsed,
            "cpu": server_cpu / sent * 1000,
            "load": source.label,
        }
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
        "load": SUITE,
    }


def spread(values: list[float]) -> str:
    """The median of ``values`` with their range."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def pairs(seconds: float, clients: int, runs: int, source: SmtpSource | None = None) -> tuple[list, list]:
    """``runs`` turns of the Sink then Switchroom on small messages, both loaded by the
    suite's clients or both by ``source``: (Switchroom's runs, the Sink's runs)."""
    ours, sink = [], []
    for _ in range(runs):
        sink.append(asyncio.run(run_sink(0, seconds, clients, source)))
        ours.append(asyncio.run(run(0, seconds, clients, source)))
    return ours, sink


def _row(name: str, r: dict) -> str:
    def cell(key: str, fmt: str) -> str:
        return format(r[key], fmt) if key in r else ""

    return (
        f"{name:<8} {r['count']:>9} {cell('refused', ''):>6} {r['rate']:>8,.0f} "
        f"{cell('p50', '.1f'):>8} {cell('p99', '.1f'):>8} {r['cpu']:>14.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per workload")
    parser.add_argument("--clients", type=int, default=20, help="concurrent SMTP clients (one process each)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the small-message comparison")
    parser.add_argument(
        "--smtp-source",
        help="path of Postfix's smtp-source (default: SWITCHROOM_SMTP_SOURCE, PATH, bench/.tools/postfix)",
    )
    args = parser.parse_args()
    source, where = find(args.smtp_source)
    print(f"{args.clients} SMTP clients -> one switchroom email process -> Redis")
    print(f"{os.cpu_count()} CPUs shared by all of them")
    print(f"load generators: {SUITE} (one process each)", end="")
    print(f"; {source.label} at {where}" if source else f"; smtp-source skipped: {where}")
    print("latency: end of DATA written by the client -> email.receive read from the layer (suite only)")
    print("server CPU: CPU time of the server process per accepted message")
    print(
        f"{'message':<8} {'accepted':>9} {'451':>6} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server CPU ms':>14}"
    )
    generators = [(SUITE, None)] + ([(source.label, source)] if source else [])
    summary = []
    for label, generator in generators:
        print(f"small messages, {label}:")
        ours, sink = pairs(args.seconds, args.clients, args.runs, generator)
        for r, reference in zip(ours, sink, strict=True):
            print(_row("small", r))
            print(_row("  Sink", reference))
        ratios = [r["cpu"] / reference["cpu"] for r, reference in zip(ours, sink, strict=True)]
        summary.append(
            f"  {label}: switchroom email {spread([r['cpu'] for r in ours])}; "
            f"aiosmtpd Sink {spread([r['cpu'] for r in sink])}; ratio {spread(ratios)}"
        )
    r = asyncio.run(run(1_000_000, args.seconds, args.clients))
    print(f"1 MB messages, {SUITE}:")
    print(_row("1 MB", r))
    print(f"small messages, server CPU ms per message, median (range) of {args.runs} runs:")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
