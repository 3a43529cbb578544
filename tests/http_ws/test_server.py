"""End to end: ``switchroom http`` as a subprocess on real Redis, driven by real HTTP and
WebSocket clients, answered by a small worker on the layer."""

import asyncio
import hashlib
import json
import os
import socket
import time

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from switchroom.layers import ChannelFull, get_layer

from .harness import ServerProcess
from .responder import Responder

pytestmark = pytest.mark.slow

SERVER_ARGS = (
    "--request-timeout",
    "1.5",
    "--connect-timeout",
    "1.5",
    "--max-body-size",
    "3000000",
    "--max-header-count",
    "30",
    "--max-header-bytes",
    "4096",
    "--max-ws-message-size",
    "65536",
    "--max-frame-size",
    "65536",
    "--allowed-origins",
    "http://good.example,https://*.good.example",
    "--allowed-hosts",
    "127.0.0.1,localhost",
    "--ping-interval",
    "0.5",
    "--ping-timeout",
    "1",
    "--root-path",
    "/mounted",
    "--log-level",
    "info",
)


@pytest.fixture(scope="module")
def server(redis_server):
    proc = ServerProcess(redis_server.url, *SERVER_ARGS)
    yield proc
    proc.stop()


@pytest.fixture
async def layer(server):
    layer = get_layer(server.layer_url)
    await layer.flush()
    yield layer
    await layer.flush()
    await layer.close()


@pytest.fixture
async def responder(layer):
    worker = Responder(layer).start()
    yield worker
    await worker.stop()


@pytest.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http_client:
        yield http_client


async def fill(layer, channel: str) -> None:
    """Send until the channel is full (a reader stopped a moment ago may still take one)."""
    with pytest.raises(ChannelFull):
        for _ in range(layer.capacity_for(channel) * 2):
            await layer.send(channel, {"filler": True})


# -- HTTP --------------------------------------------------------------------------


async def test_hello(client, responder, server):
    response = await client.get("/hello")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert '"GET /hello HTTP/1.1" 200 13' in server.log_text()


async def test_scope_carries_the_whole_request(client, responder, server):
    response = await client.get(
        "/scope?q=caf%C3%A9&x=1", headers=[("X-Dup", "a"), ("X-Dup", "b"), ("X-Forwarded-For", "10.9.9.9")]
    )
    scope = response.json()
    assert scope["method"] == "GET"
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "q=caf%C3%A9&x=1"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == "/mounted"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"][0] == "127.0.0.1"
    headers = [tuple(pair) for pair in scope["headers"]]
    assert ("x-dup", "a") in headers and ("x-dup", "b") in headers
    assert headers.index(("x-dup", "a")) < headers.index(("x-dup", "b"))
    assert all(name == name.lower() for name, _ in headers)
    assert scope["body_channel"] is None


async def test_path_is_percent_decoded(client, responder):
    await client.get("/caf%C3%A9/a%20b")
    message = await responder.wait_for("http.request", path="/café/a b")
    assert message["method"] == "GET"


async def test_small_body_travels_in_the_request(client, responder):
    response = await client.post("/body", content=b"x" * 1000)
    assert response.json() == {"length": 1000, "sha256": hashlib.sha256(b"x" * 1000).hexdigest(), "parts": 1}


async def test_large_body_goes_in_chunks_on_a_body_channel(client, responder):
    body = os.urandom(2_500_000)
    response = await client.post("/body", content=body)
    summary = response.json()
    assert summary["length"] == len(body)
    assert summary["sha256"] == hashlib.sha256(body).hexdigest()
    assert summary["parts"] == 3
    message = await responder.wait_for("http.request", path="/body", method="POST")
    assert message["body_channel"].startswith("http.request.body?")


async def test_body_over_the_limit_gets_413(client, responder):
    response = await client.post("/body", content=b"x" * 3_000_001)
    assert response.status_code == 413


async def test_chunked_body_over_the_limit_gets_413(server, responder):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /body HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (100_000, b"y" * 100_000)
    try:
        for _ in range(40):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413")


async def test_too_many_headers_get_431(client, responder):
    response = await client.get("/hello", headers=[(f"x-h{i}", "v") for i in range(40)])
    assert response.status_code == 431


async def test_oversized_headers_get_431(client, responder):
    response = await client.get("/hello", headers={"x-big": "v" * 5000})
    assert response.status_code == 431


async def test_unknown_host_gets_400(client, responder):
    response = await client.get("/hello", headers={"host": "evil.example"})
    assert response.status_code == 400


async def test_streamed_response(client, responder):
    async with client.stream("GET", "/stream") as response:
        parts = [chunk async for chunk in response.aiter_raw()]
    assert b"".join(parts) == b"one two three"


async def test_headers_are_passed_with_duplicates(client, responder):
    response = await client.get("/headers")
    assert response.status_code == 201
    assert response.headers["x-one"] == "1"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_no_worker_answer_gets_503(client, layer):
    started = time.monotonic()
    response = await client.get("/hello")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert time.monotonic() - started >= 1.4


async def test_invalid_reply_gets_502(client, responder, server):
    response = await client.get("/bad")
    assert response.status_code == 502
    assert "bad reply" in server.log_text()


async def test_full_request_channel_gets_503(client, layer):
    await fill(layer, "http.request")
    response = await client.get("/hello")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert "full" in response.text


async def test_client_leaving_sends_http_disconnect(server, responder):
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /never HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        request = await responder.wait_for("http.request", path="/never")
    gone = await responder.wait_for("http.disconnect", reply_channel=request["reply_channel"])
    assert gone["path"] == "/never"


async def test_replies_for_many_requests_share_one_blocking_read(server, client, responder, redis_server):
    pending = [asyncio.ensure_future(client.get("/slow")) for _ in range(20)]
    await asyncio.sleep(0.3)
    blocked = redis.Redis(port=redis_server.port).info("clients")["blocked_clients"]
    responses = await asyncio.gather(*pending)
    assert [r.text for r in responses] == ["finally"] * 20
    # One read for the server's replies plus the responder's own reads at most.
    assert blocked <= 3


# -- WebSocket ---------------------------------------------------------------------


async def test_websocket_echo_text_and_bytes(server, responder):
    async with connect(server.ws_url + "/ws/echo?room=1") as ws:
        await ws.send("hello")
        assert await ws.recv() == "1:hello"
        await ws.send(b"\x01\x02\x03")
        assert await ws.recv() == b"\x03\x02\x01"
        await ws.send("again")
        assert await ws.recv() == "3:again"
    connect_message = await responder.wait_for("websocket.connect", path="/ws/echo")
    assert connect_message["query_string"] == b"room=1"
    assert connect_message["order"] == 0
    assert connect_message["scheme"] == "ws"
    gone = await responder.wait_for("websocket.disconnect", reply_channel=connect_message["reply_channel"])
    assert gone["code"] == 1000
    assert gone["order"] == 4


async def test_a_burst_of_client_frames_reaches_the_worker_whole_and_in_order(server, responder):
    """Frames that arrive while earlier ones are still on their way to the layer go in a
    later batch: every one gets there, in the client's order."""
    async with connect(server.ws_url + "/ws/echo") as ws:
        for i in range(90):
            await ws.send(f"m{i}")
            if i % 3 == 2:
                await asyncio.sleep(0.001)
        echoes = [await asyncio.wait_for(ws.recv(), 30) for _ in range(90)]
    assert echoes == [f"{i + 1}:m{i}" for i in range(90)]


async def test_websocket_reject_gets_403(server, responder):
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.ws_url + "/ws/reject"):
            pass
    assert caught.value.response.status_code == 403


async def test_websocket_subprotocol(server, responder):
    async with connect(server.ws_url + "/ws/subprotocol", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
    message = await responder.wait_for("websocket.connect", path="/ws/subprotocol")
    assert message["subprotocols"] == ["chat.v1", "chat.v2"]


async def test_sending_text_during_the_handshake_accepts(server, responder):
    async with connect(server.ws_url + "/ws/greet") as ws:
        assert await ws.recv() == "welcome"


async def test_websocket_close_code_and_reason_from_the_worker(server, responder):
    async with connect(server.ws_url + "/ws/close") as ws:
        await ws.send("please close")
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    assert caught.value.rcvd.code == 4001
    assert caught.value.rcvd.reason == "bye now"


async def test_websocket_connect_timeout_gets_503(server, responder):
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.ws_url + "/ws/silent"):
            pass
    assert caught.value.response.status_code == 503


async def test_websocket_message_over_the_limit_closes_1009(server, responder):
    async with connect(server.ws_url + "/ws/echo") as ws:
        await ws.send("x" * 70_000)
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    assert caught.value.rcvd.code == 1009


async def test_websocket_origin_allow_list(server, responder):
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.ws_url + "/ws/echo", origin="http://evil.example"):
            pass
    assert caught.value.response.status_code == 403
    async with connect(server.ws_url + "/ws/echo", origin="https://app.good.example") as ws:
        await ws.send("hi")
        assert await ws.recv() == "1:hi"


async def test_full_connect_channel_gets_503(server, layer):
    await fill(layer, "websocket.connect")
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.ws_url + "/ws/echo"):
            pass
    assert caught.value.response.status_code == 503


async def test_full_receive_channel_closes_1013(server, layer, responder):
    async with connect(server.ws_url + "/ws/echo") as ws:
        await responder.stop()
        await fill(layer, "websocket.receive")
        await ws.send("one too many")
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    assert caught.value.rcvd.code == 1013


async def test_unanswered_pings_close_the_socket(server, responder):
    """A raw client that completes the handshake but never answers pings is dropped."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert status.startswith(b"HTTP/1.1 101")
    first = await asyncio.wait_for(reader.readexactly(2), 5)
    assert first[0] & 0x0F == 0x9, "the server should ping an idle socket"
    await reader.readexactly(first[1] & 0x7F)
    try:
        await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        pass
    assert reader.at_eof() or reader.exception() is not None
    writer.close()


# -- proxies, sockets, shutdown ----------------------------------------------------


async def test_proxy_headers_only_when_enabled(redis_server):
    proxied = ServerProcess(redis_server.url, "--proxy-headers")
    layer = get_layer(proxied.layer_url)
    worker = Responder(layer).start()
    try:
        async with httpx.AsyncClient(base_url=proxied.url) as http_client:
            response = await http_client.get(
                "/scope", headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1", "X-Forwarded-Proto": "https"}
            )
        scope = response.json()
        assert scope["client"] == ["203.0.113.7", 0]
        assert scope["scheme"] == "https"
    finally:
        await worker.stop()
        await layer.close()
        proxied.stop()


async def test_unix_socket(redis_server, tmp_path):
    path = str(tmp_path / "http.sock")
    unix = ServerProcess(redis_server.url, unix_socket=path)
    layer = get_layer(unix.layer_url)
    worker = Responder(layer).start()
    try:
        transport = httpx.AsyncHTTPTransport(uds=path)
        async with httpx.AsyncClient(transport=transport, base_url="http://switchroom") as http_client:
            response = await http_client.get("/scope")
        assert response.json()["client"] is None
    finally:
        await worker.stop()
        await layer.close()
        unix.stop()


async def test_graceful_shutdown(redis_server):
    """SIGTERM: in-flight requests still get their answer, sockets are closed with 1001."""
    proc = ServerProcess(redis_server.url, "--shutdown-grace", "5")
    layer = get_layer(proc.layer_url)
    worker = Responder(layer).start()
    try:
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as http_client:
            async with connect(proc.ws_url + "/ws/echo") as ws:
                slow = asyncio.ensure_future(http_client.get("/slow"))
                await worker.wait_for("http.request", path="/slow")
                proc.terminate()
                with pytest.raises(ConnectionClosed) as caught:
                    await ws.recv()
                assert caught.value.rcvd.code == 1001
                response = await slow
        assert response.text == "finally"
        assert await asyncio.to_thread(proc.proc.wait, 20) == 0
    finally:
        await worker.stop()
        await layer.close()
        proc.stop()


async def test_access_log_has_a_line_per_socket(server, responder):
    async with connect(server.ws_url + "/ws/echo") as ws:
        await ws.send("x")
        await ws.recv()
    deadline = time.monotonic() + 5
    while "WebSocket /ws/echo closed 1000" not in server.log_text():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert json.dumps("WebSocket /ws/echo open")[1:-1] in server.log_text()
