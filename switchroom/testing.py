"""A test client for worker apps: the app's worker runs in the test's own event loop on
the in-memory layer, and the client plays the interface servers — HTTP requests,
WebSocket sessions, emails and Slack events — so a consumer is tested with no server,
no Redis and no subprocess.

    async with TestClient(app) as client:
        response = await client.get("/hello")
        assert response.status == 200 and response.text == "hello"
        async with client.websocket("/room") as ws:
            await ws.send_text("hi")
            assert await ws.receive_text() == "hi"
        await client.email("ann@example.com", ["room@chat.localhost"], subject="hi", text="hello")
        assert (await client.sent("email.send"))["subject"] == "Re: hi"

The messages are the ones the servers put on the layer (``docs/messages.md``), built by
the same code where the servers have it in pure form (email parsing, Slack events); the
worker is the one ``switchroom worker`` runs.
"""

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from types import TracebackType
from typing import Any, Self

from switchroom.layers import BaseLayer, get_layer
from switchroom.layers.inbox import Mailbox
from switchroom.shared.mail import idempotency_key, incoming
from switchroom.shared.messages import (
    EMAIL_RECEIVE,
    HTTP_REQUEST,
    HTTP_RESPONSE,
    SLACK_EVENT,
    SLACK_SEND,
    WEBSOCKET_CONNECT,
    WEBSOCKET_DISCONNECT,
    WEBSOCKET_RECEIVE,
    WEBSOCKET_SEND,
)
from switchroom.worker.app import App
from switchroom.worker.runner import Worker

__all__ = ["Response", "SlackEvent", "TestClient", "WebSocketClosed", "WebSocketRejected", "WebSocketSession"]

Headers = Sequence[tuple[bytes | str, bytes | str]]


def _header_pairs(headers: Headers) -> list[list[bytes]]:
    """Header pairs as the servers send them: lower-case byte names, byte values."""
    return [
        [
            (k.encode("latin-1") if isinstance(k, str) else k).lower(),
            v.encode("latin-1") if isinstance(v, str) else v,
        ]
        for k, v in headers
    ]


@dataclass
class Response:
    """A whole HTTP response as the server would write it."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    parts: int = 1

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), decoded as Latin-1."""
        wanted = name.lower().encode("latin-1")
        return next((v.decode("latin-1") for k, v in self.headers if k.lower() == wanted), None)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class WebSocketRejected(Exception):
    """The app refused the handshake (the server would answer it with HTTP 403)."""


class WebSocketClosed(Exception):
    """The app closed the socket; ``code`` and ``reason`` are what the client would see."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


@dataclass
class SlackEvent:
    """What the app answered to one Slack event: posts to its reply channel and its ack."""

    message: dict[str, Any]
    replies: Mailbox = field(repr=False)

    async def reply(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next ``slack.send`` or ``slack.ack`` the app sent on the event's reply channel."""
        message = await self.replies.get(timeout)
        if message is None:
            raise TimeoutError(f"no answer to the {self.message['type']} event within {timeout} s")
        return message


class TestClient:
    """Runs ``app`` in a worker on a private in-memory layer while the client is open.

    ``worker_options`` go to :class:`~switchroom.worker.runner.Worker` (``concurrency``,
    ``threads``, ``grace``...). ``timeout`` bounds every wait for an answer: an app that
    does not answer fails the test with ``TimeoutError`` instead of hanging it.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(
        self, app: App, *, layer: str = "memory://", timeout: float = 5.0, **worker_options: Any
    ) -> None:
        self.app = app
        self.layer: BaseLayer = get_layer(layer)
        self.timeout = timeout
        self.worker = Worker(app, self.layer, poll=0.05, **worker_options)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.layer.inbox.start()
        self._task = asyncio.create_task(self.worker.run())
        serving = asyncio.create_task(self.worker.serving.wait())
        await asyncio.wait({self._task, serving}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            serving.cancel()
            if self._task.done():
                self._task.result()
            raise TimeoutError(f"the worker did not start within {self.timeout} s")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.worker.stop()
        if self._task is not None:
            await asyncio.wait_for(self._task, self.worker.grace + self.timeout)
        await self.layer.close()

    # -- HTTP -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: bytes | str = b"",
        headers: Headers = (),
        body: bytes | str = b"",
        json_body: Any = None,
    ) -> Response:
        """Send one HTTP request as ``switchroom http`` would and wait for the whole response."""
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            headers = [*headers, (b"content-type", b"application/json")]
        data = body.encode("utf-8") if isinstance(body, str) else body
        pairs = [[b"host", b"testserver"], *_header_pairs(headers)]
        if data:
            pairs.append([b"content-length", str(len(data)).encode()])
        reply = self.layer.inbox.mailbox(HTTP_RESPONSE)
        try:
            await self.layer.send(
                HTTP_REQUEST,
                {
                    "reply_channel": reply.address,
                    "http_version": "1.1",
                    "method": method.upper(),
                    "scheme": "http",
                    "path": path,
                    "query_string": query.encode("latin-1") if isinstance(query, str) else query,
                    "root_path": "",
                    "headers": pairs,
                    "body": data,
                    "client": ["127.0.0.1", 50000],
                    "server": ["testserver", 80],
                },
            )
            first = await self._answer(reply, f"{method} {path}")
            parts = [first]
            while parts[-1].get("more_content"):
                parts.append(await self._answer(reply, f"the rest of {method} {path}"))
        finally:
            reply.close()
        return Response(
            status=first["status"],
            headers=[(bytes(k), bytes(v)) for k, v in first.get("headers", [])],
            body=b"".join(p.get("content", b"") for p in parts),
            parts=len(parts),
        )

    async def get(self, path: str, **options: Any) -> Response:
        """``request("GET", path, ...)``."""
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> Response:
        """``request("POST", path, ...)``."""
        return await self.request("POST", path, **options)

    # -- WebSocket ------------------------------------------------------------------

    def websocket(
        self, path: str, *, query: bytes | str = b"", headers: Headers = (), subprotocols: Iterable[str] = ()
    ) -> "WebSocketSession":
        """A WebSocket session, opened by ``async with`` (the handshake waits for the app)."""
        return WebSocketSession(self, path, query, headers, list(subprotocols))

    # -- email and Slack ----------------------------------------------------------------

    async def email(
        self,
        mail_from: str,
        to: Sequence[str],
        *,
        subject: str = "",
        text: str = "",
        headers: Sequence[tuple[str, str]] = (),
        raw: bytes | None = None,
    ) -> str:
        """Deliver an email to the app as ``switchroom email`` does after its 250 (a durable
        ``email.receive`` entry keyed by its Message-ID); returns that Message-ID.
        ``raw`` is sent as it is; otherwise a plain-text message is composed."""
        if raw is None:
            composed = EmailMessage()
            composed["From"] = mail_from
            composed["To"] = ", ".join(to)
            composed["Subject"] = subject
            composed["Message-ID"] = make_msgid(domain="testclient.localhost")
            for name, value in headers:
                composed[name] = value
            composed.set_content(text)
            raw = bytes(composed)
        message = incoming(
            raw, mail_from=mail_from, rcpt_to=list(to), peer=["127.0.0.1", 0], helo="testclient"
        )
        await self.layer.durable.add(EMAIL_RECEIVE, message, key=idempotency_key(message), dedupe=True)
        return message["message_id"] or idempotency_key(message)

    async def slack_event(
        self, event: dict[str, Any], *, team: str = "T0TEST", event_id: str | None = None
    ) -> SlackEvent:
        """Deliver a Slack event (as Slack's payload has it) to the app as ``switchroom slack``
        does: a durable ``slack.event`` plus its per-type channel, with a reply channel whose
        messages the returned :class:`SlackEvent` collects."""
        from switchroom.servers.slack import translate

        replies = self.layer.inbox.mailbox(SLACK_SEND)
        message = translate.event_message(
            event, reply_channel=replies.address, mode="socket", team=team, event_id=event_id
        )
        await self.layer.durable.add(SLACK_EVENT, message, key=event_id, dedupe=event_id is not None)
        await self.layer.send(translate.event_channel(message["type"]), message)
        return SlackEvent(message, replies)

    async def sent(self, channel: str) -> dict[str, Any]:
        """The next message the app sent on ``channel`` (``email.send``, ``slack.send``, a
        channel of its own...), waiting up to the client's timeout."""
        name, message = await self.layer.receive([channel], timeout=self.timeout)
        if name is None:
            raise TimeoutError(f"nothing was sent on {channel} within {self.timeout} s")
        return message

    async def _answer(self, mailbox: Mailbox, what: str) -> dict[str, Any]:
        message = await mailbox.get(self.timeout)
        if message is None:
            raise TimeoutError(f"the app did not answer {what} within {self.timeout} s")
        return message


class WebSocketSession:
    """One WebSocket as the server holds it: frames in order, the app's frames read back."""

    def __init__(
        self, client: TestClient, path: str, query: bytes | str, headers: Headers, subprotocols: list[str]
    ) -> None:
        self.client = client
        self.path = path
        self.query = query.encode("latin-1") if isinstance(query, str) else query
        self.headers = _header_pairs(headers)
        self.subprotocols = subprotocols
        self.subprotocol: str | None = None
        self.closed: WebSocketClosed | None = None
        self._order = 0
        self._mailbox: Mailbox | None = None
        self._pending: list[dict[str, Any]] = []
        # Where the socket's later messages go: the worker address of an ASGI 3 app's accept.
        self._target: str | None = None

    async def __aenter__(self) -> Self:
        layer = self.client.layer
        self._mailbox = layer.inbox.mailbox(WEBSOCKET_SEND)
        await layer.send(
            WEBSOCKET_CONNECT,
            {
                "reply_channel": self._mailbox.address,
                "path": self.path,
                "scheme": "ws",
                "query_string": self.query,
                "root_path": "",
                "headers": [[b"host", b"testserver"], *self.headers],
                "client": ["127.0.0.1", 50000],
                "server": ["testserver", 80],
                "order": 0,
                "subprotocols": self.subprotocols,
            },
        )
        first = await self.client._answer(self._mailbox, f"the handshake of {self.path}")
        if first.get("accept") is False or (first.get("close") and not first.get("accept")):
            self._mailbox.close()
            raise WebSocketRejected(f"the app refused the WebSocket on {self.path}")
        self.subprotocol = first.get("subprotocol")
        self._target = first.get("worker")
        if "text" in first or "bytes" in first or first.get("close"):
            self._pending.append(first)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.closed is None:
            await self.close()
        elif self._mailbox is not None:
            self._mailbox.close()

    async def send_text(self, text: str) -> None:
        """A text frame from the client."""
        await self._send({"text": text})

    async def send_bytes(self, data: bytes) -> None:
        """A binary frame from the client."""
        await self._send({"bytes": data})

    async def send_json(self, value: Any) -> None:
        """A text frame holding ``value`` as JSON."""
        await self.send_text(json.dumps(value))

    async def receive(self) -> dict[str, Any]:
        """The app's next frame (a ``websocket.send`` message with ``text`` or ``bytes``);
        :class:`WebSocketClosed` once the app closed the socket."""
        if self.closed is not None:
            raise self.closed
        assert self._mailbox is not None, "use the session in `async with`"
        message = (
            self._pending.pop(0)
            if self._pending
            else await self.client._answer(self._mailbox, f"a frame on {self.path}")
        )
        if message.get("close"):
            code = 1000 if message["close"] is True else int(message["close"])
            self.closed = WebSocketClosed(code, message.get("reason") or "")
            self._mailbox.close()
            if "text" not in message and "bytes" not in message:
                raise self.closed
        return message

    async def receive_text(self) -> str:
        """The app's next frame, which must be text."""
        message = await self.receive()
        if message.get("text") is None:
            raise AssertionError(f"expected a text frame, got {message!r}")
        return message["text"]

    async def receive_bytes(self) -> bytes:
        """The app's next frame, which must be binary."""
        message = await self.receive()
        if message.get("bytes") is None:
            raise AssertionError(f"expected a binary frame, got {message!r}")
        return message["bytes"]

    async def receive_json(self) -> Any:
        """The app's next text frame, parsed as JSON."""
        return json.loads(await self.receive_text())

    async def close(self, code: int = 1000) -> None:
        """The client closes: the app gets ``websocket.disconnect`` with ``code``."""
        if self.closed is not None:
            return
        self.closed = WebSocketClosed(code)
        self._order += 1
        assert self._mailbox is not None
        await self.client.layer.send(
            self._target or WEBSOCKET_DISCONNECT,
            {"reply_channel": self._mailbox.address, "path": self.path, "code": code, "order": self._order},
        )
        self._mailbox.close()

    async def _send(self, frame: dict[str, Any]) -> None:
        if self.closed is not None:
            raise self.closed
        assert self._mailbox is not None, "use the session in `async with`"
        self._order += 1
        await self.client.layer.send(
            self._target or WEBSOCKET_RECEIVE,
            {"reply_channel": self._mailbox.address, "path": self.path, "order": self._order, **frame},
        )
