"""``ctx.presence``: presence for the socket or sender a consumer is handling.

Native routes call these instead of ``layer.presence`` so they need no addresses: a socket
is tracked under its reply channel and watches as WebSocket frames (``track`` is a
WebSocket consumer's); a participant without a socket (an email or Slack sender) is
``seen`` for a while after each message.
"""

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

from switchroom.layers.presence import Metas

if TYPE_CHECKING:
    from .context import Context

DEFAULT_SEEN_TTL = 600.0


class PresenceHelpers:
    """Presence calls any consumer may make (``docs/presence.md``): who is in a group, and
    a participant without a socket (an email or Slack sender) seen for a while."""

    def __init__(self, ctx: "Context") -> None:
        self._ctx = ctx

    async def list(self, group: str) -> Metas:
        """The members of ``group``: each key with the metas of its sockets and senders."""
        return await self._ctx.layer.presence.list(group)

    async def seen(
        self, group: str, key: str, meta: dict[str, Any] | None = None, ttl: float = DEFAULT_SEEN_TTL
    ) -> None:
        """Make ``key`` present in ``group`` for ``ttl`` seconds from now, without a socket
        (the sender of an email or a Slack message); seen again, its time starts over."""
        address = "presence-seen." + hashlib.blake2s(key.encode(), digest_size=12).hexdigest()
        await self._ctx.layer.presence.track(group, address, key, meta, ttl=ttl)


class SocketPresence(PresenceHelpers):
    """A WebSocket consumer's presence: this socket tracked under its reply channel, and
    watching the group as JSON text frames."""

    async def track(
        self, group: str, key: str, meta: dict[str, Any] | None = None, diffs: bool = True
    ) -> None:
        """Make this socket present in ``group`` under ``key`` (a user id) with ``meta``; with
        ``diffs`` it gets the list now and each change after (JSON text frames)."""
        await self._ctx.layer.presence.track(
            group, self._ctx._need_reply_channel(), key, meta, diffs="frame" if diffs else None
        )

    async def untrack(self, group: str) -> None:
        """Remove this socket from ``group`` (call it on disconnect)."""
        await self._ctx.layer.presence.untrack(group, self._ctx._need_reply_channel())


class BlockingPresence:
    """The same helpers as blocking calls, for consumers running on worker threads."""

    def __init__(self, helpers: PresenceHelpers, loop: asyncio.AbstractEventLoop) -> None:
        self._helpers = helpers
        self._loop = loop

    def list(self, group: str) -> Metas:
        """As ``PresenceHelpers.list``."""
        return self._run(self._helpers.list(group))

    def seen(
        self, group: str, key: str, meta: dict[str, Any] | None = None, ttl: float = DEFAULT_SEEN_TTL
    ) -> None:
        """As ``PresenceHelpers.seen``."""
        self._run(self._helpers.seen(group, key, meta, ttl))

    def _run(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()


class BlockingSocketPresence(BlockingPresence):
    """A WebSocket consumer's presence as blocking calls."""

    _helpers: SocketPresence

    def track(self, group: str, key: str, meta: dict[str, Any] | None = None, diffs: bool = True) -> None:
        """As ``SocketPresence.track``."""
        self._run(self._helpers.track(group, key, meta, diffs))

    def untrack(self, group: str) -> None:
        """As ``SocketPresence.untrack``."""
        self._run(self._helpers.untrack(group))
