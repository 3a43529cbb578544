"""The channel-layer contract shared by every backend.

``BaseLayer`` holds what does not depend on storage: configuration (capacity, expiry,
size limit, liveness), name validation, msgpack serialisation, ``new_channel`` and the
inboxes that read process-specific (``!``) channels. Backends implement a handful of
storage primitives (``send_many``, ``_receive_queues``, groups, ``_announce``, ``flush``,
``close``).

Every ``!`` channel of a process is an address in that process's inbox (``inbox.py``):
one queue per process, read by the inbox alone. ``receive`` reads the other channels.
"""

import fnmatch
import re
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgpack

from .durable import DurableSettings, DurableStore
from .errors import ChannelFull, InvalidChannelName, InvalidMessage, LayerError, MessageTooLarge, ReceiverGone
from .inbox import Inbox
from .names import is_process_prefix, queue_name, validate_channel, validate_group
from .presence import DEFAULT_INTERVAL as DEFAULT_PRESENCE_INTERVAL
from .presence import DEFAULT_MAX_META_SIZE
from .stats import GroupReach, LayerStats
from .tracking import Presence, PresenceStore

Message = dict[str, Any]

DEFAULT_CAPACITY = 100
DEFAULT_PROCESS_CAPACITY = 10_000
DEFAULT_EXPIRY = 60.0
DEFAULT_GROUP_EXPIRY = 86_400.0
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
DEFAULT_HEARTBEAT_INTERVAL = 1.0
DEFAULT_LIVENESS_TIMEOUT = 5.0
# A packer keeps its buffer (256 KiB at first, grown to the largest message it packed); one
# that packed more than this is not kept for reuse.
PACKER_BUFFER = 256 * 1024
# Packers not in use. A call takes one (or makes one when none is free), so two threads, or
# a pack nested in another, never share one.
_packers: list[msgpack.Packer] = []


def packb(message: Any) -> bytes:
    """``msgpack.packb(message, use_bin_type=True)`` with a reused packer: making a packer
    costs more than packing a small message."""
    try:
        packer = _packers.pop()
    except IndexError:
        packer = msgpack.Packer(use_bin_type=True)
    payload = packer.pack(message)
    if len(payload) <= PACKER_BUFFER:
        _packers.append(packer)
    return payload


# Room in a message for everything but a payload chunk (HTTP headers are capped below it);
# a layer with a small size limit keeps at least three quarters of it for payload.
ENVELOPE_ROOM = 64 * 1024


class BaseLayer(ABC):
    """An asynchronous channel layer; see ``docs/layers.md`` for the contract."""

    extensions: Sequence[str] = ("groups", "flush")

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        process_capacity: int = DEFAULT_PROCESS_CAPACITY,
        capacities: Mapping[str, int] | None = None,
        expiry: float = DEFAULT_EXPIRY,
        group_expiry: float = DEFAULT_GROUP_EXPIRY,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT,
        durable: DurableSettings | None = None,
        presence_interval: float = DEFAULT_PRESENCE_INTERVAL,
        presence_max_meta_size: int = DEFAULT_MAX_META_SIZE,
    ) -> None:
        if not 0 < heartbeat_interval < liveness_timeout:
            raise ValueError("heartbeat_interval must be positive and shorter than liveness_timeout")
        self.capacity = int(capacity)
        self.process_capacity = int(process_capacity)
        self.capacities = dict(capacities or {})
        self._capacity_patterns = [
            (re.compile(fnmatch.translate(p)), int(c)) for p, c in self.capacities.items()
        ]
        self._capacity_cache: dict[str, int] = {}
        self.expiry = float(expiry)
        self.group_expiry = float(group_expiry)
        self.max_message_size = int(max_message_size)
        self.heartbeat_interval = float(heartbeat_interval)
        self.liveness_timeout = float(liveness_timeout)
        self.client_id = uuid.uuid4().hex[:12]
        self.stats = LayerStats()
        self._inboxes: dict[str, Inbox] = {}
        self.durable_settings = durable or DurableSettings()
        # The at-least-once channels (``durable.py``); each backend sets its own store.
        self.durable: DurableStore
        self.presence_interval = float(presence_interval)
        self.presence_max_meta_size = int(presence_max_meta_size)
        self._presence: Presence | None = None

    # -- configuration ---------------------------------------------------------------

    def capacity_for(self, queue: str) -> int:
        """Capacity of a channel, or ``process_capacity`` for a process queue (``process!``)."""
        if is_process_prefix(queue):
            return self.process_capacity
        cap = self._capacity_cache.get(queue)
        if cap is None:
            cap = self.capacity
            for pattern, value in self._capacity_patterns:
                if pattern.match(queue):
                    cap = value
                    break
            if len(self._capacity_cache) < 10_000:
                self._capacity_cache[queue] = cap
        return cap

    # -- serialisation ---------------------------------------------------------------

    def pack(self, channel: str, message: Message) -> bytes:
        """Validate ``channel`` and ``message`` and return the message's wire bytes."""
        validate_channel(channel)
        if is_process_prefix(channel):
            raise InvalidChannelName(f"cannot send to a bare process prefix: {channel!r}")
        return self.encode(message, channel)

    def encode(self, message: Message, target: str) -> bytes:
        """Serialise ``message`` (bound for ``target``, named in errors) within the size limit."""
        if not isinstance(message, dict):
            raise InvalidMessage(f"message must be a dict, not {type(message).__name__}")
        try:
            payload = packb(message)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidMessage(f"message is not serialisable: {exc}") from None
        if len(payload) > self.max_message_size:
            raise MessageTooLarge(
                f"message for {target!r} is {len(payload)} bytes; the limit is {self.max_message_size}"
            )
        return payload

    @staticmethod
    def unpack(payload: bytes) -> Message:
        """Decode wire bytes back into a message dict."""
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)

    @property
    def chunk_size(self) -> int:
        """The most payload bytes one message of a stream carries (``streams.py``)."""
        return self.max_message_size - min(ENVELOPE_ROOM, self.max_message_size // 4)

    # -- public API ------------------------------------------------------------------

    @property
    def inbox(self) -> Inbox:
        """This process's inbox: the one reader of its ``!`` channels."""
        return self.open_inbox(self.client_id)

    def open_inbox(self, process: str) -> Inbox:
        """The inbox of ``process`` in this layer object (made once): for ASGI 1.0 peers,
        whose process names come from their own ``!`` prefixes."""
        inbox = self._inboxes.get(process)
        if inbox is None:
            inbox = self._inboxes[process] = Inbox(self, process)
        return inbox

    @property
    def presence(self) -> Presence:
        """Presence on this layer's groups: who is in a group, with diffs (``tracking.py``)."""
        if self._presence is None:
            store = self._presence_store()
            self._presence = Presence(self, store, self.presence_interval, self.presence_max_meta_size)
        return self._presence

    def _presence_store(self) -> PresenceStore:
        """The backend's presence store."""
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def new_channel(self, prefix: str) -> str:
        """A new unique name: ``prefix`` must end in ``?`` (single reader) or ``!`` (an address
        in this process's inbox, as ``inbox.address(prefix[:-1])``)."""
        if prefix.endswith("?"):
            return validate_channel(prefix + secrets.token_hex(8))
        if prefix.endswith("!") and prefix.count("!") == 1:
            return self.inbox.address(prefix[:-1])
        raise InvalidChannelName(f"new_channel needs a prefix ending in '?' or '!': {prefix!r}")

    async def send(self, channel: str, message: Message) -> None:
        """Send one message; raises ChannelFull, MessageTooLarge or LayerUnavailable."""
        items = [(channel, message)]
        if self.durable.handles(channel):
            error = (await self.durable.send_with(items, self._send_queues))[0]
        else:
            error = (await self._send_queues(items))[0]
        if error is not None:
            raise error

    async def send_many(self, items: Iterable[tuple[str, Message]]) -> list[LayerError | None]:
        """Send a batch in one round trip per backend node; one result per item (None = sent).
        Messages for durable channels become entries of their streams."""
        items = list(items)
        if self.durable.any_durable(items):
            return await self.durable.send_with(items, self._send_queues)
        return await self._send_queues(items)

    @abstractmethod
    async def _send_queues(self, items: list[tuple[str, Message]]) -> list[LayerError | None]:
        """Backend send of messages for plain queues and process queues."""

    async def receive(
        self, channels: Sequence[str], timeout: float | None = None
    ) -> tuple[str, Message] | tuple[None, None]:
        """Wait for one message on any of ``channels``; ``(None, None)`` after ``timeout``."""
        batch = await self.receive_many(channels, 1, timeout)
        return batch[0] if batch else (None, None)

    async def receive_many(
        self, channels: Sequence[str], max_messages: int = 100, timeout: float | None = None
    ) -> list[tuple[str, Message]]:
        """Wait for up to ``max_messages`` messages on ``channels``; ``[]`` after ``timeout``.

        Process-specific (``!``) channels are read through their process's ``inbox``; durable
        channels (not mixed with others) give entries, acknowledged as they are taken.
        """
        if isinstance(channels, str):
            raise InvalidChannelName("receive needs a list of channel names, not a string")
        durable = 0
        for name in channels:
            validate_channel(name)
            if "!" in name:
                raise InvalidChannelName(f"read process-specific channels through layer.inbox: {name!r}")
            durable += self.durable.handles(name)
        if durable and durable != len(channels):
            raise InvalidChannelName("durable channels cannot be mixed with other names in one receive")
        read = self.durable.receive if durable else self._receive_queues
        try:
            out = await read(list(dict.fromkeys(channels)), max_messages, timeout)
        except LayerError as exc:
            self.stats.failed("receive", exc)
            raise
        self.stats.counts["received"] += len(out)
        return out

    @abstractmethod
    async def _receive_queues(
        self, queues: list[str], max_messages: int, timeout: float | None
    ) -> list[tuple[str, Message]]:
        """Backend read of plain queues and process queues, oldest first per queue.

        Each pair is (target, message); a fan-out entry's target names several addresses
        (``names.join_addresses``). Safe to cancel: nothing taken is lost.
        """

    @abstractmethod
    async def _announce(self, process: str, alive: bool) -> bool:
        """Mark ``process`` alive for ``liveness_timeout`` seconds, or gone at once.
        Returns whether it was alive before (False on a first beat or after a lapse)."""

    @abstractmethod
    async def liveness(self, processes: Sequence[str]) -> dict[str, float | None]:
        """Seconds since each process's last heartbeat, or None for a process not alive
        (never seen, withdrawn, or lapsed past ``liveness_timeout``)."""

    @abstractmethod
    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (or refresh its membership)."""

    @abstractmethod
    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; a no-op if it is not a member."""

    @abstractmethod
    async def group_send(self, group: str, message: Message) -> GroupReach:
        """Send to every member; full members are skipped. Returns who it reached and skipped."""

    @abstractmethod
    async def group_channels(self, group: str) -> list[str]:
        """The current (unexpired) members of ``group``."""

    @abstractmethod
    async def flush(self) -> None:
        """Delete every message and group this layer holds."""

    @abstractmethod
    async def ping(self) -> None:
        """Return when the backend answers; raise LayerUnavailable when it does not.

        Readiness checks and start-up waits use it.
        """

    async def queue_lengths(self, channels: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each channel's queue (a ``!`` channel: its process's queue; a
        durable channel: its entries not yet acknowledged)."""
        durable = [c for c in channels if self.durable.handles(c)]
        plain = [c for c in channels if c not in durable]
        lengths = await self._queue_lengths(plain) if plain else {}
        for channel in durable:
            lengths[channel] = (await self.durable.depth(channel)).entries
        return lengths

    @abstractmethod
    async def _queue_lengths(self, channels: Sequence[str]) -> dict[str, int]:
        """Backend part of ``queue_lengths``, for channels that are not durable."""

    async def close(self) -> None:
        """Close the inboxes (their processes are gone); backends also release connections."""
        if self._presence is not None:
            await self._presence.close()
        await self.durable.close()
        for inbox in list(self._inboxes.values()):
            await inbox.close()
        self.stats.flush_log()

    # -- helpers for backends --------------------------------------------------------

    def _deadline(self) -> float:
        return time.time() + self.expiry

    def _check_group(self, group: str, channel: str | None = None) -> None:
        validate_group(group)
        if channel is not None:
            validate_channel(channel)
            if is_process_prefix(channel):
                raise InvalidChannelName(f"a bare process prefix cannot join a group: {channel!r}")
            if self.durable.handles(channel):
                raise InvalidChannelName(f"a durable channel cannot join a group: {channel!r}")

    def _full(self, channel: str) -> ChannelFull:
        """The error for a send refused by a full queue (``_count_refusals`` counts it)."""
        capacity = self.capacity_for(queue_name(channel))
        return ChannelFull(f"channel {channel!r} is full ({capacity} messages)")

    @staticmethod
    def _gone(channel: str) -> ReceiverGone:
        """The error for a send to an address of a dead process."""
        return ReceiverGone(f"the process reading {channel!r} has stopped")

    def _count_refusals(self, items: list[tuple[str, Message]], results: list[LayerError | None]) -> None:
        """Count the sends of a batch refused by a full queue or a dead receiver, as drops."""
        if not any(results):
            return
        for kind, reason in ((ChannelFull, "full"), (ReceiverGone, "dead")):
            refused = [i for i, error in enumerate(results) if isinstance(error, kind)]
            if refused:
                self.stats.drop(reason, len(refused), items[refused[0]][0])
