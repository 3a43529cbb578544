"""What happens to ASGI 3 sockets when their worker goes: killed outright, the servers
close them with 1011 within 5 s; stopped, the worker closes them with 1012 after its grace;
an app that does not take websocket scopes is refused with 403 at once, with a log line."""

import asyncio
import signal
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .harness import Deployment

pytestmark = pytest.mark.slow

# The documented bound for a killed worker's sockets to be closed.
KILLED_CLOSE_BOUND = 5.0


async def closed_code(ws, timeout: float) -> int:
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code


async def test_killed_worker_sockets_close_with_1011_within_5_s(redis_server):
    deployment = Deployment(redis_server.url, "tests.asgi3.fastapi_app:app")
    try:
        sockets = [await websockets.connect(deployment.ws(i % 2, "/ws/echo")) for i in range(4)]
        for ws in sockets:
            await ws.send("ping")
            assert await ws.recv() == "echo:ping"
        deployment.workers[0].proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        codes = await asyncio.gather(*(closed_code(ws, 15) for ws in sockets))
        took = time.monotonic() - killed
        assert codes == [1011] * 4
        assert took < KILLED_CLOSE_BOUND, f"closed {took:.2f} s after the kill"
        assert all(ws.close_reason == "the worker serving this socket is gone" for ws in sockets)
        for server in deployment.servers:
            server.wait_for_log("stopped heartbeating")
    finally:
        deployment.stop()


async def test_stopped_worker_closes_its_sockets_with_1012_after_its_grace(redis_server):
    deployment = Deployment(redis_server.url, "tests.asgi3.fastapi_app:app", "--grace", "2")
    try:
        ws = await websockets.connect(deployment.ws(1, "/ws/echo"))
        await ws.send("ping")
        assert await ws.recv() == "echo:ping"
        worker = deployment.workers[0]
        worker.terminate()
        await asyncio.to_thread(worker.wait_for_log, "closing them with 1012 after 2")
        # Within the grace the socket is still served.
        await ws.send("still there?")
        assert await ws.recv() == "echo:still there?"
        assert await closed_code(ws, 15) == 1012
        assert worker.proc.wait(15) == 0
        assert worker.wait_for_log("closing 1 WebSockets with 1012")
    finally:
        deployment.stop()


async def test_app_without_websocket_support_is_refused_at_once(redis_server):
    deployment = Deployment(redis_server.url, "tests.worker.django_app:application")
    try:
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(deployment.ws(0, "/ws")):
                pass
        assert refused.value.response.status_code == 403
        # Refused by the app's answer, not by the server's connect timeout (10 s).
        assert time.monotonic() - started < 10
        assert deployment.workers[0].wait_for_log("the ASGI app does not take this websocket scope")
    finally:
        deployment.stop()
