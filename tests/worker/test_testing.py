"""``switchroom.testing.TestClient``: an app tested in-process over every protocol, the chat
example among them, with answers that never come failing the test instead of hanging it."""

import asyncio

import pytest

from examples.chat.app import app as chat_app
from switchroom.testing import TestClient, WebSocketClosed, WebSocketRejected
from switchroom.worker.app import App

from ..layers.test_presence import apply


def make_app() -> App:
    app = App()
    seen: list[str] = []
    app.state = seen  # type: ignore[attr-defined]

    @app.http("/hello/{name}")
    async def hello(message, ctx, name):
        await ctx.respond({"hello": name, "query": message["query_string"].decode()})

    @app.http("/big")
    async def big(message, ctx):
        await ctx.respond(b"x" * (ctx.layer.chunk_size * 2 + 10))

    @app.http("/echo", methods=["POST"])
    async def echo(message, ctx):
        await ctx.respond(message["body"], content_type="application/json")

    @app.http("/boom")
    async def boom(message, ctx):
        raise RuntimeError("boom")

    @app.http("/stuck")
    async def stuck(message, ctx):
        await asyncio.Event().wait()

    @app.websocket("/echo", on="connect")
    async def connect(message, ctx):
        if message["query_string"] == b"deny":
            await ctx.reject()
        else:
            await ctx.accept(subprotocol=(message.get("subprotocols") or [None])[0])

    @app.websocket("/echo")
    async def frame(message, ctx):
        if message.get("text") == "bye":
            await ctx.close(4001, "asked to")
        elif message.get("text") is not None:
            await ctx.send(text=message["text"].upper())
        else:
            await ctx.send(bytes=message["bytes"][::-1])

    @app.websocket("/echo", on="disconnect")
    async def gone(message, ctx):
        seen.append(f"disconnect {message['code']}")

    @app.email("help@*")
    async def mail(message, ctx):
        await ctx.reply_email(text=f"you wrote: {message['text'].strip()}")

    @app.slack("message")
    async def said(message, ctx):
        await ctx.post_slack(f"heard {message['text']}", thread=True)

    @app.slack("slash_command")
    async def command(message, ctx):
        await ctx.answer_slack(text="done", response_type="ephemeral")

    return app


async def test_http_requests_get_whole_responses():
    async with TestClient(make_app()) as client:
        response = await client.get("/hello/ann", query="x=1")
        assert response.status == 200
        assert response.json() == {"hello": "ann", "query": "x=1"}
        assert response.header("Content-Type") == "application/json"
        big = await client.get("/big")
        assert len(big.body) == client.layer.chunk_size * 2 + 10 and big.parts == 3
        assert (await client.post("/echo", json_body={"a": 1})).json() == {"a": 1}
        assert (await client.get("/nowhere")).status == 404
        assert (await client.get("/boom")).status == 500


async def test_a_request_the_app_never_answers_fails_instead_of_hanging():
    async with TestClient(make_app(), timeout=0.5, grace=0.1) as client:
        with pytest.raises(TimeoutError, match="GET /stuck"):
            await client.get("/stuck")


async def test_websocket_sessions_accept_frame_close_and_reject():
    app = make_app()
    async with TestClient(app) as client:
        async with client.websocket("/echo", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            await ws.send_text("hi")
            await ws.send_bytes(b"abc")
            assert await ws.receive_text() == "HI"
            assert await ws.receive_bytes() == b"cba"
            await ws.send_text("bye")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (4001, "asked to")
        async with client.websocket("/echo") as ws:
            await ws.send_text("x")
            assert await ws.receive_text() == "X"
        with pytest.raises(WebSocketRejected):
            async with client.websocket("/echo", query="deny"):
                pass
        for _ in range(50):
            if app.state:
                break
            await asyncio.sleep(0.02)
        assert app.state == ["disconnect 1000"]


async def test_an_email_is_answered_by_email():
    async with TestClient(make_app()) as client:
        message_id = await client.email(
            "ann@example.com", ["help@example.org"], subject="question", text="why?"
        )
        reply = await client.sent("email.send")
        assert reply["to"] == ["ann@example.com"]
        assert reply["subject"] == "Re: question"
        assert reply["in_reply_to"] == message_id
        assert reply["text"] == "you wrote: why?"


async def test_slack_events_are_posted_to_and_slash_commands_answered_in_their_ack():
    async with TestClient(make_app()) as client:
        await client.slack_event(
            {"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "1.5"}
        )
        post = await client.sent("slack.send")
        assert (post["channel"], post["text"], post["thread_ts"]) == ("C1", "heard hi", "1.5")
        event = await client.slack_event(
            {"type": "slash_command", "command": "/do", "channel_id": "C1", "user_id": "U1", "text": ""},
            event_id="E1",
        )
        assert await event.reply() == {"ack": {"text": "done", "response_type": "ephemeral"}}


async def room_line(ws) -> dict:
    """The next line of the chat room, past the frames of who is in it."""
    while True:
        frame = await ws.receive_json()
        if not frame.get("type", "").startswith("presence."):
            return frame


async def test_the_chat_example_broadcasts_to_every_page_and_shows_email():
    async with TestClient(chat_app) as client:
        page = await client.get("/")
        assert page.status == 200 and b"<html" in page.body.lower()
        async with client.websocket("/room") as ann, client.websocket("/room") as bob:
            await ann.send_json({"name": "ann", "text": "hello"})
            for ws in (ann, bob):
                line = await room_line(ws)
                assert (line["via"], line["from"], line["text"]) == ("web", "ann", "hello")
            slack = await client.sent("slack.send")
            assert slack["text"] == "*ann*: hello"
            await client.email("cy@example.com", ["room@chat.localhost"], subject="hi", text="from mail")
            shown = [await room_line(ws) for ws in (ann, bob)]
            assert {line["via"] for line in shown} == {"email"}
            assert shown[0]["text"] == "from mail" and shown[0]["reply"]["address"] == "cy@example.com"


async def people(ws, view: dict, expected: dict) -> None:
    """Read presence frames into ``view`` until it shows ``expected`` (key -> vias)."""
    while {
        k: sorted(m["via"] for m in refs.values()) for k, refs in view.items() if k != "\0ready"
    } != expected:
        frame = await ws.receive_json()
        if frame.get("type", "").startswith("presence."):
            apply(view, frame)


async def test_the_chat_example_shows_who_is_in_the_room():
    async with TestClient(chat_app) as client:
        async with client.websocket("/room", query="name=ann") as ann:
            view: dict = {}
            await people(ann, view, {"ann": ["web"]})
            async with (
                client.websocket("/room", query="name=ann"),
                client.websocket("/room", query="name=bob"),
            ):
                await people(ann, view, {"ann": ["web", "web"], "bob": ["web"]})
            await people(ann, view, {"ann": ["web"]})
            await client.email("cy@example.com", ["room@chat.localhost"], subject="hi", text="from mail")
            await people(ann, view, {"ann": ["web"], "cy@example.com": ["email"]})
            assert list(await client.layer.presence.list("room")) == ["ann", "cy@example.com"]
