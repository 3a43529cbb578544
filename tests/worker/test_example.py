"""The documented example app, served by a real worker: web page, HTTP post to a room that a
WebSocket listener hears, email into the room, and Slack mentions."""

import json

import pytest

from .harness import WorkerProcess, http, mailbox, ws_message


@pytest.fixture
async def example(redis_server):
    proc = WorkerProcess(redis_server.url, "examples.everything:app")
    layer = proc.layer()
    yield layer
    await layer.close()
    proc.stop()


async def test_example_app_end_to_end(example):
    layer = example
    status, headers, body, _ = await http(layer, "/rooms/tea")
    assert status == 200 and b"/chat/tea" in body

    listener = await mailbox(layer, "websocket.send")
    await layer.send("websocket.connect", ws_message(listener.address, "/chat/tea", headers=[]))
    assert (await listener.get(10)) == {"accept": True}

    status, _, body, _ = await http(layer, "/rooms/tea/messages", method="POST", body=b"hello")
    assert (status, json.loads(body)) == (201, {"room": "tea", "delivered_to": 1})
    assert (await listener.get(10)) == {"text": "[http] hello"}

    mail = {
        "mail_from": "bob@remote.example",
        "rcpt_to": ["tea@chat.example.com"],
        "peer": ["127.0.0.1", 1],
        "from": "bob@remote.example",
        "subject": "biscuits",
        "size": 10,
    }
    await layer.send("email.receive", mail)
    assert (await listener.get(10)) == {
        "text": "[mail from bob@remote.example] biscuits"
    }
    _, reply = await layer.receive(["email.send"], timeout=10)
    assert reply["to"] == ["bob@remote.example"]
