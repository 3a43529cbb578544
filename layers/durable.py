"""At-least-once channels: entries that stay until a consumer acknowledges them.

Most channels are at most once (a message unread within ``expiry`` is dropped). A few
promise more, because the protocol behind them does: inbound email after the 250, Slack
events after the ack, outbound ``email.send``. Those are **durable**: each message is an
entry that stays (no expiry) until a consumer acknowledges it *after* handling it; an
entry whose consumer died is handed to another after ``visibility_timeout``; each entry
carries an idempotency key (Message-ID, Slack event_id) so a consumer can tell a
redelivery. On Redis they are Redis Streams with one consumer group per channel (XADD,
XREADGROUP, XACK, XAUTOCLAIM); the memory layer keeps the same rules in the process.

    store = layer.durable
    added = await store.add("email.receive", message, key="<id@example>")
    for delivery in await store.read(["email.receive"], 10, timeout=5):
        handle(delivery.message)
        await store.ack([delivery])

``layer.send`` to a durable channel adds an entry, and ``layer.receive`` on one takes an
entry and acknowledges it at once (at most once for that reader); the worker runtime
uses ``read`` and ``ack`` so that a consumer that fails or dies is retried.
"""

import asyncio
import fnmatch
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from switchroom.shared.messages import EMAIL_RECEIVE, EMAIL_SEND, SLACK_EVENT

from .cancelling import cancel_and_wait, raise_if_cancelled
from .errors import InvalidChannelName, InvalidMessage, LayerError, LayerUnavailable, MessageTooLarge
from .names import validate_channel

if TYPE_CHECKING:
    from .base import BaseLayer

Message = dict[str, Any]

# Channels that are always durable; the ``durable_channels`` option adds more.
DURABLE_CHANNELS = (EMAIL_RECEIVE, EMAIL_SEND, SLACK_EVENT)
# HTTP and WebSocket stay at most once (drop and tell, never a late duplicate): no option
# makes these durable.
AT_MOST_ONCE = ("http.", "websocket.")
DEFAULT_CAPACITY = 10_000
DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024
DEFAULT_VISIBILITY_TIMEOUT = 30.0
DEFAULT_MAX_DELIVERIES = 10
DEFAULT_DEDUPE_WINDOW = 86_400.0
PERSISTENCE_CHOICES = ("warn", "require")
# A dead letter larger than this keeps its small fields only (the rest is named in ``truncated``).
REPORT_FIELD_LIMIT = 4096

log = logging.getLogger("switchroom.layers")


@dataclass(frozen=True)
class DurableSettings:
    """How a layer's durable channels behave; every field is a layer option of the same name
    with a ``durable_`` prefix where it would be ambiguous (see ``docs/layers.md``)."""

    channels: tuple[str, ...] = ()
    capacity: int = DEFAULT_CAPACITY
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    persistence: str = "warn"

    def __post_init__(self) -> None:
        if self.persistence not in PERSISTENCE_CHOICES:
            raise ValueError(f"persistence must be one of {', '.join(PERSISTENCE_CHOICES)}")
        if self.capacity < 1 or self.max_deliveries < 1:
            raise ValueError("durable_capacity and max_deliveries must be at least 1")
        if self.visibility_timeout <= 0:
            raise ValueError("visibility_timeout must be positive")
        for name in self.channels:
            if "!" in name or "?" in name:
                raise InvalidChannelName(f"a durable channel cannot be a ! or ? channel: {name!r}")
            if name.startswith(AT_MOST_ONCE) or any(
                fnmatch.fnmatchcase(prefix + "request", name) for prefix in AT_MOST_ONCE
            ):
                raise InvalidChannelName(
                    f"durable_channels {name!r} names HTTP or WebSocket channels, which stay at most once"
                )


@dataclass
class Delivery:
    """One entry handed to a consumer: acknowledge it once handled (``store.ack``)."""

    channel: str
    message: Message
    id: str
    key: str
    # 1 on the first delivery; more when a consumer failed or died before acknowledging.
    attempt: int
    # Unix time the entry was added (from its id).
    added: float
    # What a previous consumer saved with ``save_note`` (retry state), or None.
    note: Message | None = None


@dataclass(frozen=True)
class Depth:
    """What a durable channel holds: entries in all, of which handed out and not yet
    acknowledged, and when the oldest was added (None when empty)."""

    entries: int
    pending: int
    oldest: float | None


def entry_time(entry_id: str) -> float:
    """Unix time of an entry id ``<ms>-<seq>``."""
    return int(entry_id.partition("-")[0]) / 1000


def fit_report(report: Message, limit: int) -> Message:
    """A dead letter whose ``message`` fits in ``limit`` bytes: fields whose encoding is
    over ``REPORT_FIELD_LIMIT`` bytes are left out and named in ``truncated``."""
    message = report.get("message")
    if not isinstance(message, dict) or len(msgpack.packb(report, use_bin_type=True)) <= limit:
        return report
    kept: Message = {}
    cut: list[str] = []
    for name, value in message.items():
        if len(msgpack.packb(value, use_bin_type=True)) <= REPORT_FIELD_LIMIT:
            kept[name] = value
        else:
            cut.append(str(name))
    return {**report, "message": kept, "truncated": cut}


class DurableStore(ABC):
    """The durable channels of one layer; backends store and hand out the entries."""

    def __init__(self, layer: "BaseLayer", settings: DurableSettings) -> None:
        self.layer = layer
        self.settings = settings
        self.patterns = [re.compile(fnmatch.translate(p)) for p in (*DURABLE_CHANNELS, *settings.channels)]
        self._handles: dict[str, bool] = {}
        # ``add`` calls waiting to go out together, and whether a batch of them is on its way.
        self._queued: list[tuple[str, Message, str | None, bool, asyncio.Future[bool | LayerError]]] = []
        self._adding = False

    # -- which channels -------------------------------------------------------------

    def handles(self, channel: Any) -> bool:
        """True if ``channel`` is durable (dead-letter channels, ``*.failed``, never are)."""
        known = self._handles.get(channel)
        if known is None:
            known = (
                isinstance(channel, str)
                and "!" not in channel
                and "?" not in channel
                and not channel.endswith(".failed")
                and not channel.startswith(AT_MOST_ONCE)
                and any(p.match(channel) for p in self.patterns)
            )
            if len(self._handles) < 10_000:
                self._handles[channel] = known
        return known

    def any_durable(self, items: Sequence[tuple[Any, Any]]) -> bool:
        """Whether a ``send_many`` batch has any message for a durable channel."""
        return any(self.handles(channel) for channel, _ in items)

    # -- what the layer's plain API does on durable channels --------------------------

    async def send_with(
        self,
        items: list[tuple[str, Message]],
        send_plain: Callable[[list[tuple[str, Message]]], Awaitable[list[LayerError | None]]],
    ) -> list[LayerError | None]:
        """``send_many`` of a batch mixing durable and plain channels, results in order."""
        results: list[LayerError | None] = [None] * len(items)
        durable = [i for i, (channel, _) in enumerate(items) if self.handles(channel)]
        plain = [i for i in range(len(items)) if i not in set(durable)]
        if plain:
            for index, error in zip(plain, await send_plain([items[i] for i in plain]), strict=True):
                results[index] = error
        added = await self.add_many([(items[i][0], items[i][1], None) for i in durable])
        for index, outcome in zip(durable, added, strict=True):
            results[index] = outcome if isinstance(outcome, LayerError) else None
        return results

    async def receive(
        self, channels: list[str], max_messages: int, timeout: float | None
    ) -> list[tuple[str, Message]]:
        """``receive_many`` on durable channels: take entries and acknowledge them at once."""
        deliveries = await self.read(channels, max_messages, timeout)
        if deliveries:
            await self.ack(deliveries)
        return [(d.channel, d.message) for d in deliveries]

    # -- the durable API ---------------------------------------------------------------

    def pack(self, channel: str, message: Message) -> bytes:
        """A message's wire bytes, within the durable size limit."""
        validate_channel(channel)
        if not self.handles(channel):
            raise InvalidChannelName(f"{channel!r} is not a durable channel")
        if not isinstance(message, dict):
            raise InvalidMessage(f"message must be a dict, not {type(message).__name__}")
        try:
            payload = msgpack.packb(message, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidMessage(f"message is not serialisable: {exc}") from None
        if len(payload) > self.settings.max_message_size:
            raise MessageTooLarge(
                f"message for durable {channel!r} is {len(payload)} bytes; "
                f"the limit is {self.settings.max_message_size}"
            )
        return payload

    async def add(self, channel: str, message: Message, key: str | None = None, dedupe: bool = False) -> bool:
        """Add one entry; False if ``dedupe`` and ``key`` was added within ``dedupe_window``.
        Raises ChannelFull (``durable_capacity`` entries), MessageTooLarge, LayerUnavailable.

        Adds made while another batch is on its way (concurrent SMTP sessions, Slack
        envelopes) go out together in the next one: one round trip per shard for all.
        """
        future: asyncio.Future[bool | LayerError] = asyncio.get_running_loop().create_future()
        self._queued.append((channel, message, key, dedupe, future))
        if not self._adding:
            self._adding = True
            asyncio.get_running_loop().call_soon(self._send_queued)
        outcome = await future
        if isinstance(outcome, LayerError):
            raise outcome
        return outcome

    def _send_queued(self) -> None:
        queued, self._queued = self._queued, []
        asyncio.ensure_future(self._add_queued(queued))

    async def _add_queued(
        self, queued: list[tuple[str, Message, str | None, bool, "asyncio.Future[bool | LayerError]"]]
    ) -> None:
        """One ``add_many`` per dedupe mode for everything queued; then the next batch."""
        try:
            for dedupe in (False, True):
                batch = [item for item in queued if item[3] is dedupe]
                if not batch:
                    continue
                try:
                    outcomes: list[bool | LayerError] = await self.add_many(
                        [(channel, message, key) for channel, message, key, _, _ in batch], dedupe
                    )
                except LayerError as exc:
                    outcomes = [exc] * len(batch)
                except Exception as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            if self._queued:
                self._send_queued()
            else:
                self._adding = False

    async def add_many(
        self, items: Sequence[tuple[str, Message, str | None]], dedupe: bool = False
    ) -> list[bool | LayerError]:
        """Add entries ``(channel, message, key)``, one round trip per shard; per item True
        (added), False (a duplicate key, with ``dedupe``) or the error. Counted as sends."""
        try:
            outcomes = await self._add_many(items, dedupe)
        except LayerError as exc:
            self.layer.stats.failed("send", exc)
            raise
        self.layer.stats.sent([o if isinstance(o, LayerError) else None for o in outcomes])
        return outcomes

    @abstractmethod
    async def _add_many(
        self, items: Sequence[tuple[str, Message, str | None]], dedupe: bool = False
    ) -> list[bool | LayerError]:
        """Backend part of ``add_many``."""

    async def read(
        self, channels: Sequence[str], count: int = 10, timeout: float | None = None
    ) -> list[Delivery]:
        """Up to ``count`` entries for this process to handle: first those whose consumer
        has not acknowledged them within ``visibility_timeout``, then new ones (waiting up
        to ``timeout`` for one). An entry handed out ``max_deliveries`` times without an
        acknowledgement is a dead letter on ``<channel>.failed`` instead."""
        if isinstance(channels, str):
            raise InvalidChannelName("read needs a list of channel names, not a string")
        for channel in channels:
            validate_channel(channel)
            if not self.handles(channel):
                raise InvalidChannelName(f"{channel!r} is not a durable channel")
        deliveries = await self._read(list(dict.fromkeys(channels)), count, timeout)
        poisoned = [d for d in deliveries if d.attempt > self.settings.max_deliveries]
        if not poisoned:
            return deliveries
        for delivery in poisoned:
            error = f"not acknowledged after {delivery.attempt - 1} deliveries: its consumer fails or dies"
            await self.dead_letter(delivery, error, "failed")
        await self.ack(poisoned)
        return [d for d in deliveries if d.attempt <= self.settings.max_deliveries]

    @abstractmethod
    async def _read(self, channels: list[str], count: int, timeout: float | None) -> list[Delivery]:
        """Backend part of ``read``: reclaim, then new entries, blocking up to ``timeout``."""

    @abstractmethod
    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Done with these entries: remove them (with their notes) for good."""

    @abstractmethod
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give entries back unfinished: another consumer may take them at once, and this
        hand-out does not count against ``max_deliveries``."""

    @abstractmethod
    async def touch(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Still working on these: restart their visibility timeout. Returns those another
        consumer has taken meanwhile (this process was too slow, or frozen)."""

    @abstractmethod
    async def save_note(self, delivery: Delivery, note: Message) -> None:
        """Keep ``note`` with the entry; whoever gets it next finds it in ``Delivery.note``."""

    @abstractmethod
    async def depth(self, channel: str) -> Depth:
        """How many entries ``channel`` holds and how old the oldest is."""

    @abstractmethod
    async def take_old(self, channel: str, added_before: float, count: int = 100) -> list[Delivery]:
        """Take up to ``count`` entries added before ``added_before`` (unix time) that no
        consumer is working on, for this process to dispose of (then ``ack`` them)."""

    @abstractmethod
    async def check(self) -> list[str]:
        """What makes these channels less durable than they promise (no AOF, an evicting
        memory policy...), one sentence each; empty when all is well."""

    @abstractmethod
    def clear(self) -> None:
        """Forget what this process holds (part of the layer's ``flush``)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop blocked reads and give back entries read but not handed out."""

    # -- shared helpers ------------------------------------------------------------------

    async def dead_letter(self, delivery: Delivery, error: str, reason: str = "expired") -> None:
        """Log an entry given up on, count it under ``reason`` (``expired``: nobody read it
        in time; ``failed``: its consumers kept failing) and report it on
        ``<channel>.failed`` (at most once)."""
        self.layer.stats.drop(reason, 1, delivery.channel)
        log.error(
            "dead letter from %s (key %s, added %s ago, %d deliveries): %s",
            delivery.channel,
            delivery.key,
            human_age(time.time() - delivery.added),
            delivery.attempt,
            error,
        )
        report = {
            "channel": delivery.channel,
            "message": delivery.message,
            "error": error,
            "attempts": delivery.attempt,
            "key": delivery.key,
            "added": delivery.added,
        }
        target = delivery.channel + ".failed"
        try:
            await self.layer.send(target, fit_report(report, self.layer.max_message_size - 1024))
        except LayerError as exc:
            log.error("could not report the dead letter on %s: %s", target, exc)

    async def persistence(self) -> None:
        """Check durability at a server's start: log each problem loudly, and refuse to
        start (``ValueError``) when the layer's ``persistence`` option is ``require``."""
        problems = await self.check()
        for problem in problems:
            log.error("DURABLE CHANNELS AT RISK: %s", problem)
        if problems and self.settings.persistence == "require":
            raise ValueError("durable channels would not survive a restart: " + "; ".join(problems))


def human_age(seconds: float) -> str:
    """``seconds`` as a short human duration: 45 s, 12 min, 5.0 h, 3.2 d."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


class Leases:
    """Entries a process is working on, kept from being handed to another consumer: every
    ``visibility_timeout / 3`` seconds they are touched in one call per channel."""

    def __init__(self, store: DurableStore) -> None:
        self.store = store
        self.held: dict[tuple[str, str], Delivery] = {}
        self.task: asyncio.Task[None] | None = None

    def hold(self, delivery: Delivery) -> None:
        self.held[(delivery.channel, delivery.id)] = delivery
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._renew(), name="switchroom-leases")

    def drop(self, delivery: Delivery) -> None:
        self.held.pop((delivery.channel, delivery.id), None)

    async def _renew(self) -> None:
        interval = self.store.settings.visibility_timeout / 3
        while self.held:
            raise_if_cancelled()
            await asyncio.sleep(interval)
            try:
                lost = await self.store.touch(list(self.held.values()))
            except LayerError as exc:
                # An outage is logged once by the layer; other failures each get a line.
                level = logging.DEBUG if isinstance(exc, LayerUnavailable) else logging.WARNING
                log.log(level, "could not renew %d durable entries in progress: %s", len(self.held), exc)
                continue
            # Entries dropped while the renewal was on its way were finished, not taken.
            for delivery in [d for d in lost if (d.channel, d.id) in self.held]:
                log.warning(
                    "%s entry %s was handed to another consumer while this one worked on it "
                    "(longer than visibility_timeout without renewal)",
                    delivery.channel,
                    delivery.key,
                )

    async def close(self, timeout: float = 5.0) -> None:
        """Stop renewing, within ``timeout`` seconds (a renewal still on its way then is
        abandoned, and logged)."""
        if self.task is not None and await cancel_and_wait([self.task], timeout):
            log.warning("abandoned a lease renewal still running %.1f s after the stop", timeout)
        self.held.clear()


class Janitor:
    """Watches one durable channel from its producer: logs and counts entries as they age
    unread, and hands entries older than ``max_age`` to ``expire`` (which disposes of them;
    the janitor then acknowledges them)."""

    def __init__(
        self,
        store: DurableStore,
        channel: str,
        max_age: float,
        expire: Callable[[list[Delivery]], Awaitable[None]],
        warn_after: float = 600.0,
        interval: float = 30.0,
    ) -> None:
        self.store = store
        self.channel = channel
        self.max_age = max_age
        self.expire = expire
        self.warn_after = warn_after
        self.interval = interval
        self.counts = {"expired": 0, "queued": 0, "oldest_age": 0}
        self._next_warning = 0.0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"switchroom-janitor-{self.channel}"
        )

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop watching, within ``timeout`` seconds (a look still on its way then is
        abandoned, and logged)."""
        if self.task is not None and await cancel_and_wait([self.task], timeout):
            log.warning("abandoned watching %s: still running %.1f s after the stop", self.channel, timeout)

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except LayerUnavailable as exc:
                # The layer logs the outage once; a line per look would repeat it.
                log.debug("watching %s failed: %s", self.channel, exc)
            except LayerError as exc:
                log.warning("watching %s failed: %s", self.channel, exc)
            raise_if_cancelled()
            await asyncio.sleep(self.interval)

    async def sweep(self) -> None:
        """One look: report the queue's age, then expire what is older than ``max_age``."""
        now = time.time()
        depth = await self.store.depth(self.channel)
        age = now - depth.oldest if depth.oldest is not None else 0.0
        self.counts["queued"], self.counts["oldest_age"] = depth.entries, int(age)
        if age >= self.warn_after and time.monotonic() >= self._next_warning:
            # Once per warn_after while it lasts: an hour-old queue is worth a line an hour.
            self._next_warning = time.monotonic() + self.warn_after
            log.warning(
                "%d entries wait on %s (%d being handled), the oldest for %s; entries older than %s "
                "are given up: is a worker reading %s?",
                depth.entries,
                self.channel,
                depth.pending,
                human_age(age),
                human_age(self.max_age),
                self.channel,
            )
        while age >= self.max_age:
            old = await self.store.take_old(self.channel, now - self.max_age)
            if not old:
                break
            await self.expire(old)
            await self.store.ack(old)
            self.counts["expired"] += len(old)


def durable_options(options: dict[str, Any]) -> DurableSettings | None:
    """Move the durable layer options out of ``options`` into settings (None if none given)."""
    names = {
        "durable_channels": "channels",
        "durable_capacity": "capacity",
        "durable_max_message_size": "max_message_size",
        "visibility_timeout": "visibility_timeout",
        "max_deliveries": "max_deliveries",
        "dedupe_window": "dedupe_window",
        "persistence": "persistence",
    }
    given = {field: options.pop(option) for option, field in names.items() if option in options}
    if not given:
        return None
    channels = given.get("channels", ())
    if isinstance(channels, str):
        given["channels"] = tuple(c.strip() for c in channels.split(",") if c.strip())
    else:
        given["channels"] = tuple(channels)
    return DurableSettings(**given)


def batched(items: Iterable[Delivery]) -> dict[str, list[Delivery]]:
    """Deliveries grouped by channel, in order."""
    out: dict[str, list[Delivery]] = {}
    for delivery in items:
        out.setdefault(delivery.channel, []).append(delivery)
    return out
