"""The ASGI 3 bridge end to end: a real Starlette app and a real Django app served by
``switchroom worker`` processes, with request bodies in chunks and streamed responses."""

import json

import pytest

from .harness import WorkerProcess, http


@pytest.fixture
async def starlette_worker(redis_server, tmp_path):
    marker = tmp_path / "lifespan"
    proc = WorkerProcess(
        redis_server.url, "tests.worker.starlette_app:app", env={"LIFESPAN_MARKER": str(marker)}
    )
    layer = proc.layer()
    yield proc, layer, marker
    await layer.close()
    proc.stop()


async def test_starlette_scope_and_lifespan_state(starlette_worker):
    _, layer, _ = starlette_worker
    status, headers, body, _ = await http(layer, "/hello", query=b"q=1%202", headers=[(b"x-test", b"yes")])
    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {
        "started": "yes",
        "path": "/hello",
        "query": "1 2",
        "method": "GET",
        "client": "127.0.0.1",
        "header": "yes",
    }
    status, _, _, _ = await http(layer, "/missing")
    assert status == 404


async def test_starlette_chunked_body_and_streamed_response(starlette_worker):
    _, layer, _ = starlette_worker
    body_channel = await layer.new_channel("http.request.body?")
    payload = b"A" * 700_000 + b"B" * 700_000
    await layer.send(body_channel, {"content": payload[:700_000], "more_content": True})
    await layer.send(body_channel, {"content": payload[700_000:], "more_content": False})
    status, _, body, _ = await http(layer, "/echo", method="POST", body=b"", body_channel=body_channel)
    assert (status, body) == (200, b"1400000:AAAAAAAAAA:BBBBBBBBBB")

    status, _, body, parts = await http(layer, "/stream")
    assert status == 200
    assert body == b"part0;part1;part2;"
    assert len(parts) >= 2
    assert parts[-1]["more_content"] is False


async def test_starlette_with_native_email_route_and_lifespan_shutdown(starlette_worker):
    proc, layer, marker = starlette_worker
    await layer.send(
        "email.receive",
        {"mail_from": "a@remote.example", "rcpt_to": ["x@example.com"], "peer": ["127.0.0.1", 1], "size": 1},
    )
    _, sent = await layer.receive(["email.send"], timeout=10)
    assert (sent["to"], sent["text"]) == (["a@remote.example"], "got it")
    assert proc.stop() == 0
    assert marker.read_text() == "shutdown"


@pytest.fixture
async def django_worker(redis_server):
    proc = WorkerProcess(redis_server.url, "tests.worker.django_app:application", "--threads", "2")
    layer = proc.layer()
    yield proc, layer
    await layer.close()
    proc.stop()


async def test_django_app(django_worker):
    proc, layer = django_worker
    status, _, body, _ = await http(layer, "/hello/ann", query=b"q=z")
    assert status == 200
    assert json.loads(body) == {"hello": "ann", "q": "z", "method": "GET"}

    body_channel = await layer.new_channel("http.request.body?")
    await layer.send(body_channel, {"content": b"x" * 500_000, "more_content": True})
    await layer.send(body_channel, {"content": b"y" * 500_000, "more_content": False})
    status, _, body, _ = await http(
        layer, "/upload", method="POST", body=b"z" * 10, body_channel=body_channel
    )
    assert (status, body) == (200, b"1000010 bytes")

    status, _, _, _ = await http(layer, "/nope")
    assert status == 404
    assert proc.wait_for_log("does not support lifespan")
