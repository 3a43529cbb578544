"""Socket affinity at the HTTP server, with this test as the worker on the real layer: after
an accept naming a worker address, the socket's messages go there in order and never to
the shared channels; a gone worker closes the socket with 1011 at once; a worker that
accepts after the client left is told of the disconnect; with no worker running a handshake
is refused at once, while a worker that announced itself is waited for."""

import asyncio

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from switchroom.layers import get_layer
from switchroom.layers.readers import Readers

from ..http_ws.harness import ServerProcess


@pytest.fixture
async def server(redis_server):
    proc = ServerProcess(redis_server.url)
    layer = get_layer(proc.layer_url)
    await layer.inbox.start()
    yield proc, layer
    await layer.close()
    proc.stop()


async def take_connect(layer, timeout=10):
    channel, message = await layer.receive(["websocket.connect"], timeout=timeout)
    assert channel == "websocket.connect", "no websocket.connect came"
    return message


async def test_messages_after_the_accept_go_to_the_worker_address_in_order(server):
    proc, layer = server
    hosted = layer.inbox.mailbox("websocket.worker")
    connecting = asyncio.ensure_future(websockets.connect(proc.ws_url + "/room"))
    connect = await take_connect(layer)
    await layer.send(connect["reply_channel"], {"accept": True, "worker": hosted.address})
    ws = await connecting
    for i in range(20):
        await ws.send(f"m{i}")
    got = [await hosted.get(10) for _ in range(20)]
    assert [m["text"] for m in got] == [f"m{i}" for i in range(20)]
    assert [m["order"] for m in got] == list(range(1, 21))
    assert all(m["reply_channel"] == connect["reply_channel"] for m in got)
    await ws.close(4000)
    disconnect = await hosted.get(10)
    assert (disconnect["code"], disconnect["order"]) == (4000, 21)
    assert await layer.receive(["websocket.receive", "websocket.disconnect"], timeout=0.5) == (None, None)


async def test_a_gone_worker_closes_the_socket_with_1011_at_once(server, redis_server):
    proc, layer = server
    worker = get_layer(proc.layer_url)
    await worker.inbox.start()
    hosted = worker.inbox.mailbox("websocket.worker")
    connecting = asyncio.ensure_future(websockets.connect(proc.ws_url + "/room"))
    connect = await take_connect(layer)
    await layer.send(connect["reply_channel"], {"accept": True, "worker": hosted.address})
    ws = await connecting
    await worker.close()
    await ws.send("anyone there?")
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1011
    assert ws.close_reason == "the worker serving this socket is gone"


async def test_a_worker_that_accepts_after_the_client_left_hears_of_it(server):
    proc, layer = server
    hosted = layer.inbox.mailbox("websocket.worker")
    connecting = asyncio.ensure_future(websockets.connect(proc.ws_url + "/room"))
    connect = await take_connect(layer)
    connecting.cancel()
    await asyncio.gather(connecting, return_exceptions=True)
    # The shared disconnect went to whichever worker reads it; this one accepts late.
    _, shared = await layer.receive(["websocket.disconnect"], timeout=10)
    assert shared["reply_channel"] == connect["reply_channel"]
    await layer.send(connect["reply_channel"], {"accept": True, "worker": hosted.address})
    told = await hosted.get(10)
    assert told is not None, "the late worker was not told"
    assert told["reply_channel"] == connect["reply_channel"]
    assert "code" in told and told.get("text") is None


async def test_with_no_worker_running_a_handshake_is_refused_at_once(server):
    proc, _ = server
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(proc.ws_url + "/nobody"):
            pass
    assert refused.value.response.status_code == 503
    # Refused by the check (about 2 s), not by the connect timeout (10 s), which logs otherwise.
    assert proc.wait_for_log("WebSocket /nobody refused (503): no worker reads websocket.connect")


async def test_a_worker_that_announced_itself_is_waited_for_while_it_starts(server):
    proc, layer = server
    starting = Readers(layer)
    await starting.announce(["websocket.connect"])
    connecting = asyncio.ensure_future(websockets.connect(proc.ws_url + "/late"))
    # Longer than the server waits before refusing when nobody reads (2 s).
    await asyncio.sleep(3)
    connect = await take_connect(layer)
    await layer.send(connect["reply_channel"], {"accept": True})
    ws = await connecting
    await ws.close()
    await starting.withdraw()
