"""What one ``switchroom http`` process costs per socket and how fast it fans out a group.

Starts a private Redis and one server process; a load process opens N WebSockets (accepted
and joined to one group by a small worker in this process), then this process calls
``group_send`` as fast as the sockets drain it. Prints the server's RSS per idle socket and
the deliveries per second it wrote, with the server's CPU time per delivery — the
figures docs/scaling.md builds its model on.

    python -m bench.fanout --sockets 2000 --seconds 10
"""

import argparse
import asyncio
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.measure import cpu_seconds, rss_kb
from switchroom.layers import get_layer
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
GROUP = "fanout"


HANDSHAKE = (
    b"GET /fanout HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: c3dpdGNocm9vbWZhbm91dA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FrameCounter(asyncio.Protocol):
    """A raw WebSocket client that counts the server's frames from the bytes, without
    decoding them, so that the load costs little beside the server it measures."""

    def __init__(self, opened: asyncio.Future) -> None:
        self.opened = opened
        self.head = b""
        self.pending = b""
        self.frames = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(HANDSHAKE)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.opened.set_result(None)
            data = self.head[end + 4 :]
        data = self.pending + data if self.pending else data
        at, size = 0, len(data)
        while at + 2 <= size:
            length = data[at + 1] & 0x7F
            start = at + 2
            if length == 126:
                length, start = int.from_bytes(data[at + 2 : at + 4], "big"), at + 4
            elif length == 127:
                length, start = int.from_bytes(data[at + 2 : at + 10], "big"), at + 10
            if start + length > size:
                break
            self.frames += 1
            at = start + length
        self.pending = data[at:]


def load(port: int, sockets: int, opened, counts, stop) -> None:
    """In its own process: open the sockets and count every frame, until told to stop."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, sockets + 1000), hard))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        counters = []
        for _ in range(sockets):
            ready = loop.create_future()
            _, counter = await loop.create_connection(lambda r=ready: FrameCounter(r), "127.0.0.1", port)
            await ready
            counters.append(counter)
        opened.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
            counts.value = sum(c.frames for c in counters)

    asyncio.run(run())


async def accept_all(layer, until: asyncio.Event) -> None:
    """The worker: accept every socket and add it to the group."""
    while not until.is_set():
        batch = await layer.receive_many(["websocket.connect"], 200, timeout=0.2)
        for _, message in batch:
            await layer.group_add(GROUP, message["reply_channel"])
            await layer.send(message["reply_channel"], {"accept": True})


async def listening(port: int, server: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until the server accepts connections on ``port`` (start-up time varies with load)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not listen on port {port} within {timeout} s") from error
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


async def measure(sockets: int, seconds: float) -> dict[str, float]:
    """One run: the server's RSS per idle socket, deliveries/s and server CPU per delivery."""
    with RedisProcess() as redis:
        url = f"{redis.url}?prefix=fanout&process_capacity=100000"
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchroom.cli",
                "http",
                "--port",
                str(port),
                "--layer",
                url,
                "--no-access-log",
                "--log-level",
                "warning",
                "--max-connections",
                str(sockets + 100),
                "--ping-interval",
                "0",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        layer = get_layer(url)
        try:
            await listening(port, server)
            base_rss = rss_kb(server.pid)
            done = asyncio.Event()
            worker = asyncio.ensure_future(accept_all(layer, done))
            ctx = multiprocessing.get_context("spawn")
            opened, stop, counts = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
            loader = ctx.Process(target=load, args=(port, sockets, opened, counts, stop))
            loader.start()
            while not opened.is_set():
                await asyncio.sleep(0.1)
            done.set()
            await worker
            await asyncio.sleep(1)
            idle_rss = rss_kb(server.pid)
            members = len(await layer.group_channels(GROUP))
            message = {"text": "x" * 32}
            cpu0, start, sent, reached, skipped = cpu_seconds(server.pid), time.perf_counter(), 0, 0, 0
            while time.perf_counter() - start < seconds:
                if sent * members - counts.value > members * 20:
                    await asyncio.sleep(0.002)
                    continue
                reach = await layer.group_send(GROUP, message)
                reached, skipped, sent = reached + reach.reached, skipped + reach.skipped, sent + 1
            while counts.value < sent * members and time.perf_counter() - start < seconds + 20:
                before = counts.value
                await asyncio.sleep(0.5)
                if counts.value == before:
                    break
            elapsed = time.perf_counter() - start
            cpu = cpu_seconds(server.pid) - cpu0
            delivered = counts.value
            stop.set()
            loader.join(30)
        finally:
            await layer.close()
            server.terminate()
            server.wait(20)
    return {
        "sockets": sockets,
        "members": members,
        "rss_empty_kb": base_rss,
        "rss_idle_kb": idle_rss,
        "kb_per_socket": (idle_rss - base_rss) / max(members, 1),
        "group_sends": sent,
        "expected": sent * members,
        "layer_reached": reached,
        "layer_skipped": skipped,
        "delivered": delivered,
        "dps": delivered / elapsed,
        "server_cpu_s": cpu,
        "us_per_delivery": cpu / max(delivered, 1) * 1e6,
    }


async def main(args: argparse.Namespace) -> None:
    print(f"fanning out to {args.sockets} sockets for {args.seconds:.0f} s", flush=True)
    r = await measure(args.sockets, args.seconds)
    print(f"sockets: {r['members']} in the group (of {r['sockets']} opened)")
    print(
        f"server RSS: {r['rss_empty_kb'] / 1024:.1f} MB empty, {r['rss_idle_kb'] / 1024:.1f} MB with the "
        f"sockets: {r['kb_per_socket']:.1f} KB per idle socket"
    )
    print(
        f"group sends: {r['group_sends']}; the layer reached {r['layer_reached']:,} members and skipped "
        f"{r['layer_skipped']:,}; deliveries: {r['delivered']:,} of {r['expected']:,} ({r['dps']:,.0f}/s)"
    )
    print(f"server CPU: {r['server_cpu_s']:.2f} s = {r['us_per_delivery']:.1f} µs per delivery")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
