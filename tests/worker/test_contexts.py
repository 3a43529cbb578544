"""A context per protocol: each consumer gets only its protocol's helpers (another's fails
at the call, naming whose it is), every one can post to Slack and send email in the
documented formats, the dispatcher's table follows the app's routes, and the email helpers
a worker uses import without the SMTP server's dependencies."""

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from switchroom.layers import get_layer
from switchroom.shared.mail import incoming
from switchroom.shared.messages import MessageFormatError, validate
from switchroom.testing import TestClient, WebSocketClosed
from switchroom.worker import (
    App,
    Context,
    EmailContext,
    HttpContext,
    SlackContext,
    SyncContext,
    WebSocketContext,
)
from switchroom.worker.context import PROTOCOL_CONTEXTS
from switchroom.worker.dispatch import HANDLERS, Dispatcher

OWN_HELPERS = {
    HttpContext: {"respond", "send_response"},
    WebSocketContext: {"accept", "reject", "send", "close"},
    EmailContext: {"reply_email"},
    SlackContext: {"post_slack", "answer_slack"},
}
SHARED_HELPERS = {"group_add", "group_discard", "group_send", "send_email", "send_slack", "layer", "presence"}


def test_each_context_has_its_own_helpers_and_none_of_the_others():
    layer = get_layer("memory://")
    assert set(PROTOCOL_CONTEXTS.values()) == set(OWN_HELPERS)
    for cls, own in OWN_HELPERS.items():
        ctx = cls(layer, "some.channel", {"reply_channel": "x.y!z"})
        assert isinstance(ctx, Context)
        for name in own | SHARED_HELPERS:
            assert hasattr(ctx, name), (cls.__name__, name)
        for other, helpers in OWN_HELPERS.items():
            if other is cls:
                continue
            for name in helpers - own:
                with pytest.raises(AttributeError, match=f"{name}\\(\\) is a helper of {other.__name__}"):
                    getattr(ctx, name)
        # Only a socket is tracked; anyone may look a group up or mark a sender as seen.
        assert hasattr(ctx.presence, "track") == (cls is WebSocketContext)
        assert hasattr(ctx.presence, "seen") and hasattr(ctx.presence, "list")
    with pytest.raises(AttributeError, match="no attribute 'nothing_at_all'"):
        HttpContext(layer, "http.request", {}).nothing_at_all  # noqa: B018


def wrong_helper_app(failures: list[str]) -> App:
    app = App()

    @app.http("/accept")
    async def accepts(message, ctx):
        try:
            await ctx.accept()
        except AttributeError as exc:
            failures.append(str(exc))
            raise

    @app.http("/sync-accept")
    def accepts_on_a_thread(message, ctx):
        try:
            ctx.accept()
        except AttributeError as exc:
            failures.append(str(exc))
            raise

    @app.websocket("/ws")
    async def responds(message, ctx):
        try:
            await ctx.respond("no")
        except AttributeError as exc:
            failures.append(str(exc))
            raise

    @app.email("*@example.org")
    def posts(message, ctx):
        try:
            ctx.post_slack("no")
        except AttributeError as exc:
            failures.append(str(exc))
            raise

    return app


async def test_a_wrong_helper_fails_at_the_call_with_the_protocol_answer():
    failures: list[str] = []
    async with TestClient(wrong_helper_app(failures), threads=1) as client:
        assert (await client.get("/accept")).status == 500
        assert failures.pop() == (
            "accept() is a helper of WebSocketContext, but this consumer handles http.request "
            "and has a HttpContext"
        )
        assert (await client.get("/sync-accept")).status == 500
        assert "accept() is a helper of WebSocketContext" in failures.pop()
        async with client.websocket("/ws") as ws:
            await ws.send_text("hi")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1011
        assert "respond() is a helper of HttpContext" in failures.pop()
        await client.email("ann@example.com", ["x@example.org"], text="hi")
        for _ in range(100):
            if failures:
                break
            await client.layer.receive(["nothing"], timeout=0.02)
        assert "post_slack() is a helper of SlackContext" in failures.pop()


def posting_app(refused: list[str]) -> App:
    app = App()

    @app.websocket("/room")
    async def say(message, ctx):
        await ctx.send_slack("C0ROOM", message["text"], thread_ts="1.5")

    @app.http("/announce", methods=["POST"])
    def announce(message, ctx):
        ctx.send_slack("C0NEWS", blocks=[{"type": "section"}], team="T1")
        ctx.send_email("ops@example.com", subject="announced", text="sent")
        reached = ctx.group_send("room", text="announced")
        ctx.respond({"reached": reached.reached})

    @app.http("/bad")
    async def bad(message, ctx):
        for attempt in (
            lambda: ctx.send_slack("C1", "hi", reaction="eyes"),  # a reaction needs ts
            lambda: ctx.send_slack("C1", text=5),
            lambda: ctx.send_email([], text="nobody"),
        ):
            try:
                await attempt()
            except MessageFormatError as exc:
                refused.append(str(exc))
            else:
                raise AssertionError("a malformed send went out")
        with pytest.raises(TypeError):
            await ctx.group_send("room", colour="red")
        with pytest.raises(TypeError):
            await ctx.group_send("room", {"text": "x"}, text="x")
        await ctx.respond("checked")

    return app


async def test_send_slack_and_send_email_reach_the_layer_in_the_documented_format():
    refused: list[str] = []
    async with TestClient(posting_app(refused), threads=1) as client:
        async with client.websocket("/room") as ws:
            await ws.send_text("hello")
            post = await client.sent("slack.send")
            assert post == {"channel": "C0ROOM", "text": "hello", "thread_ts": "1.5"}
            validate("slack.send", post)
        response = await client.post("/announce")
        assert response.status == 200 and response.json() == {"reached": 0}
        post = await client.sent("slack.send")
        assert post == {"channel": "C0NEWS", "text": None, "blocks": [{"type": "section"}], "team": "T1"}
        mail = await client.sent("email.send")
        assert (mail["to"], mail["subject"], mail["text"]) == (["ops@example.com"], "announced", "sent")
        assert (await client.get("/bad")).text == "checked"
        assert refused == [
            "slack.send: 'reaction' needs the 'ts' of the message to react to",
            "slack.send: 'text' must be str or None, not int",
            "email.send: 'to' needs at least one address",
        ]
        with pytest.raises(TimeoutError):
            client.timeout = 0.2
            await client.sent("slack.send")


async def test_the_dispatch_table_follows_the_routes():
    layer = get_layer("memory://")
    pool = ThreadPoolExecutor(1)
    app = App()
    seen: list[type] = []

    @app.http("/")
    async def page(message, ctx):
        seen.append(type(ctx))
        await ctx.respond("page")

    dispatcher = Dispatcher(app, layer, pool)
    assert list(dispatcher.table) == app.channels() == ["http.request", "http.disconnect"]
    assert dispatcher.table["http.request"][0] is HttpContext
    await layer.inbox.start()
    reply = layer.inbox.mailbox("http.response")
    request = {"reply_channel": reply.address, "http_version": "1.1", "method": "GET", "path": "/"}
    assert await dispatcher.handle("http.request", request)
    assert (await reply.get(5))["content"] == b"page" and seen == [HttpContext]
    # A channel no route reads is dropped and counted, whatever handler exists for it.
    raw = b"Subject: x\r\n\r\nx\r\n"
    email = incoming(
        raw, mail_from="a@example.com", rcpt_to=["b@example.com"], peer=["127.0.0.1", 0], helo=None
    )
    assert await dispatcher.handle("email.receive", email)
    assert layer.stats.dropped["unrouted"] == 1
    assert await layer.receive(["email.send"], timeout=0.05) == (None, None)

    @app.email("*@example.com")
    async def mail(message, ctx):
        seen.append(type(ctx))

    @app.slack("message")
    def said(message, ctx):
        seen.append(type(ctx._context))

    @app.websocket("/ws", on="connect")
    async def connect(message, ctx):
        seen.append(type(ctx))
        await ctx.accept()

    dispatcher = Dispatcher(app, layer, pool)
    assert list(dispatcher.table) == app.channels()
    assert {channel: HANDLERS[channel][0] for channel in app.channels()} == {
        "http.request": HttpContext,
        "http.disconnect": HttpContext,
        "websocket.connect": WebSocketContext,
        "websocket.receive": WebSocketContext,
        "websocket.disconnect": WebSocketContext,
        "email.receive": EmailContext,
        "slack.event": SlackContext,
    }
    seen.clear()
    assert await dispatcher.handle("email.receive", email)
    slack = {"type": "message", "channel": "C1", "text": "hi", "event": {}, "reply_channel": "slack.send.p!1"}
    assert await dispatcher.handle("slack.event", slack)
    socket = layer.inbox.mailbox("websocket.send")
    assert await dispatcher.handle(
        "websocket.connect", {"reply_channel": socket.address, "path": "/ws", "order": 0}
    )
    assert seen == [EmailContext, SlackContext, WebSocketContext]
    assert layer.stats.dropped["malformed"] == 0
    assert await socket.get(5) == {"accept": True}
    await layer.close()
    pool.shutdown()


def test_sync_context_wraps_any_protocol_with_its_own_helpers():
    layer = get_layer("memory://")
    ctx = SyncContext(EmailContext(layer, "email.receive", {}), loop=None)  # type: ignore[arg-type]
    assert callable(ctx.reply_email) and callable(ctx.send_slack)
    with pytest.raises(AttributeError, match="respond\\(\\) is a helper of HttpContext"):
        ctx.respond  # noqa: B018
    assert not hasattr(ctx.presence, "track")


def test_the_worker_and_its_email_helpers_import_without_the_smtp_server():
    """A worker reading email parses it, bounces it and tests it with aiosmtpd absent."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["aiosmtpd"] = None  # importing it now raises ImportError
        import switchroom.worker, switchroom.worker.dispatch, switchroom.testing
        from switchroom.shared.mail import dsn_send, idempotency_key, incoming, received
        raw = b"From: a@example.com\\r\\nSubject: hi\\r\\nMessage-ID: <1@x>\\r\\n\\r\\nbody\\r\\n"
        m = received(incoming(raw, mail_from="a@example.com", rcpt_to=["b@x"], peer=None, helo=None))
        assert m["subject"] == "hi" and idempotency_key(m) == "<1@x>", m
        assert dsn_send(m, ["b@x"], "5.1.1", "550 no", "gone")["dsn"]
        server = ("aiosmtpd", "switchroom.servers.email")
        loaded = sorted(n for n, mod in sys.modules.items() if mod and n.startswith(server))
        assert not loaded, loaded
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
