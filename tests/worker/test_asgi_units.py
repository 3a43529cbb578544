"""The ASGI bridge's parts without a worker process: scope, response events, body reading,
disconnects and lifespan, on the in-memory layer."""

import asyncio

import pytest

from switchroom.layers import LayerError, get_layer
from switchroom.worker.asgi import BodyReader, Lifespan, ResponseWriter, call_http, http_scope

REQUEST = {
    "reply_channel": "http.response.x!y",
    "http_version": "2",
    "method": "post",
    "scheme": "https",
    "path": "/a b/ü",
    "query_string": b"x=1",
    "root_path": "/root",
    "headers": [[b"host", b"h"], [b"x", b"1"], [b"x", b"2"]],
    "body": b"abc",
    "client": ["10.0.0.1", 5],
    "server": ["10.0.0.2", 443],
}


def test_http_scope():
    scope = http_scope(REQUEST, {"k": 1})
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "2",
        "method": "POST",
        "scheme": "https",
        "path": "/a b/ü",
        "raw_path": b"/a%20b/%C3%BC",
        "query_string": b"x=1",
        "root_path": "/root",
        "headers": [(b"host", b"h"), (b"x", b"1"), (b"x", b"2")],
        "client": ("10.0.0.1", 5),
        "server": ("10.0.0.2", 443),
        "state": {"k": 1},
    }
    bare = http_scope({"method": "GET", "path": "/"})
    assert bare["client"] is None and bare["query_string"] == b"" and "state" not in bare


def test_response_writer_streams_and_splits():
    writer = ResponseWriter(5904)
    assert writer.feed({"type": "http.response.start", "status": 201, "headers": [(b"a", b"b")]}) == []
    first = writer.feed({"type": "http.response.body", "body": b"x" * 7000, "more_body": True})
    assert [len(m["content"]) for m in first] == [5904, 1096]
    assert first[0]["status"] == 201 and first[0]["headers"] == [[b"a", b"b"]]
    assert [m["more_content"] for m in first] == [True, True]
    last = writer.feed({"type": "http.response.body", "body": b"end"})
    assert last == [{"content": b"end", "more_content": False}]
    with pytest.raises(RuntimeError):
        writer.feed({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "http.response.body"}],
        [{"type": "http.response.start", "status": 200}, {"type": "http.response.start", "status": 200}],
        [{"type": "websocket.send"}],
    ],
)
def test_response_writer_refuses_bad_sequences(events):
    writer = ResponseWriter(10_000)
    with pytest.raises(RuntimeError):
        for event in events:
            writer.feed(event)


async def test_body_reader_inline_chunks_and_closed():
    layer = get_layer("memory://")
    channel = await layer.new_channel("http.request.body?")
    await layer.send(channel, {"content": b"1", "more_content": True})
    await layer.send(channel, {"content": b"2", "more_content": False})
    gone = asyncio.Event()
    reader = BodyReader(layer, {"body": b"0", "body_channel": channel}, gone, 5)
    bodies = [await reader(), await reader(), await reader()]
    assert [(b["body"], b["more_body"]) for b in bodies] == [(b"0", True), (b"1", True), (b"2", False)]
    gone.set()
    assert await reader() == {"type": "http.disconnect"}

    await layer.send(channel, {"content": b"", "closed": True})
    reader = BodyReader(layer, {"body": b"", "body_channel": channel}, asyncio.Event(), 5)
    await reader()
    assert await reader() == {"type": "http.disconnect"}

    reader = BodyReader(layer, {"body": b"", "body_channel": channel}, asyncio.Event(), 0.1)
    await reader()
    with pytest.raises(LayerError, match="did not arrive"):
        await reader()


async def test_call_http_finishes_open_responses_and_refuses_silence():
    layer = get_layer("memory://")
    sent = []

    async def collect(messages):
        sent.extend(messages)

    async def start_only(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})

    await call_http(start_only, layer, dict(REQUEST), collect, asyncio.Event(), None, 5)
    assert sent == [{"status": 204, "headers": [], "content": b"", "more_content": False}]

    sent.clear()

    async def half_stream(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})

    await call_http(half_stream, layer, dict(REQUEST), collect, asyncio.Event(), None, 5)
    assert sent[-1] == {"content": b"", "more_content": False}

    async def silent(scope, receive, send):
        pass

    with pytest.raises(RuntimeError):
        await call_http(silent, layer, dict(REQUEST), collect, asyncio.Event(), None, 5)


async def test_lifespan_supported_unsupported_and_failed():
    events = []

    async def app(scope, receive, send):
        scope["state"]["ready"] = True
        while True:
            event = await receive()
            events.append(event["type"])
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return

    lifespan = Lifespan(app, 5)
    await lifespan.startup()
    assert lifespan.supported and lifespan.state == {"ready": True}
    await lifespan.shutdown()
    assert events == ["lifespan.startup", "lifespan.shutdown"]

    async def http_only(scope, receive, send):
        raise ValueError("only http")

    lifespan = Lifespan(http_only, 5)
    await lifespan.startup()
    assert not lifespan.supported
    await lifespan.shutdown()

    async def failing(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no db"})

    with pytest.raises(RuntimeError, match="no db"):
        await Lifespan(failing, 5).startup()
