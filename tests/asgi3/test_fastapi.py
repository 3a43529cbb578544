"""A FastAPI app's WebSockets served by ``switchroom worker`` behind two ``switchroom http``
processes: echo of text and bytes, subprotocol and accept headers, close codes, the
denial response, lifespan state, order kept, and native routes beside the mounted app."""

import asyncio
import json

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .harness import Deployment

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(redis_server):
    d = Deployment(redis_server.url, "tests.asgi3.fastapi_app:app")
    yield d
    d.stop()


async def test_echo_text_bytes_scope_and_state(deployment):
    for index in (0, 1):
        async with websockets.connect(
            # "%65" is "e": the app routes the decoded path and sees the raw one too.
            deployment.ws(index, "/ws/%65cho?a=1"),
            subprotocols=["chat.v1"],
            additional_headers={"x-test": "yes"},
        ) as ws:
            assert ws.subprotocol == "chat.v1"
            assert ws.response.headers["x-echo"] == "yes"
            await ws.send("hi")
            assert await ws.recv() == "echo:hi"
            await ws.send(b"\x01\x02\x03")
            assert await ws.recv() == b"\x03\x02\x01"
            await ws.send("state")
            assert await ws.recv() == "hello from lifespan"
            await ws.send("scope")
            assert json.loads(await ws.recv()) == {
                "path": "/ws/echo",
                "raw_path": "/ws/%65cho",
                "root_path": "",
                "query": "a=1",
                "scheme": "ws",
                "client": True,
                "server": deployment.servers[index].port,
                "header": "yes",
            }


async def test_order_is_kept(deployment):
    # A burst up to the channel capacity (100) is taken whole; more is refused with 1013.
    async with websockets.connect(deployment.ws(0, "/ws/count")) as ws:
        for i in range(100):
            await ws.send(str(i))
        got = [await ws.recv() for _ in range(100)]
    assert got == [f"{i + 1}:{i}" for i in range(100)]


async def test_close_code_and_reason_from_the_app(deployment):
    async with websockets.connect(deployment.ws(1, "/ws/echo")) as ws:
        await ws.send("close:4001")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4001
    assert ws.close_reason == "asked to close"


async def test_denial_response_and_close_before_accept(deployment):
    with pytest.raises(InvalidStatus) as denied:
        async with websockets.connect(deployment.ws(0, "/ws/deny")):
            pass
    assert denied.value.response.status_code == 401
    assert denied.value.response.body == b"no entry"
    assert denied.value.response.headers["content-type"].startswith("text/plain")
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(deployment.ws(0, "/ws/refuse")):
            pass
    assert refused.value.response.status_code == 403


async def test_native_routes_beside_the_mounted_app(deployment):
    async with httpx.AsyncClient() as client:
        native = await client.get(deployment.url(0, "/native"))
        mounted = await client.get(deployment.url(1, "/hello"))
    assert (native.status_code, native.text) == (200, "native http")
    assert (mounted.status_code, mounted.json()) == (200, {"hello": "fastapi"})
    async with websockets.connect(deployment.ws(1, "/native/ws")) as native_ws:
        async with websockets.connect(deployment.ws(1, "/ws/echo")) as asgi_ws:
            await native_ws.send("a")
            await asgi_ws.send("b")
            assert await native_ws.recv() == "native:a"
            assert await asgi_ws.recv() == "echo:b"


async def test_client_leaving_ends_the_app_instance(deployment):
    worker = deployment.workers[0]
    for _ in range(3):
        async with websockets.connect(deployment.ws(0, "/ws/echo")) as ws:
            await ws.send("x")
            await ws.recv()
    await asyncio.sleep(0)
    assert worker.proc.poll() is None
