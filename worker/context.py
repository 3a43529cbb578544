"""The object every consumer gets beside its message: reply helpers for each protocol,
group membership and broadcast, and the layer itself (async, or blocking for sync code)."""

import asyncio
import logging
from typing import Any

from switchroom.layers import BaseLayer, Delivery, GroupReach, SyncLayer

from . import replies
from .presence import BlockingPresence, PresenceHelpers

log = logging.getLogger("switchroom.worker")


class Context:
    """Helpers bound to one incoming message; every method is a coroutine."""

    def __init__(
        self,
        layer: BaseLayer,
        channel: str,
        message: dict[str, Any],
        bounce_sender: str | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        self.layer = layer
        self.channel = channel
        self.message = message
        self.reply_channel: str | None = message.get("reply_channel")
        self.response_started = False
        self.bounce_sender = bounce_sender
        # On a durable channel: the entry, its idempotency key and which delivery this is.
        self.delivery = delivery
        self.idempotency_key = delivery.key if delivery is not None else None
        self.attempt = delivery.attempt if delivery is not None else 1
        # Presence of this socket or sender (``presence.py``).
        self.presence = PresenceHelpers(self)

    def _need_reply_channel(self) -> str:
        if not self.reply_channel:
            raise RuntimeError(f"a {self.channel} message has no reply_channel to answer on")
        return self.reply_channel

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

    async def reply_email(self, text: str | None = None, html: str | None = None, **fields: Any) -> None:
        """Answer the email being handled, threaded with In-Reply-To and References."""
        message = replies.email_reply(self.message, text=text, html=html, **fields)
        await self.layer.send("email.send", message)

    async def send_email(
        self, to: list[str] | str, subject: str = "", text: str | None = None, **fields: Any
    ) -> None:
        """Send a new email through the email server."""
        recipients = [to] if isinstance(to, str) else list(to)
        await self.layer.send("email.send", {"to": recipients, "subject": subject, "text": text, **fields})

    async def post_slack(self, text: str | None = None, thread: bool = False, **fields: Any) -> None:
        """Post to the Slack channel the event came from (into its thread if ``thread``);
        ``method=`` calls another Web API method with the fields as its arguments. It goes
        on ``slack.send``, which any Slack server takes: the one that received the event
        may have stopped since (events are durable)."""
        await self.layer.send("slack.send", replies.slack_post(self.message, text, thread, **fields))

    async def answer_slack(self, **ack: Any) -> None:
        """Answer a slash command or an interaction inside Slack's ack: a message (``text``,
        ``blocks``, ``response_type``) or, for a modal, ``response_action=...``. If it comes
        after the server's ``--ack-wait``, a message goes to the event's response_url and
        a response_action is a dead letter on ``slack.send.failed``."""
        await self.layer.send(self._need_reply_channel(), {"ack": ack})

    async def group_add(self, group: str, channel: str | None = None) -> None:
        """Add ``channel`` (default: this message's reply channel) to ``group``."""
        await self.layer.group_add(group, channel or self._need_reply_channel())

    async def group_discard(self, group: str, channel: str | None = None) -> None:
        """Remove ``channel`` (default: this message's reply channel) from ``group``."""
        await self.layer.group_discard(group, channel or self._need_reply_channel())

    async def group_send(
        self, group: str, message: dict[str, Any] | None = None, **fields: Any
    ) -> GroupReach:
        """Send to every member of ``group``; keyword fields make a WebSocket frame, e.g. text=...
        Returns the members reached and those skipped (full, dead, lapsed)."""
        return await self.layer.group_send(group, message if message is not None else fields)


def _header_pairs(headers: dict[str, str] | list[tuple[bytes, bytes]] | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(_latin1(k).lower(), _latin1(v)) for k, v in items]


def _latin1(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


class SyncContext:
    """The same helpers as plain blocking calls, for consumers running on worker threads."""

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
        self.presence = BlockingPresence(context.presence, loop)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._context, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop).result()

        blocking.__doc__ = method.__doc__
        return blocking
