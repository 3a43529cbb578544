"""WebSockets while Redis is killed and restarted under them: open sockets are never left
hanging — a frame that cannot reach the layer closes its socket with 1011 (layer
unavailable), all 20 of them within ``CLOSE_BOUND`` seconds, as docs/reliability.md says —
and within 5 s of Redis returning, sockets connect and echo again.
Figures go to ``test-artifacts/reliability-http.json``."""

import asyncio
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..http_ws.harness import ServerProcess
from .test_http_faults import record, start_worker

pytestmark = pytest.mark.slow

SOCKETS = 20
# Every socket's frame, one socket after the other, closes it with 1011 within this time in
# all: far below the server's request timeout (3 s here) and the layer's socket timeouts.
CLOSE_BOUND = 2.0


async def echo_once(ws, text: str, timeout: float = 10) -> str:
    await ws.send(text)
    return await asyncio.wait_for(ws.recv(), timeout)


async def test_sockets_close_with_1011_while_redis_is_down_and_work_again_after(redis_process):
    server = ServerProcess(redis_process.url, "--request-timeout", "3")
    worker = start_worker(server.layer_url)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with connect(server.ws_url + "/echo", open_timeout=5) as ws:
                    assert await echo_once(ws, "ready") == "ready"
                    break
            except (OSError, ConnectionClosed, TimeoutError):
                assert time.monotonic() < deadline, "the echo socket never worked"
                await asyncio.sleep(0.2)
        sockets = [await connect(server.ws_url + "/echo") for _ in range(SOCKETS)]
        assert [await echo_once(ws, f"{i}") for i, ws in enumerate(sockets)] == [
            f"{i}" for i in range(SOCKETS)
        ]

        redis_process.stop(kill=True)
        started = time.monotonic()
        codes = []
        for ws in sockets:
            try:
                await ws.send("while down")
                await asyncio.wait_for(ws.recv(), 10)
                codes.append("answered")
            except ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd else "no close frame")
        longest = time.monotonic() - started
        assert codes == [1011] * SOCKETS, codes
        assert longest < CLOSE_BOUND, f"closing {SOCKETS} sockets took {longest:.2f} s"
        assert server.proc.poll() is None and worker.proc.poll() is None

        redis_process.start()
        back_at = time.monotonic()
        while True:
            try:
                async with connect(server.ws_url + "/echo", open_timeout=5) as ws:
                    assert await echo_once(ws, "back") == "back"
                    break
            except (OSError, ConnectionClosed, TimeoutError):
                assert time.monotonic() - back_at < 5, "sockets did not work again within 5 s"
                await asyncio.sleep(0.05)
        working_again = time.monotonic() - back_at
        fresh = [await connect(server.ws_url + "/echo") for _ in range(SOCKETS)]
        assert [await echo_once(ws, f"{i}") for i, ws in enumerate(fresh)] == [f"{i}" for i in range(SOCKETS)]
        for ws in fresh:
            await ws.close()
        record(
            "websockets_redis_kill",
            {
                "sockets": SOCKETS,
                "closed_1011_while_down": codes.count(1011),
                "time_to_close_all_s": round(longest, 3),
                "echoing_again_after_restart_s": round(working_again, 3),
            },
        )
    finally:
        worker.stop()
        server.stop()
