"""End to end: real ``switchroom worker`` processes against real Redis, the test playing the
interface servers by sending messages onto the layer and reading its own reply channels."""

import asyncio
import json
import signal

import pytest

from .harness import WorkerProcess, http, mailbox, read_response, ws_message


@pytest.fixture
async def worker(redis_server):
    proc = WorkerProcess(redis_server.url, "tests.worker.apps:app", "--threads", "2", "--concurrency", "20")
    layer = proc.layer()
    yield proc, layer
    await layer.close()
    proc.stop()


async def test_http_typed_params_and_sync_consumer(worker):
    _, layer = worker
    status, headers, body, _ = await http(layer, "/items/42")
    assert status == 200
    assert json.loads(body) == {"id": 42, "type": "int"}
    assert headers[b"content-type"] == b"application/json"
    status, _, body, _ = await http(layer, "/files/a/b.txt")
    assert status == 200
    assert body.startswith(b"file a/b.txt on switchroom-consumer")


async def test_http_unmatched_and_wrong_method(worker):
    proc, layer = worker
    status, _, body, _ = await http(layer, "/items/abc")
    assert (status, body) == (404, b"Not Found")
    status, _, _, _ = await http(layer, "/items/1", method="POST")
    assert status == 405
    assert proc.wait_for_log("404 GET /items/abc: no route")


async def test_large_response_is_chunked(worker):
    _, layer = worker
    status, headers, body, parts = await http(layer, "/big")
    assert status == 200
    assert body == b"x" * 3_000_000
    assert len(parts) >= 3
    assert headers[b"content-length"] == b"3000000"


async def test_errors_give_500_and_worker_keeps_running(worker):
    proc, layer = worker
    for path in ("/boom", "/sync-boom"):
        status, _, body, _ = await http(layer, path)
        assert (status, body) == (500, b"Internal Server Error")
    assert proc.wait_for_log("consumer failed on http.request message http.response.")
    status, _, _, _ = await http(layer, "/items/1")
    assert status == 200


async def test_malformed_request_gets_400(worker):
    proc, layer = worker
    reply = await mailbox(layer, "http.response")
    await layer.send("http.request", {"reply_channel": reply.address, "path": "/items/1"})
    status, _, _, _ = await read_response(reply)
    assert status == 400
    assert proc.wait_for_log("dropping a malformed http.request")


async def test_websocket_groups_and_rejection(worker):
    _, layer = worker
    a = await mailbox(layer, "websocket.send")
    b = await mailbox(layer, "websocket.send")
    for reply in (a, b):
        await layer.send("websocket.connect", ws_message(reply.address, "/chat/lobby", headers=[]))
        answer = await reply.get(10)
        assert answer == {"accept": True}
    await layer.send("websocket.receive", ws_message(a.address, "/chat/lobby", 1, text="hi"))
    for reply in (a, b):
        frame = await reply.get(10)
        assert frame == {"text": "lobby: hi"}
    await layer.send("websocket.disconnect", ws_message(b.address, "/chat/lobby", 1, code=1000))
    await asyncio.sleep(0.5)
    await layer.send("websocket.receive", ws_message(a.address, "/chat/lobby", 2, text="again"))
    frame = await a.get(10)
    assert frame == {"text": "lobby: again"}
    assert await b.get(1) is None

    rejected = await mailbox(layer, "websocket.send")
    for path in ("/chat/closed", "/nowhere"):
        await layer.send("websocket.connect", ws_message(rejected.address, path, headers=[]))
        answer = await rejected.get(10)
        assert answer == {"accept": False}


async def test_websocket_auto_accept_order_and_crash(worker):
    proc, layer = worker
    reply = await mailbox(layer, "websocket.send")
    await layer.send("websocket.connect", ws_message(reply.address, "/echo", headers=[]))
    answer = await reply.get(10)
    assert answer == {"accept": True}
    await layer.send_many(
        [("websocket.receive", ws_message(reply.address, "/echo", i, text=str(i))) for i in range(1, 21)]
    )
    texts = []
    for _ in range(20):
        frame = await reply.get(10)
        texts.append(frame["text"])
    assert texts == [str(i) for i in range(1, 21)]

    chat = await mailbox(layer, "websocket.send")
    await layer.send("websocket.connect", ws_message(chat.address, "/chat/x", headers=[]))
    await chat.get(10)
    await layer.send("websocket.receive", ws_message(chat.address, "/chat/x", 1, text="crash"))
    frame = await chat.get(10)
    assert frame == {"close": 1011}
    assert proc.wait_for_log("consumer failed on websocket.receive message websocket.send.")


def email(rcpt, mail_from="alice@remote.example", **fields):
    return {
        "mail_from": mail_from,
        "rcpt_to": rcpt,
        "peer": ["127.0.0.1", 2525],
        "message_id": "<m1@remote.example>",
        "subject": "Question",
        "from": "Alice <alice@remote.example>",
        "text": "please",
        "size": 100,
        **fields,
    }


async def test_email_routing_reply_and_bounce(worker):
    proc, layer = worker
    await layer.send("email.receive", email(["HELP@example.com"]))
    _, sent = await layer.receive(["email.send"], timeout=10)
    assert sent["to"] == ["alice@remote.example"]
    assert sent["text"] == "help: please"
    assert sent["subject"] == "Re: Question"
    assert sent["in_reply_to"] == "<m1@remote.example>"
    assert sent["references"] == ["<m1@remote.example>"]

    await layer.send(
        "email.receive", email(["dev@lists.example.com"], reply_to=["Team <team@remote.example>"])
    )
    _, sent = await layer.receive(["email.send"], timeout=10)
    assert sent["to"] == ["team@remote.example"]
    assert sent["text"] == "list dev@lists.example.com"

    await layer.send("email.receive", email(["nobody@example.com"]))
    _, bounce = await layer.receive(["email.send"], timeout=10)
    assert bounce["to"] == ["alice@remote.example"]
    assert bounce["from"] == "postmaster@example.com"
    assert bounce["mail_from"] == "", "a bounce goes from the null sender"
    assert "<nobody@example.com>: 550 5.1.1" in bounce["text"]
    assert bounce["dsn"]["recipients"][0]["status"] == "5.1.1"
    assert proc.wait_for_log("no route for nobody@example.com; bouncing to alice@remote.example")

    await layer.send("email.receive", email(["nobody@example.com"], mail_from=""))
    assert proc.wait_for_log("not bouncing a message with an empty sender")
    assert await layer.receive(["email.send"], timeout=1) == (None, None)


def slack(type_, channel, text="hello", **fields):
    return {
        "type": type_,
        "team": "T1",
        "channel": channel,
        "user": "U1",
        "text": text,
        "ts": "100.1",
        "event": {"type": type_},
        "reply_channel": "slack.send",
        **fields,
    }


async def test_slack_routing_by_type_and_channel(worker):
    _, layer = worker
    await layer.send("slack.event", slack("message", "C2"))
    await layer.send("slack.event", slack("message", "C1"))
    _, post = await layer.receive(["slack.send"], timeout=10)
    assert post == {"channel": "C1", "team": "T1", "text": "c1: hello", "thread_ts": "100.1"}
    await layer.send("slack.event", slack("app_mention", "C9"))
    _, post = await layer.receive(["slack.send"], timeout=10)
    assert (post["channel"], post["text"]) == ("C9", "mentioned")
    assert await layer.receive(["slack.send"], timeout=1) == (None, None)


async def test_graceful_shutdown_finishes_running_consumers(worker):
    proc, layer = worker
    reply = await mailbox(layer, "http.response")
    sync_reply = await mailbox(layer, "http.response")
    base = {"http_version": "1.1", "method": "GET", "scheme": "http", "query_string": b"", "headers": []}
    await layer.send("http.request", {**base, "reply_channel": reply.address, "path": "/slow/1.5"})
    await layer.send("http.request", {**base, "reply_channel": sync_reply.address, "path": "/sync-slow/1.5"})
    await asyncio.sleep(0.7)
    proc.terminate()
    for channel in (reply, sync_reply):
        status, _, body, _ = await read_response(channel)
        assert (status, body) == (200, b"slept")
    assert await asyncio.to_thread(proc.proc.wait, 15) == 0
    assert proc.wait_for_log("worker stopped")


async def test_grace_period_is_bounded(redis_server):
    proc = WorkerProcess(redis_server.url, "tests.worker.apps:app", "--grace", "0.5")
    layer = proc.layer()
    try:
        base = {"http_version": "1.1", "method": "GET", "scheme": "http", "query_string": b"", "headers": []}
        reply = await mailbox(layer, "http.response")
        await layer.send("http.request", {**base, "reply_channel": reply.address, "path": "/slow/60"})
        await asyncio.sleep(0.5)
        proc.proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(proc.proc.wait, 20) == 0
        assert proc.wait_for_log("cancelling 1 consumers still running")
    finally:
        await layer.close()
        proc.stop()


async def test_concurrency_limit_applies_backpressure(redis_server):
    proc = WorkerProcess(redis_server.url, "tests.worker.apps:app", "--concurrency", "2")
    layer = proc.layer()
    try:
        base = {"http_version": "1.1", "method": "GET", "scheme": "http", "query_string": b"", "headers": []}
        replies = [await mailbox(layer, "http.response") for _ in range(3)]
        for reply in replies[:2]:
            await layer.send("http.request", {**base, "reply_channel": reply.address, "path": "/slow/3"})
        await asyncio.sleep(0.5)
        await layer.send("http.request", {**base, "reply_channel": replies[2].address, "path": "/items/7"})
        # Both slots are busy for the next ~2.5 s, so the quick request is not even taken yet.
        assert await replies[2].get(0.7) is None
        status, _, _, _ = await read_response(replies[2])
        assert status == 200
        for reply in replies[:2]:
            status, _, _, _ = await read_response(reply)
            assert status == 200
    finally:
        await layer.close()
        proc.stop()


async def test_bad_app_target_exits_with_error(redis_server, tmp_path):
    import subprocess
    import sys

    from .harness import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "switchroom.cli", "worker", "tests.worker.apps:missing"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot start: cannot load the app 'tests.worker.apps:missing'" in result.stderr
