"""A Starlette ``WebSocketEndpoint`` served by ``switchroom worker`` behind two servers: its
instance keeps state for the socket's life, and it hears the client's close code."""

import json

import pytest
import websockets

from .harness import Deployment

pytestmark = pytest.mark.slow


async def test_endpoint_keeps_state_for_the_socket_and_hears_the_close(redis_server):
    deployment = Deployment(redis_server.url, "tests.asgi3.starlette_ws:app")
    try:
        for index in (0, 1):
            async with websockets.connect(deployment.ws(index, f"/count/s{index}")) as ws:
                assert json.loads(await ws.recv()) == {"hello": f"s{index}"}
                for n in range(1, 4):
                    await ws.send(json.dumps({"n": n}))
                    assert json.loads(await ws.recv()) == {"seen": n, "echo": {"n": n}}
                await ws.close(4002)
            assert deployment.workers[0].wait_for_log(f"endpoint s{index} left with 4002 after 3")
    finally:
        deployment.stop()
