"""Durable channels of the memory layer: the Redis Streams rules, kept in this process.

Nothing here outlives the process (``check`` says so); everything else is as on Redis:
entries stay until acknowledged, an entry not acknowledged within the visibility
timeout is handed out again with its attempt count raised, keys dedupe within a window.
"""

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgpack

from .durable import Delivery, Depth, DurableSettings, DurableStore, Message, entry_time
from .errors import ChannelFull, LayerError

if TYPE_CHECKING:
    from .base import BaseLayer


@dataclass
class _Pending:
    """An entry handed out: to whom, since when (monotonic), how many times in all."""

    consumer: str
    since: float
    count: int


@dataclass
class _Stream:
    """One durable channel: its entries in order, those not yet handed out, those out."""

    entries: OrderedDict[str, tuple[str, bytes]] = field(default_factory=OrderedDict)
    unread: deque[str] = field(default_factory=deque)
    pending: dict[str, _Pending] = field(default_factory=dict)
    notes: dict[str, Message] = field(default_factory=dict)


class MemoryDurable(DurableStore):
    """Durable channels in this process's memory."""

    def __init__(self, layer: "BaseLayer", settings: DurableSettings) -> None:
        super().__init__(layer, settings)
        self.streams: dict[str, _Stream] = {}
        self.seen: dict[tuple[str, str], float] = {}
        self.waiters: list[asyncio.Future[None]] = []
        self._last_ms = 0
        self._seq = 0

    def _new_id(self) -> str:
        now = int(time.time() * 1000)
        if now <= self._last_ms:
            self._seq += 1
        else:
            self._last_ms, self._seq = now, 0
        return f"{self._last_ms}-{self._seq}"

    async def _add_many(
        self, items: Sequence[tuple[str, Message, str | None]], dedupe: bool = False
    ) -> list[bool | LayerError]:
        out: list[bool | LayerError] = []
        now = time.monotonic()
        for channel, message, key in items:
            try:
                payload = self.pack(channel, message)
            except LayerError as exc:
                out.append(exc)
                continue
            stream = self.streams.setdefault(channel, _Stream())
            if dedupe and key is not None and self.seen.get((channel, key), 0.0) > now:
                out.append(False)
                continue
            if len(stream.entries) >= self.settings.capacity:
                out.append(
                    ChannelFull(f"durable channel {channel!r} is full ({self.settings.capacity} entries)")
                )
                continue
            entry_id = self._new_id()
            stream.entries[entry_id] = (key or entry_id, payload)
            stream.unread.append(entry_id)
            if dedupe and key is not None:
                self.seen[(channel, key)] = now + self.settings.dedupe_window
                if len(self.seen) > 100_000:
                    self.seen = {k: t for k, t in self.seen.items() if t > now}
            out.append(True)
        if any(o is True for o in out):
            self._wake()
        return out

    def _wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _read(self, channels: list[str], count: int, timeout: float | None) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            out = self._take(channels, count)
            if out:
                return out
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            waiter = loop.create_future()
            self.waiters.append(waiter)
            # Entries become claimable without any add: look again within the timeout.
            wait = self.settings.visibility_timeout
            try:
                await asyncio.wait_for(waiter, wait if remaining is None else min(wait, remaining))
            except TimeoutError:
                pass

    def _take(self, channels: list[str], count: int) -> list[Delivery]:
        out: list[Delivery] = []
        now = time.monotonic()
        consumer = self.layer.client_id
        for channel in channels:
            stream = self.streams.get(channel)
            if stream is None:
                continue
            for entry_id, pending in list(stream.pending.items()):
                if len(out) >= count:
                    return out
                if now - pending.since >= self.settings.visibility_timeout:
                    pending.consumer, pending.since, pending.count = consumer, now, pending.count + 1
                    out.append(self._delivery(channel, stream, entry_id, pending.count))
            while stream.unread and len(out) < count:
                entry_id = stream.unread.popleft()
                stream.pending[entry_id] = _Pending(consumer, now, 1)
                out.append(self._delivery(channel, stream, entry_id, 1))
        return out

    def _delivery(self, channel: str, stream: _Stream, entry_id: str, attempt: int) -> Delivery:
        key, payload = stream.entries[entry_id]
        note = stream.notes.get(entry_id)
        return Delivery(
            channel,
            msgpack.unpackb(payload, raw=False, strict_map_key=False),
            entry_id,
            key,
            attempt,
            entry_time(entry_id),
            dict(note) if note is not None else None,
        )

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            stream = self.streams.get(delivery.channel)
            if stream is None:
                continue
            stream.pending.pop(delivery.id, None)
            stream.notes.pop(delivery.id, None)
            if stream.entries.pop(delivery.id, None) is not None and delivery.id in stream.unread:
                stream.unread.remove(delivery.id)

    def _owned(self, delivery: Delivery) -> _Pending | None:
        stream = self.streams.get(delivery.channel)
        pending = stream.pending.get(delivery.id) if stream is not None else None
        return pending if pending is not None and pending.consumer == self.layer.client_id else None

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            pending = self._owned(delivery)
            if pending is not None:
                pending.since = time.monotonic() - self.settings.visibility_timeout
                pending.count = max(0, pending.count - 1)
        self._wake()

    async def touch(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        lost = []
        for delivery in deliveries:
            pending = self._owned(delivery)
            if pending is None:
                lost.append(delivery)
            else:
                pending.since = time.monotonic()
        return lost

    async def save_note(self, delivery: Delivery, note: Message) -> None:
        stream = self.streams.get(delivery.channel)
        if stream is not None and delivery.id in stream.entries:
            stream.notes[delivery.id] = msgpack.unpackb(msgpack.packb(note, use_bin_type=True), raw=False)

    async def depth(self, channel: str) -> Depth:
        stream = self.streams.get(channel)
        if stream is None or not stream.entries:
            return Depth(0, 0, None)
        return Depth(len(stream.entries), len(stream.pending), entry_time(next(iter(stream.entries))))

    async def take_old(self, channel: str, added_before: float, count: int = 100) -> list[Delivery]:
        stream = self.streams.get(channel)
        if stream is None:
            return []
        now = time.monotonic()
        before_ms = int(added_before * 1000)
        out = []
        for entry_id in list(stream.entries):
            if len(out) >= count or int(entry_id.partition("-")[0]) >= before_ms:
                break
            pending = stream.pending.get(entry_id)
            if pending is None:
                stream.unread.remove(entry_id)
                stream.pending[entry_id] = _Pending(self.layer.client_id, now, 0)
                out.append(self._delivery(channel, stream, entry_id, 0))
            elif now - pending.since >= self.settings.visibility_timeout:
                pending.consumer, pending.since = self.layer.client_id, now
                out.append(self._delivery(channel, stream, entry_id, pending.count))
        return out

    async def check(self) -> list[str]:
        return ["the memory layer keeps durable channels in this process only: they do not survive a restart"]

    def clear(self) -> None:
        self.streams.clear()
        self.seen.clear()

    async def close(self) -> None:
        self._wake()
