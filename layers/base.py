"""The channel-layer contract shared by every backend.

``BaseLayer`` holds what does not depend on storage: configuration (capacity, expiry,
size limit), name validation, msgpack serialisation, ``new_channel`` and the local
demultiplexing of process-specific (``!``) channels. Backends implement a handful of
storage primitives (``send_many``, ``_receive_queues``, groups, ``flush``, ``close``).

Messages for every ``!`` channel of a process share one queue, named by the part up
to and including ``!``. A process can read that queue directly (``receive`` on the
prefix, then dispatch by the returned channel name), or wait on individual full
names, in which case one reader per prefix drains the queue in batches and hands each
message to the coroutine waiting for its channel.
"""

import asyncio
import fnmatch
import itertools
import logging
import re
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgpack

from .errors import InvalidChannelName, InvalidMessage, LayerError, MessageTooLarge
from .names import is_process_prefix, queue_name, validate_channel, validate_group
from .stats import GroupReach, LayerStats

Message = dict[str, Any]

DEFAULT_CAPACITY = 100
DEFAULT_PROCESS_CAPACITY = 10_000
DEFAULT_EXPIRY = 60.0
DEFAULT_GROUP_EXPIRY = 86_400.0
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
DEMUX_BATCH = 200
DEMUX_BLOCK = 5.0
SWEEP_INTERVAL = 1.0

log = logging.getLogger("switchroom.layers")


def raise_if_cancelled() -> None:
    """Re-raise a cancellation the client library swallowed.

    A client library (redis-py) can absorb a task's cancellation when it races with a command finishing; a
    receive loop that went on waiting would then never end, so it checks on each turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class BaseLayer(ABC):
    """An asynchronous channel layer; see the module docstring for the demux model."""

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
    ) -> None:
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
        self.client_id = uuid.uuid4().hex[:12]
        self.stats = LayerStats()
        self._mailboxes: dict[str, deque[tuple[float, Message]]] = {}
        self._mail_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._demux_tasks: dict[str, asyncio.Task[None]] = {}
        self._boxes_by_prefix: dict[str, dict[str, None]] = {}
        self._waiting: dict[str, int] = {}
        self._next_sweep = 0.0

    # -- configuration ---------------------------------------------------------------

    def capacity_for(self, queue: str) -> int:
        """Capacity of a channel, or of a process queue when given a ``prefix!`` name."""
        cap = self._capacity_cache.get(queue)
        if cap is None:
            cap = self.process_capacity if is_process_prefix(queue) else self.capacity
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
            payload = msgpack.packb(message, use_bin_type=True)
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

    # -- public API ------------------------------------------------------------------

    async def new_channel(self, prefix: str) -> str:
        """A new unique name: ``prefix`` must end in ``?`` (single reader) or ``!`` (this process)."""
        if prefix.endswith("?"):
            return validate_channel(prefix + secrets.token_hex(8))
        if prefix.endswith("!") and prefix.count("!") == 1:
            return validate_channel(f"{prefix[:-1]}.{self.client_id}!{secrets.token_hex(8)}")
        raise InvalidChannelName(f"new_channel needs a prefix ending in '?' or '!': {prefix!r}")

    async def send(self, channel: str, message: Message) -> None:
        """Send one message; raises ChannelFull, MessageTooLarge or LayerUnavailable."""
        error = (await self.send_many([(channel, message)]))[0]
        if error is not None:
            raise error

    @abstractmethod
    async def send_many(self, items: Iterable[tuple[str, Message]]) -> list[LayerError | None]:
        """Send a batch in one round trip per backend node; one result per item (None = sent)."""

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

        Process-specific names (full ``prefix!local`` names, or a bare ``prefix!`` meaning
        any channel under it) are served by the local demux and cannot be mixed with
        other names in one call.
        """
        if isinstance(channels, str):
            raise InvalidChannelName("receive needs a list of channel names, not a string")
        special = 0
        for name in channels:
            validate_channel(name)
            if "!" in name:
                special += 1
        if special and special != len(channels):
            raise InvalidChannelName("process-specific names cannot be mixed with other names in one receive")
        read = self._receive_mail if special else self._receive_queues
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
        """Backend read of plain queues and process queues, oldest first per queue."""

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

    @abstractmethod
    async def queue_lengths(self, channels: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each channel's queue (a ``!`` channel: its process's queue)."""

    async def close(self) -> None:
        """Stop local readers; backends also release their connections."""
        tasks = list(self._demux_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._demux_tasks.clear()

    # -- helpers for backends --------------------------------------------------------

    def _deadline(self) -> float:
        return time.time() + self.expiry

    @staticmethod
    def _check_group(group: str, channel: str | None = None) -> None:
        validate_group(group)
        if channel is not None:
            validate_channel(channel)
            if is_process_prefix(channel):
                raise InvalidChannelName(f"a bare process prefix cannot join a group: {channel!r}")

    def _clear_local(self) -> None:
        """Forget messages the demux holds (part of ``flush``)."""
        self._mailboxes.clear()
        self._boxes_by_prefix.clear()

    # -- local demultiplexing of process-specific names ------------------------------

    async def _receive_mail(
        self, names: list[str], max_messages: int, timeout: float | None
    ) -> list[tuple[str, Message]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        prefixes = {queue_name(n) for n in names}
        while True:
            raise_if_cancelled()
            out = self._take_mail(names, max_messages)
            if out:
                return out
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            waiter = loop.create_future()
            for name in names:
                self._mail_waiters.setdefault(name, []).append(waiter)
            for prefix in prefixes:
                self._waiting[prefix] = self._waiting.get(prefix, 0) + 1
                self._ensure_demux(prefix)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                for name in names:
                    waiters = self._mail_waiters[name]
                    waiters.remove(waiter)
                    if not waiters:
                        del self._mail_waiters[name]
                for prefix in prefixes:
                    self._waiting[prefix] -= 1

    def _take_mail(self, names: list[str], max_messages: int) -> list[tuple[str, Message]]:
        out: list[tuple[str, Message]] = []
        now = time.time()
        for name in names:
            channels = list(self._boxes_by_prefix.get(name, ())) if is_process_prefix(name) else (name,)
            for channel in channels:
                box = self._mailboxes.get(channel)
                while box and len(out) < max_messages:
                    expires, message = box.popleft()
                    if expires > now:
                        out.append((channel, message))
                if box is not None and not box:
                    self._drop_box(channel)
                if len(out) >= max_messages:
                    return out
        return out

    def _drop_box(self, channel: str) -> None:
        del self._mailboxes[channel]
        prefix = queue_name(channel)
        index = self._boxes_by_prefix[prefix]
        del index[channel]
        if not index:
            del self._boxes_by_prefix[prefix]

    def _ensure_demux(self, prefix: str) -> None:
        task = self._demux_tasks.get(prefix)
        if task is None or task.done():
            self._demux_tasks[prefix] = asyncio.get_running_loop().create_task(
                self._demux(prefix), name=f"switchroom-demux-{prefix}"
            )

    async def _demux(self, prefix: str) -> None:
        """Drain one process queue into per-channel mailboxes while anyone waits on it."""
        while self._waiting.get(prefix):
            try:
                batch = await self._receive_queues([prefix], DEMUX_BATCH, DEMUX_BLOCK)
            except LayerError as exc:
                log.debug("reading %s failed: %s", prefix, exc)
                await asyncio.sleep(0.5)
                continue
            if batch:
                self._deliver_mail(prefix, batch)
            self._sweep_mailboxes()

    def _deliver_mail(self, prefix: str, batch: list[tuple[str, Message]]) -> None:
        expires = self._deadline()
        waiters = self._mail_waiters
        for channel, message in batch:
            box = self._mailboxes.get(channel)
            if box is None:
                box = self._mailboxes[channel] = deque()
                self._boxes_by_prefix.setdefault(prefix, {})[channel] = None
            if len(box) < self.capacity_for(channel):
                box.append((expires, message))
            else:
                log.warning("mailbox of %s is full; message dropped", channel)
            for waiter in itertools.chain(waiters.get(channel, ()), waiters.get(prefix, ())):
                if not waiter.done():
                    waiter.set_result(None)
                    break

    def _sweep_mailboxes(self) -> None:
        now = time.time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for channel in [c for c, box in self._mailboxes.items() if box and box[-1][0] <= now]:
            self._drop_box(channel)
