"""The pure and in-process parts: ASGI send events to ``websocket.send`` messages, the
websocket scope, socket instances on the memory layer (order, overflow, disconnect), the
Channels router, process liveness on every backend and ``ProcessWatch``."""

import asyncio

import pytest
from channels.consumer import AsyncConsumer
from channels.routing import ChannelNameRouter, ProtocolTypeRouter

from switchroom.layers import MemoryLayer, ProcessWatch
from switchroom.worker.app import App
from switchroom.worker.channelnames import ChannelRouter, router_names
from switchroom.worker.sockets import ClientDisconnected, SocketEvents, Sockets, websocket_scope

ADDRESS = "websocket.worker.p1!abc"


def test_accept_names_the_worker_address_and_carries_subprotocol_and_headers():
    events = SocketEvents(ADDRESS)
    reply = events.feed({"type": "websocket.accept", "subprotocol": "v1", "headers": [(b"x-a", b"1")]})
    assert reply == {"accept": True, "worker": ADDRESS, "subprotocol": "v1", "headers": [[b"x-a", b"1"]]}
    assert events.feed({"type": "websocket.send", "text": "hi"}) == {"text": "hi"}
    assert events.feed({"type": "websocket.send", "bytes": b"\x00"}) == {"bytes": b"\x00"}
    assert events.feed({"type": "websocket.close", "code": 4000, "reason": "bye"}) == {
        "close": 4000,
        "reason": "bye",
    }
    with pytest.raises(RuntimeError):
        events.feed({"type": "websocket.send", "text": "late"})


@pytest.mark.parametrize(
    "event",
    [
        {"type": "websocket.send", "text": "too soon"},
        {"type": "websocket.nonsense"},
    ],
)
def test_events_out_of_place_are_errors(event):
    with pytest.raises(RuntimeError):
        SocketEvents(ADDRESS).feed(event)


def test_double_accept_and_send_with_both_payloads_are_errors():
    events = SocketEvents(ADDRESS)
    events.feed({"type": "websocket.accept"})
    with pytest.raises(RuntimeError):
        events.feed({"type": "websocket.accept"})
    with pytest.raises(RuntimeError):
        events.feed({"type": "websocket.send", "text": "a", "bytes": b"b"})


def test_close_before_accept_is_a_refusal():
    assert SocketEvents(ADDRESS).feed({"type": "websocket.close", "code": 1008}) == {"accept": False}


def test_denial_response_in_parts():
    events = SocketEvents(ADDRESS)
    start = {"type": "websocket.http.response.start", "status": 401, "headers": [(b"www-authenticate", b"x")]}
    assert events.feed(start) is None
    assert events.feed({"type": "websocket.http.response.body", "body": b"no ", "more_body": True}) is None
    assert events.feed({"type": "websocket.http.response.body", "body": b"entry"}) == {
        "accept": False,
        "status": 401,
        "headers": [[b"www-authenticate", b"x"]],
        "body": b"no entry",
    }


def test_denial_with_a_status_that_is_not_an_error_becomes_403():
    events = SocketEvents(ADDRESS)
    events.feed({"type": "websocket.http.response.start", "status": 200})
    assert events.feed({"type": "websocket.http.response.body", "body": b""})["status"] == 403


def test_websocket_scope():
    message = {
        "reply_channel": "websocket.send.p!x",
        "path": "/a b",
        "query_string": b"q=1",
        "headers": [[b"host", b"h"]],
        "client": ["1.2.3.4", 5],
        "server": ["5.6.7.8", 80],
        "subprotocols": ["v1"],
        "scheme": "wss",
        "root_path": "/app",
    }
    scope = websocket_scope(message, {"k": 1})
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/a b", b"/a%20b", b"q=1")
    assert scope["headers"] == [(b"host", b"h")]
    assert (scope["client"], scope["server"]) == (("1.2.3.4", 5), ("5.6.7.8", 80))
    assert (scope["subprotocols"], scope["scheme"], scope["root_path"]) == (["v1"], "wss", "/app")
    assert scope["state"] == {"k": 1}
    assert "websocket.http.response" in scope["extensions"]


@pytest.fixture
async def memory_layer():
    layer = MemoryLayer(capacity=5)
    await layer.inbox.start()
    yield layer
    await layer.close()


async def open_socket(layer, app, path="/s"):
    server = layer.inbox.mailbox("websocket.send")
    sockets = Sockets(app, layer, lambda: None, max_pending=5)
    await sockets.connect({"reply_channel": server.address, "path": path})
    return sockets, server


async def test_socket_instance_gets_messages_in_order_and_its_disconnect(memory_layer):
    seen = []
    ended = asyncio.Event()

    async def app(scope, receive, send):
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            seen.append(event)
            if event["type"] == "websocket.disconnect":
                with pytest.raises(ClientDisconnected):
                    await send({"type": "websocket.send", "text": "too late"})
                ended.set()
                return

    sockets, server = await open_socket(memory_layer, app)
    accept = await server.get(5)
    assert accept["accept"] is True
    worker = accept["worker"]
    for i in range(3):
        await memory_layer.send(worker, {"text": f"t{i}", "order": i + 1})
    await memory_layer.send(worker, {"bytes": b"b", "order": 4})
    await memory_layer.send(worker, {"code": 4001, "order": 5})
    await asyncio.wait_for(ended.wait(), 5)
    assert seen == [
        {"type": "websocket.receive", "text": "t0"},
        {"type": "websocket.receive", "text": "t1"},
        {"type": "websocket.receive", "text": "t2"},
        {"type": "websocket.receive", "bytes": b"b"},
        {"type": "websocket.disconnect", "code": 4001},
    ]
    await asyncio.sleep(0)
    assert sockets.open == {}
    assert worker not in memory_layer.inbox.handlers


async def test_an_app_that_stops_reading_gets_its_socket_closed_with_1013(memory_layer):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(30)

    sockets, server = await open_socket(memory_layer, app)
    worker = (await server.get(5))["worker"]
    for i in range(7):
        await memory_layer.send(worker, {"text": str(i), "order": i + 1})
    assert await server.get(5) == {"close": 1013, "reason": "the application is not keeping up"}
    await sockets.stop(0)


async def test_an_app_failing_before_accept_is_refused_and_after_accept_closed_with_1011(memory_layer):
    async def refuses(scope, receive, send):
        raise ValueError("no websockets here")

    _, server = await open_socket(memory_layer, refuses)
    assert await server.get(5) == {"accept": False}

    async def breaks(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise RuntimeError("bug")

    _, server = await open_socket(memory_layer, breaks)
    assert (await server.get(5))["accept"] is True
    assert await server.get(5) == {"close": 1011}


async def test_stop_closes_open_sockets_with_1012_and_refuses_new_ones(memory_layer):
    told = asyncio.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        event = await receive()
        assert event == {"type": "websocket.disconnect", "code": 1012}
        told.set()

    sockets, server = await open_socket(memory_layer, app)
    await server.get(5)
    await sockets.stop(0.1)
    assert await server.get(5) == {"close": 1012, "reason": "worker restarting"}
    assert told.is_set()
    late = memory_layer.inbox.mailbox("websocket.send")
    await sockets.connect({"reply_channel": late.address, "path": "/late"})
    assert await late.get(5) == {"accept": False}


class Mail(AsyncConsumer):
    handled: list = []

    async def email_receive(self, message):
        if message.get("subject") == "boom":
            raise RuntimeError("consumer failed")
        Mail.handled.append(message)


class Slack(AsyncConsumer):
    handled: list = []

    async def slack_app_mention(self, message):
        Slack.handled.append(message)


ROUTER = ProtocolTypeRouter(
    {"channel": ChannelNameRouter({"email.receive": Mail.as_asgi(), "slack.app_mention": Slack.as_asgi()})}
)


def test_router_names_and_targets():
    assert sorted(router_names(ROUTER)) == ["email.receive", "slack.app_mention"]
    assert router_names(object()) == []
    router = ChannelRouter(ROUTER, router_names(ROUTER))
    assert router.channels() == ["email.receive", "slack.event"]
    assert router.target("email.receive", {}) == "email.receive"
    assert router.target("slack.event", {"type": "app_mention"}) == "slack.app_mention"
    assert router.target("slack.event", {"type": "message"}) is None
    app = App()
    app.mount_asgi(ROUTER)
    assert "email.receive" in app.channels() and "slack.event" in app.channels()


async def test_router_hands_one_message_to_a_consumer_and_reports_its_failure(settings_for_channels):
    router = ChannelRouter(ROUTER, router_names(ROUTER))
    await router.call("email.receive", {"subject": "hi", "mail_from": "a@b"})
    assert Mail.handled[-1]["type"] == "email.receive" and Mail.handled[-1]["subject"] == "hi"
    await router.call("slack.app_mention", {"type": "app_mention", "text": "yo"})
    assert Slack.handled[-1]["type"] == "slack.app_mention"
    assert Slack.handled[-1]["event_type"] == "app_mention"
    with pytest.raises(RuntimeError, match="consumer failed"):
        await router.call("email.receive", {"subject": "boom"})


@pytest.fixture
def settings_for_channels():
    from django.conf import settings

    if not settings.configured:
        settings.configure(CHANNEL_LAYERS={})
    yield


def test_asgi_only_app_reads_socket_connects():
    app = App()
    app.mount_asgi(lambda scope, receive, send: None)
    assert app.channels() == ["http.request", "http.disconnect", "websocket.connect", "websocket.disconnect"]


async def test_liveness_on_every_backend(make_layer, backend):
    layer = make_layer()
    # Memory layers are one per process: there the process asks about itself.
    other = layer if backend == "memory" else make_layer(prefix=layer.prefix[:-1])
    await layer.inbox.start()
    ages = await other.liveness([layer.client_id, "never-seen"])
    assert ages["never-seen"] is None
    assert 0 <= ages[layer.client_id] < layer.liveness_timeout
    await layer.inbox.close()
    assert (await other.liveness([layer.client_id]))[layer.client_id] is None


async def test_process_watch_reports_a_process_that_stopped():
    layer = MemoryLayer(heartbeat_interval=0.1, liveness_timeout=0.5)
    dead = []
    watch = ProcessWatch(layer, dead.append, silence=0.3, interval=0.05)
    await layer.inbox.start()
    address = layer.inbox.address("websocket.worker")
    assert watch.watch(address) == layer.client_id
    await asyncio.sleep(0.3)
    assert dead == []
    await layer.inbox.close()
    for _ in range(40):
        if dead:
            break
        await asyncio.sleep(0.05)
    assert dead == [layer.client_id]
    await watch.close()
    with pytest.raises(ValueError):
        ProcessWatch(layer, dead.append, silence=0.1)


async def test_test_client_talks_to_a_mounted_asgi_socket():
    from switchroom.testing import TestClient, WebSocketClosed

    from .fastapi_app import app

    async with TestClient(app) as client:
        async with client.websocket("/ws/echo", subprotocols=["v1"]) as ws:
            assert ws.subprotocol == "v1"
            await ws.send_text("hi")
            assert await ws.receive_text() == "echo:hi"
            await ws.send_text("state")
            assert await ws.receive_text() == "hello from lifespan"
            await ws.send_text("close:4003")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 4003
        async with client.websocket("/native/ws") as ws:
            await ws.send_text("x")
            assert await ws.receive_text() == "native:x"


async def test_a_worker_counts_as_a_reader_from_before_its_app_starts_until_it_stops():
    from switchroom.layers.readers import live_readers
    from switchroom.worker.runner import Worker

    layer = MemoryLayer()
    seen_at_startup = []

    async def asgi(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            seen_at_startup.append(await live_readers(layer, "websocket.connect"))
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

    app = App()
    app.mount_asgi(asgi)
    worker = Worker(app, layer, grace=0)
    await worker.start()
    assert seen_at_startup == [1]
    assert await live_readers(layer, "http.request") == 1
    await worker.stop()
    assert await live_readers(layer, "websocket.connect") == 0
    await layer.close()


async def test_a_reader_announces_itself_again_when_the_layer_lost_everything(redis_server):
    """A Redis restarted empty (here: flushed) wipes the announcement; the reader's heartbeat
    finds its process taken for dead and redoes it, well before the refresh."""
    import uuid

    from switchroom.layers import get_layer
    from switchroom.layers.readers import Readers, live_readers

    url = f"{redis_server.url}?prefix=rv{uuid.uuid4().hex[:8]}"
    reader = get_layer(url, heartbeat_interval=0.2, liveness_timeout=1)
    other = get_layer(url)
    readers = Readers(reader)
    try:
        await readers.announce(["websocket.connect"])
        assert await live_readers(other, "websocket.connect") == 1
        await other.flush()
        assert await live_readers(other, "websocket.connect") == 0
        for _ in range(50):
            if await live_readers(other, "websocket.connect"):
                break
            await asyncio.sleep(0.1)
        assert await live_readers(other, "websocket.connect") == 1
    finally:
        await readers.withdraw()
        await reader.close()
        await other.close()
