"""The object every consumer gets beside its message, one context class per protocol, and
the messages its helpers send back.

``Context`` holds what any consumer may use (the layer, groups, presence lookups, sending
a new email or Slack post); ``HttpContext``, ``WebSocketContext``, ``EmailContext`` and
``SlackContext`` add the answers of their own protocol and nothing else, so a helper of
another protocol (``ctx.accept()`` in an HTTP consumer) raises ``AttributeError`` at the
call, naming the context it belongs to. ``SyncContext`` offers any of them as blocking
calls to consumers running on worker threads.

The answers themselves are built by pure functions at the end of this module: HTTP
responses (split into chunks that fit the layer), WebSocket frames, email replies and
Slack posts (bounces are ``switchroom.shared.mail.dsn``'s). The dispatcher and the ASGI
bridge use them for the answers they give, and a Channels consumer can too.
"""

import asyncio
import functools
import json
import logging
from email.utils import parseaddr
from typing import Any

from switchroom.layers import BaseLayer, Delivery, GroupReach, SyncLayer
from switchroom.layers.streams import pieces
from switchroom.shared.messages import EMAIL_SEND, SLACK_SEND, WEBSOCKET_SEND, validate

from .presence import BlockingPresence, BlockingSocketPresence, PresenceHelpers, SocketPresence

log = logging.getLogger("switchroom.worker")


class Context:
    """What every protocol's context has; every method is a coroutine."""

    def __init__(
        self,
        layer: BaseLayer,
        channel: str,
        message: dict[str, Any],
        delivery: Delivery | None = None,
    ) -> None:
        self.layer = layer
        self.channel = channel
        self.message = message
        self.reply_channel: str | None = message.get("reply_channel")
        self.response_started = False
        # On a durable channel: the entry, its idempotency key and which delivery this is.
        self.delivery = delivery
        self.idempotency_key = delivery.key if delivery is not None else None
        self.attempt = delivery.attempt if delivery is not None else 1

    @functools.cached_property
    def presence(self) -> PresenceHelpers:
        """Presence helpers for this consumer (made on first use: most consumers never ask)."""
        return self._presence()

    def _presence(self) -> PresenceHelpers:
        return PresenceHelpers(self)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a name the class lacks: say whose helper it is instead of just "no attribute".
        owners = [c.__name__ for c in PROTOCOL_CONTEXTS.values() if name in vars(c)]
        if not owners or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise AttributeError(
            f"{name}() is a helper of {' and '.join(owners)}, but this consumer handles "
            f"{self.channel} and has a {type(self).__name__}"
        )

    def _need_reply_channel(self) -> str:
        if not self.reply_channel:
            raise RuntimeError(f"a {self.channel} message has no reply_channel to answer on")
        return self.reply_channel

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``."""
        await self.layer.group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``."""
        await self.layer.group_discard(group, channel)

    async def group_send(
        self,
        group: str,
        message: dict[str, Any] | None = None,
        *,
        text: str | None = None,
        bytes: bytes | None = None,
        close: bool | int | None = None,
        reason: str | None = None,
    ) -> GroupReach:
        """Send ``message`` to every member of ``group``, or a WebSocket frame built from
        ``text=`` / ``bytes=`` / ``close=`` (checked against ``websocket.send`` here).
        Returns the members reached and those skipped (full, dead, lapsed)."""
        framed = any(v is not None for v in (text, bytes, close, reason))
        if (message is None) == (not framed):
            raise TypeError("group_send takes a message dict or frame keywords (text=, bytes=, close=)")
        if message is None:
            frame = websocket_frame(text, bytes, close=close, reason=reason)
            message = validate(WEBSOCKET_SEND, frame)
        return await self.layer.group_send(group, message)

    async def send_email(
        self, to: list[str] | str, subject: str = "", text: str | None = None, **fields: Any
    ) -> None:
        """Send a new email through the email server (fields as ``email.send``; a message
        that does not fit the format raises ``MessageFormatError`` here)."""
        recipients = [to] if isinstance(to, str) else list(to)
        message = {"to": recipients, "subject": subject, "text": text, **fields}
        await self.layer.send(EMAIL_SEND, validate(EMAIL_SEND, message))

    async def send_slack(self, channel: str | None, text: str | None = None, **fields: Any) -> None:
        """Post ``text`` to Slack channel ``channel`` (fields as ``slack.send``: ``blocks``,
        ``thread_ts``, ``team``, or ``method=`` for another Web API method; checked here)."""
        message = {"channel": channel, "text": text, **fields}
        await self.layer.send(SLACK_SEND, validate(SLACK_SEND, message))


class HttpContext(Context):
    """The context of ``http.request`` and ``http.disconnect``: answering the request."""

    async def respond(
        self,
        body: Any = b"",
        status: int = 200,
        headers: dict[str, str] | list[tuple[bytes, bytes]] | None = None,
        content_type: str | None = None,
    ) -> None:
        """Answer an HTTP request; ``body`` may be bytes, str or JSON-able data."""
        data, ctype = encode_body(body, content_type)
        length = str(len(data)).encode()
        if headers is None:
            pairs = [[b"content-type", _content_type(ctype)], [b"content-length", length]]
        else:
            pairs = _header_pairs(headers)
            if not any(k == b"content-type" for k, _ in pairs):
                pairs.append([b"content-type", _content_type(ctype)])
            if not any(k == b"content-length" for k, _ in pairs):
                pairs.append([b"content-length", length])
        chunk_size = self.layer.chunk_size
        if len(data) <= chunk_size:
            await self.send_response([_first_part(status, pairs, data, False)])
        else:
            await self.send_response(http_response(status, data, pairs, chunk_size))

    async def send_response(self, messages: list[dict[str, Any]]) -> None:
        """Send prepared ``http.response`` / ``http.response.chunk`` messages in order."""
        channel = self._need_reply_channel()
        for message in messages:
            if "status" in message:
                self.response_started = True
            await self.layer.send(channel, message)


class WebSocketContext(Context):
    """The context of a socket's ``connect``, ``receive`` and ``disconnect``: the handshake,
    frames, and this socket's groups and presence."""

    def _presence(self) -> SocketPresence:
        return SocketPresence(self)

    async def accept(self, subprotocol: str | None = None) -> None:
        """Accept a WebSocket handshake."""
        await self._frame(websocket_frame(accept=True, subprotocol=subprotocol))

    async def reject(self) -> None:
        """Refuse a WebSocket handshake (the client gets HTTP 403)."""
        await self._frame(websocket_frame(accept=False))

    async def send(self, text: str | None = None, bytes: bytes | None = None) -> None:
        """Send a WebSocket frame (this also accepts a pending handshake)."""
        if (text is None) == (bytes is None):
            raise ValueError("send exactly one of text= and bytes=")
        await self._frame({"text": text} if bytes is None else {"bytes": bytes})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the WebSocket with ``code``."""
        await self._frame(websocket_frame(close=code, reason=reason))

    async def _frame(self, frame: dict[str, Any]) -> None:
        self.response_started = True
        await self.layer.send(self._need_reply_channel(), frame)

    async def group_add(self, group: str, channel: str | None = None) -> None:
        """Add ``channel`` (default: this socket) to ``group``."""
        await self.layer.group_add(group, channel or self._need_reply_channel())

    async def group_discard(self, group: str, channel: str | None = None) -> None:
        """Remove ``channel`` (default: this socket) from ``group``."""
        await self.layer.group_discard(group, channel or self._need_reply_channel())


class EmailContext(Context):
    """The context of ``email.receive``: answering the email."""

    async def reply_email(self, text: str | None = None, html: str | None = None, **fields: Any) -> None:
        """Answer the email being handled, threaded with In-Reply-To and References."""
        message = email_reply(self.message, text=text, html=html, **fields)
        await self.layer.send(EMAIL_SEND, validate(EMAIL_SEND, message))


class SlackContext(Context):
    """The context of ``slack.event``: answering the event where it happened."""

    async def post_slack(self, text: str | None = None, thread: bool = False, **fields: Any) -> None:
        """Post to the Slack channel the event came from (into its thread if ``thread``);
        ``method=`` calls another Web API method with the fields as its arguments. It goes
        on ``slack.send``, which any Slack server takes: the one that received the event
        may have stopped since (events are durable)."""
        message = slack_post(self.message, text, thread, **fields)
        await self.layer.send(SLACK_SEND, validate(SLACK_SEND, message))

    async def answer_slack(self, **ack: Any) -> None:
        """Answer a slash command or an interaction inside Slack's ack: a message (``text``,
        ``blocks``, ``response_type``) or, for a modal, ``response_action=...``. If it comes
        after the server's ``--ack-wait``, a message goes to the event's response_url and
        a response_action is a dead letter on ``slack.send.failed``."""
        await self.layer.send(self._need_reply_channel(), {"ack": ack})


# The context of each protocol, by the name the docs use.
PROTOCOL_CONTEXTS: dict[str, type[Context]] = {
    "http": HttpContext,
    "websocket": WebSocketContext,
    "email": EmailContext,
    "slack": SlackContext,
}


def _header_pairs(headers: dict[str, str] | list[tuple[bytes, bytes]]) -> list[list[bytes]]:
    items = headers.items() if isinstance(headers, dict) else headers
    return [[_latin1(k).lower(), _latin1(v)] for k, v in items]


@functools.lru_cache(maxsize=64)
def _content_type(ctype: str) -> bytes:
    """A content type's header value (the few an app uses, encoded once)."""
    return ctype.encode("latin-1")


def _latin1(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


class SyncContext:
    """Any protocol's context with its coroutines as plain blocking calls, for consumers
    running on worker threads; it has exactly the helpers of the context it wraps."""

    def __init__(self, context: Context, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop
        self.layer = SyncLayer(context.layer, loop=loop)
        self.channel = context.channel
        self.message = context.message
        self.reply_channel = context.reply_channel
        self.delivery = context.delivery
        self.idempotency_key = context.idempotency_key
        self.attempt = context.attempt
        presence = context.presence
        self.presence = (
            BlockingSocketPresence(presence, loop)
            if isinstance(presence, SocketPresence)
            else BlockingPresence(presence, loop)
        )

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._context, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop).result()

        blocking.__doc__ = method.__doc__
        return blocking


# -- the reply messages, as plain data ------------------------------------------------------


def encode_body(body: Any, content_type: str | None) -> tuple[bytes, str]:
    """Bytes and content type for a body given as bytes, str or JSON-able data."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), content_type or "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), content_type or "text/plain; charset=utf-8"
    return json.dumps(body).encode("utf-8"), content_type or "application/json"


def http_response(
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | list[list[bytes]],
    chunk_size: int,
) -> list[dict[str, Any]]:
    """One ``http.response`` and as many ``http.response.chunk`` messages as the body needs,
    each with at most ``chunk_size`` (the layer's ``chunk_size``) body bytes."""
    parts = pieces(body, chunk_size)
    first = _first_part(status, [[bytes(k), bytes(v)] for k, v in headers], parts[0], len(parts) > 1)
    rest = [{"content": p, "more_content": i < len(parts) - 2} for i, p in enumerate(parts[1:])]
    return [first, *rest]


def _first_part(status: int, headers: list[list[bytes]], content: bytes, more: bool) -> dict[str, Any]:
    """An ``http.response`` message from headers already in the message's form."""
    return {"status": status, "headers": headers, "content": content, "more_content": more}


def plain_response(status: int, text: str, chunk_size: int) -> list[dict[str, Any]]:
    """A short text/plain response, e.g. 404 or 500."""
    body = text.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    return http_response(status, body, headers, chunk_size)


def websocket_frame(
    text: str | None = None,
    data: bytes | None = None,
    accept: bool | None = None,
    close: bool | int | None = None,
    subprotocol: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A ``websocket.send`` message with only the fields that are set."""
    fields = {
        "text": text,
        "bytes": data,
        "accept": accept,
        "close": close,
        "subprotocol": subprotocol,
        "reason": reason,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _address(value: str | None) -> str:
    return parseaddr(value or "")[1]


def email_reply(original: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An ``email.send`` answering ``original``: to its Reply-To/From, threaded by Message-ID."""
    to = [a for a in (_address(x) for x in original.get("reply_to") or []) if a]
    if not to:
        to = [a for a in (_address(original.get("from")), original.get("mail_from")) if a][:1]
    if not to:
        raise ValueError("the email has no sender address to reply to")
    subject = original.get("subject") or ""
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}".strip()
    message_id = original.get("message_id")
    references = [*_references(original), message_id] if message_id else _references(original)
    message = {"to": to, "subject": subject, "in_reply_to": message_id, "references": references}
    message.update(fields)
    return message


def _references(original: dict[str, Any]) -> list[str]:
    for name, value in original.get("headers") or []:
        if name.lower() == "references":
            return value.split()
    return []


def slack_post(event: dict[str, Any], text: str | None, thread: bool, **fields: Any) -> dict[str, Any]:
    """A ``slack.send`` answering ``event`` in its channel (in its thread if ``thread``)."""
    message = {"channel": event.get("channel"), "team": event.get("team"), "text": text}
    if thread:
        message["thread_ts"] = event.get("thread_ts") or event.get("ts")
    message.update(fields)
    return message
