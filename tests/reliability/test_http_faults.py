"""Faults and hostile clients against real ``switchroom http`` and ``switchroom worker``
processes on a real Redis that the tests kill and restart. Figures go to
``test-artifacts/reliability-http.json`` (summed up in docs/reliability.md)."""

import asyncio
import json
import signal
import socket
import time

import httpx
import pytest

from switchroom.layers import ChannelFull, get_layer

from ..http_ws.harness import ROOT, ServerProcess
from ..worker.harness import WorkerProcess

pytestmark = pytest.mark.slow

FIGURES = ROOT / "test-artifacts" / "reliability-http.json"


def record(name: str, figures: dict) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[name] = figures
    FIGURES.write_text(json.dumps(data, indent=2))


def start_worker(layer_url: str, *args: str) -> WorkerProcess:
    return WorkerProcess(layer_url, "tests.worker.apps:app", *args)


async def wait_until_served(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{url} never answered 200"
            await asyncio.sleep(0.1)


async def test_redis_killed_and_restarted_under_load(redis_process):
    """While Redis is down requests get 503 quickly (no hang); within 5 s of its return
    everything is answered again, with no process restarted."""
    server = ServerProcess(redis_process.url, "--request-timeout", "3")
    worker = start_worker(server.layer_url)
    outcomes: list[tuple[float, int, float]] = []
    try:
        await wait_until_served(server.url + "/items/1")
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:

            async def load(until: float) -> None:
                while time.monotonic() < until:
                    started = time.monotonic()
                    try:
                        status = (await client.get("/items/7")).status_code
                    except httpx.HTTPError:
                        status = 0
                    outcomes.append((started, status, time.monotonic() - started))

            start = time.monotonic()
            clients = [asyncio.ensure_future(load(start + 12)) for _ in range(8)]
            await asyncio.sleep(2)
            killed_at = time.monotonic()
            redis_process.stop(kill=True)
            await asyncio.sleep(2)
            restarting_at = time.monotonic()
            redis_process.start()
            back_at = time.monotonic()
            await asyncio.gather(*clients)
        assert server.proc.poll() is None and worker.proc.poll() is None, "a process died with Redis"
        during = [o for o in outcomes if killed_at + 0.5 < o[0] and o[0] + o[2] < restarting_at]
        after = [o for o in outcomes if o[0] > back_at]
        first_ok_after = min((o[0] + o[2] for o in after if o[1] == 200), default=None)
        assert during and all(o[1] == 503 for o in during), [
            (round(o[0] - killed_at, 2), o[1], round(o[2], 3)) for o in during if o[1] != 503
        ][:8]
        assert first_ok_after is not None and first_ok_after - back_at < 5
        # Connections and scripts the restart broke fail once each; after that, all is served.
        last_failure = max((o[0] for o in after if o[1] != 200), default=back_at)
        failures = [(round(o[0] - back_at, 2), o[1], round(o[2], 2)) for o in after if o[1] != 200]
        assert last_failure - back_at < 5, str(failures[-6:])
        assert sum(o[1] == 200 for o in after if o[0] > last_failure) > 50
        slowest = max(o[2] for o in outcomes)
        assert slowest < 3 + 2, "no request may hang past the reply timeout and the layer's own timeouts"
        record(
            "redis_kill",
            {
                "requests": len(outcomes),
                "answered_200": sum(o[1] == 200 for o in outcomes),
                "answered_503": sum(o[1] == 503 for o in outcomes),
                "other": sum(o[1] not in (200, 503) for o in outcomes),
                "first_answer_after_restart_s": round(first_ok_after - back_at, 3),
                "last_failure_after_restart_s": round(last_failure - back_at, 3),
                "slowest_request_s": round(slowest, 3),
            },
        )
    finally:
        worker.stop()
        server.stop()


async def test_worker_killed_mid_request(redis_server):
    """A request whose worker dies gets 503 after the reply timeout; others keep being
    served; the server keeps no bookkeeping for it afterwards."""
    server = ServerProcess(redis_server.url, "--request-timeout", "2")
    doomed = start_worker(server.layer_url)
    survivor = None
    try:
        await wait_until_served(server.url + "/items/1")
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
            slow = asyncio.ensure_future(client.get("/slow/30"))
            await asyncio.sleep(0.5)
            doomed.send_signal(signal.SIGKILL)
            doomed.proc.wait(5)
            survivor = start_worker(server.layer_url)
            await wait_until_served(server.url + "/items/2")
            started = time.monotonic()
            response = await slow
            waited = time.monotonic() - started
            assert response.status_code == 503
            ok = await asyncio.gather(*(client.get(f"/items/{i}") for i in range(20)))
            assert all(r.status_code == 200 for r in ok)
        record(
            "worker_kill",
            {
                "orphaned_request_status": 503,
                "other_requests_ok": 20,
                "waited_after_kill_s": round(waited, 3),
            },
        )
    finally:
        doomed.stop()
        if survivor is not None:
            survivor.stop()
        assert server.stop() == 0
    assert "stopped; 0 reply channels left routed" in server.stopped_log


async def test_slow_headers_get_408(redis_server):
    server = ServerProcess(redis_server.url, "--read-timeout", "1")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /items/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()

        async def trickle() -> None:
            for i in range(20):
                writer.write(b"X-Slow-%d: 1\r\n" % i)
                await writer.drain()
                await asyncio.sleep(0.3)

        dripping = asyncio.ensure_future(trickle())
        status = await asyncio.wait_for(reader.readline(), 10)
        dripping.cancel()
        writer.close()
        assert status.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 3
    finally:
        server.stop()


async def test_a_connection_that_never_sends_a_request_is_dropped(redis_server):
    server = ServerProcess(redis_server.url, "--read-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GE")
            sock.settimeout(10)
            started = time.monotonic()
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
            assert time.monotonic() - started < 5
    finally:
        server.stop()


async def test_a_websocket_client_that_never_reads_is_dropped(redis_server):
    """The server's buffer for a client that stopped reading is bounded, then it drops it."""
    server = ServerProcess(redis_server.url, "--max-send-buffer", "1000000")
    layer = get_layer(server.layer_url)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.transport.set_write_buffer_limits(0)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(
            b"GET /stuck HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        _, connect = await layer.receive(["websocket.connect"], timeout=10)
        await layer.send(connect["reply_channel"], {"accept": True})
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101")
        chunk = "x" * 60_000
        sent = 0
        for _ in range(400):
            try:
                await layer.send(connect["reply_channel"], {"text": chunk})
                sent += len(chunk)
            except Exception:
                await asyncio.sleep(0.05)
            if "stopped reading" in server.log_text():
                break
            await asyncio.sleep(0.005)
        assert "the client stopped reading; dropped" in server.log_text()
        record("never_reading_client", {"bytes_offered_before_drop": sent, "limit": 1_000_000})
        writer.close()
    finally:
        await layer.close()
        server.stop()


async def test_a_killed_server_leaves_nothing_growing_and_a_new_one_serves(redis_server):
    """SIGKILL a server holding sockets: their group memberships lapse by group expiry, what
    is sent to its reply queue is bounded by capacity and expiry, and a new server serves."""
    options = "group_expiry=2&expiry=2&process_capacity=50"
    server = ServerProcess(f"{redis_server.url}?{options}")
    layer = get_layer(server.layer_url + "&" + options)
    try:

        async def accept(count: int) -> list[str]:
            channels = []
            for _ in range(count):
                _, connect = await layer.receive(["websocket.connect"], timeout=10)
                await layer.group_add("room", connect["reply_channel"])
                await layer.send(connect["reply_channel"], {"accept": True})
                channels.append(connect["reply_channel"])
            return channels

        from websockets.asyncio.client import connect as ws_connect

        accepting = asyncio.ensure_future(accept(3))
        sockets = [await ws_connect(server.ws_url + "/room") for _ in range(3)]
        channels = await accepting
        assert sorted(await layer.group_channels("room")) == sorted(channels)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        for sock in sockets:
            sock.transport.abort()
        # Messages for the dead process pile up only to the process queue's capacity...
        sent = refused = 0
        for _ in range(80):
            try:
                await layer.send(channels[0], {"text": "anyone?"})
                sent += 1
            except ChannelFull:
                refused += 1
        assert sent == 50 and refused == 30
        # ...and lapse with the expiry, as do the group memberships.
        await asyncio.sleep(2.5)
        assert await layer.group_channels("room") == []
        assert (await layer.group_send("room", {"text": "hello?"})).reached == 0
        await layer.send(channels[0], {"text": "room again"})
        record(
            "server_kill",
            {
                "queued_for_dead_server": sent,
                "refused_beyond_capacity": refused,
                "memberships_after_group_expiry": 0,
            },
        )
        # A new server on the same layer serves straight away.
        server.stop()
        server = ServerProcess(f"{redis_server.url}?{options}")
        layer2 = get_layer(server.layer_url + "&" + options)
        try:
            accepting = asyncio.ensure_future(_accept_on(layer2))
            async with ws_connect(server.ws_url + "/room") as sock:
                await accepting
                await sock.send("hi")
                _, received = await layer2.receive(["websocket.receive"], timeout=10)
                assert received["text"] == "hi"
        finally:
            await layer2.close()
    finally:
        await layer.close()
        server.stop()


async def _accept_on(layer) -> None:
    _, connect = await layer.receive(["websocket.connect"], timeout=10)
    await layer.send(connect["reply_channel"], {"accept": True})
