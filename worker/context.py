"""The object every consumer gets beside its message: one context class per protocol.

``Context`` holds what any consumer may use (the layer, groups, presence lookups, sending
a new email or Slack post); ``HttpContext``, ``WebSocketContext``, ``EmailContext`` and
``SlackContext`` add the answers of their own protocol and nothing else, so a helper of
another protocol (``ctx.accept()`` in an HTTP consumer) raises ``AttributeError`` at the
call, naming the context it belongs to. ``SyncContext`` offers any of them as blocking
calls to consumers running on worker threads.
"""

import asyncio
import logging
from typing import Any

from switchroom.layers import BaseLayer, Delivery, GroupReach, SyncLayer
from switchroom.shared.messages import EMAIL_SEND, SLACK_SEND, WEBSOCKET_SEND, validate

from . import replies
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
        self.presence = self._presence()

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
            frame = replies.websocket_frame(text, bytes, close=close, reason=reason)
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
        data, ctype = replies.encode_body(body, content_type)
        pairs = _header_pairs(headers)
        if not any(k == b"content-type" for k, _ in pairs):
            pairs.append((b"content-type", ctype.encode("latin-1")))
        if not any(k == b"content-length" for k, _ in pairs):
            pairs.append((b"content-length", str(len(data)).encode()))
        await self.send_response(replies.http_response(status, data, pairs, self.layer.chunk_size))

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
        await self._frame(replies.websocket_frame(accept=True, subprotocol=subprotocol))

    async def reject(self) -> None:
        """Refuse a WebSocket handshake (the client gets HTTP 403)."""
        await self._frame(replies.websocket_frame(accept=False))

    async def send(self, text: str | None = None, bytes: bytes | None = None) -> None:
        """Send a WebSocket frame (this also accepts a pending handshake)."""
        if (text is None) == (bytes is None):
            raise ValueError("send exactly one of text= and bytes=")
        await self._frame(replies.websocket_frame(text=text, data=bytes))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the WebSocket with ``code``."""
        await self._frame(replies.websocket_frame(close=code, reason=reason))

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
        message = replies.email_reply(self.message, text=text, html=html, **fields)
        await self.layer.send(EMAIL_SEND, validate(EMAIL_SEND, message))


class SlackContext(Context):
    """The context of ``slack.event``: answering the event where it happened."""

    async def post_slack(self, text: str | None = None, thread: bool = False, **fields: Any) -> None:
        """Post to the Slack channel the event came from (into its thread if ``thread``);
        ``method=`` calls another Web API method with the fields as its arguments. It goes
        on ``slack.send``, which any Slack server takes: the one that received the event
        may have stopped since (events are durable)."""
        message = replies.slack_post(self.message, text, thread, **fields)
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


def _header_pairs(headers: dict[str, str] | list[tuple[bytes, bytes]] | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(_latin1(k).lower(), _latin1(v)) for k, v in items]


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
