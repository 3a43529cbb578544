"""Email ingest: messages/s from 20 concurrent SMTP clients into one ``switchroom email``
process on a private Redis, and the time from the client starting to send a message to it
being readable on the layer (p50/p99; an upper bound of the DATA-end-to-layer time), for
small and 1 MB messages. Every accepted message is checked to be on the layer.

    python bench/smtp_ingest.py --seconds 10
"""

import argparse
import asyncio
import multiprocessing
import os
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from switchroom.layers import get_layer
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 20


def client(port: int, size: int, seconds: float, sent, index: int) -> None:
    """In its own process: send messages back to back, stamping each with its send time."""
    deadline = time.time() + seconds
    count = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        while time.time() < deadline:
            message = EmailMessage()
            message["From"] = f"load{index}@bench.example"
            message["To"] = "bench@example.com"
            message["Subject"] = "bench"
            message.set_content("hello " * 20)
            if size:
                message.add_attachment(
                    os.urandom(size), maintype="application", subtype="octet-stream", filename="blob.bin"
                )
            message["X-Sent"] = repr(time.time())
            smtp.send_message(message)
            count += 1
    with sent.get_lock():
        sent.value += count


async def drain(url: str, stop: asyncio.Event, latencies: list[float]) -> int:
    """Read email.receive as fast as it comes; latency = now - the moment DATA ended."""
    layer = get_layer(url)
    got = 0
    try:
        while not stop.is_set():
            batch = await layer.receive_many(["email.receive"], 100, timeout=0.2)
            now = time.time()
            for _, message in batch:
                got += 1
                for name, value in message["headers"]:
                    if name == "X-Sent":
                        latencies.append(now - float(value))
    finally:
        await layer.close()
    return got


async def run(size: int, seconds: float) -> tuple[int, float, list[float]]:
    with RedisProcess() as redis:
        url = f"{redis.url}?prefix=mailbench&capacity=100000"
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchroom.shared.cli",
                "email",
                "--port",
                str(port),
                "--layer",
                url,
                "--domain",
                "example.com",
                "--log-level",
                "warning",
                "--max-connections-per-ip",
                "100",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            await asyncio.sleep(1.5)
            stop, latencies = asyncio.Event(), []
            reader = asyncio.ensure_future(drain(url, stop, latencies))
            ctx = multiprocessing.get_context("spawn")
            sent = ctx.Value("q", 0)
            procs = [ctx.Process(target=client, args=(port, size, seconds, sent, i)) for i in range(CLIENTS)]
            start = time.perf_counter()
            for proc in procs:
                proc.start()
            while any(proc.is_alive() for proc in procs):
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - start
            await asyncio.sleep(1)
            stop.set()
            received = await reader
        finally:
            server.terminate()
            server.wait(20)
    assert received == sent.value, f"{sent.value} accepted but {received} on the layer"
    return received, elapsed, sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print("20 SMTP clients, one server process; latency = from send to readable on the layer")
    print(f"{'message':<10} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for label, size in (("small", 0), ("1 MB", 1_000_000)):
        count, elapsed, latencies = asyncio.run(run(size, args.seconds))
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        print(f"{label:<10} {count / elapsed:>8,.0f} {p50:>8.1f} {p99:>8.1f}")


if __name__ == "__main__":
    main()
