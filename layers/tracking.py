"""Presence on a layer: track and untrack addresses in a group, list its members, push diffs.

``layer.presence`` is this driver. It checks what it is given and builds entries
(``presence.py``), keeps them in its backend's store (``presence_memory.py``,
``presence_redis.py``), flushes a group's events as one diff when its store says so (at
most one diff per group every ``interval`` seconds, whichever processes change it), and
sweeps the groups this process has used every ``heartbeat_interval``: entries of dead
processes and entries past their ``ttl`` leave, with leave events like any other.

Watchers of a group (``track(..., diffs=...)`` or ``watch``) are members of a plain group
per form (``presence.watch_group``), so a diff reaches them through ``group_send``: one
entry per watching process, dead watchers skipped and removed.
"""

import asyncio
import gc
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .cancelling import raise_if_cancelled
from .errors import LayerError
from .presence import (
    WATCH_GROUPS,
    Entry,
    Metas,
    check_group,
    diff,
    diff_message,
    members,
    new_entry,
    state_message,
    watch_group,
)

if TYPE_CHECKING:
    from .base import BaseLayer

log = logging.getLogger("switchroom.layers")


@contextmanager
def collector_held() -> Iterator[None]:
    """Hold the cyclic garbage collector while a list is built, and restore it after.

    A list makes a dict per entry and a list per key, all alive until it is returned: left
    on, the collector would pass over them every 700 allocations and promote them towards
    the oldest generation, whose full passes then cost as much as the list itself. Held, it
    meets them once, on the first allocation after, or never if they are already gone."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class PresenceStore(ABC):
    """Where a backend keeps presence; every write is atomic with its event and its claim.

    Methods that may start a flush return in how many seconds the caller must flush the
    group, or None when no flush falls to it.
    """

    @abstractmethod
    async def write(self, group: str, address: str, entry: Entry | None) -> float | None:
        """Store ``entry`` for ``address`` (replacing any), or remove it (``None``)."""

    @abstractmethod
    async def stored(self, group: str) -> tuple[list[str], list[bytes]]:
        """The processes that have entries in ``group`` and every stored entry (present or
        not, as ``Entry.pack`` made it), read together."""

    @abstractmethod
    async def processes(self, group: str) -> list[str]:
        """The processes that have entries in ``group``."""

    @abstractmethod
    async def dead(self, processes: list[str]) -> set[str]:
        """Those of ``processes`` that stopped (closed their inbox or stopped beating)."""

    @abstractmethod
    async def remove(self, group: str, dead: list[str], now_ms: int) -> tuple[float | None, int]:
        """Remove the entries of ``dead`` processes and those past their deadline; claim a
        flush if events wait without one. Returns the claim and how many entries are left."""

    @abstractmethod
    async def take(self, group: str) -> list[bytes]:
        """Take the group's events (oldest first) and start its cooling."""


class Presence:
    """The layer-level presence API; see ``docs/presence.md``."""

    def __init__(self, layer: "BaseLayer", store: PresenceStore, interval: float, max_meta_size: int) -> None:
        if interval < 0:
            raise ValueError("presence_interval must not be negative")
        self.layer = layer
        self.store = store
        self.interval = interval
        self.max_meta_size = max_meta_size
        self.groups: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # -- the API ---------------------------------------------------------------------------

    async def track(
        self,
        group: str,
        address: str,
        key: str,
        meta: dict[str, Any] | None = None,
        *,
        diffs: str | None = None,
        ttl: float | None = None,
    ) -> None:
        """Make ``address`` present in ``group`` under ``key`` with ``meta`` (tracking it again
        replaces its key and meta). ``diffs`` (``"frame"`` for a WebSocket, ``"message"``
        otherwise) also makes it a watcher: it gets the list now and the diffs after.
        ``ttl``: the entry leaves by itself after that many seconds (a participant with no
        socket, such as an email sender); an ``!`` address leaves with its process anyway."""
        entry = new_entry(group, address, key, meta, self.max_meta_size, time.time(), ttl)
        self._use(group)
        if diffs is not None:
            watchers = watch_group(group, diffs)
            await self.layer.group_add(watchers, address)
        claim = await self.store.write(group, address, entry)
        self.layer.stats.counts["presence_tracks"] += 1
        try:
            if diffs is not None:
                # The list goes out before a diff this call makes (which it already holds).
                await self._send_state(group, address, diffs)
        finally:
            self._schedule(group, claim)

    async def untrack(self, group: str, address: str) -> None:
        """Remove ``address`` from ``group`` (a no-op if absent); it stops watching too."""
        check_group(group)
        claim, *_ = await asyncio.gather(
            self.store.write(group, address, None),
            *(self.layer.group_discard(watch_group(group, form), address) for form in WATCH_GROUPS),
        )
        self._schedule(group, claim)

    async def list(self, group: str) -> Metas:
        """The group's members: each key with the metas of its entries (each with a ``ref``).

        Entries of dead processes and past their ``ttl`` are left out and removed."""
        check_group(group)
        self._use(group)
        processes, values = await self.store.stored(group)
        dead = await self.store.dead(processes)
        with collector_held():
            listed, gone = members(values, dead, int(time.time() * 1000))
        if gone:
            await self.sweep(group, dead)
        return listed

    async def watch(self, group: str, address: str, form: str = "message") -> None:
        """Send ``group``'s list to ``address`` now and its diffs from now on, as WebSocket
        frames (``form="frame"``, JSON text) or layer messages (``"message"``)."""
        await self.layer.group_add(watch_group(group, form), address)
        await self._send_state(group, address, form)

    async def _send_state(self, group: str, address: str, form: str) -> None:
        await self.layer.send(address, state_message(group, await self.list(group), form))

    async def unwatch(self, group: str, address: str) -> None:
        """Stop sending ``group``'s diffs to ``address``."""
        check_group(group)
        await asyncio.gather(
            *(self.layer.group_discard(watch_group(group, form), address) for form in WATCH_GROUPS)
        )

    # -- flushes and sweeps -------------------------------------------------------------------

    async def flush(self, group: str) -> None:
        """Send the group's waiting events as one diff to its watchers."""
        self._timers.pop(group, None)
        events = await self.store.take(group)
        change = diff(events)
        self.layer.stats.counts["presence_events"] += len(events)
        if not change:
            return
        self.layer.stats.counts["presence_diffs"] += 1
        await asyncio.gather(
            *(
                self.layer.group_send(watch_group(group, form), diff_message(group, change, form))
                for form in WATCH_GROUPS
            )
        )

    async def sweep(self, group: str, dead: set[str] | None = None) -> int:
        """Remove the entries of dead processes and past their ttl; returns how many are left."""
        if dead is None:
            dead = await self.store.dead(await self.store.processes(group))
        claim, left = await self.store.remove(group, sorted(dead), int(time.time() * 1000))
        self._schedule(group, claim)
        return left

    async def close(self) -> None:
        """Stop sweeping and make the flushes this process claimed now."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        due = list(self._timers)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for group in due:
            await self._guarded(self.flush(group), f"flushing presence of {group}")
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _use(self, group: str) -> None:
        """Sweep ``group`` from now on (until it is empty)."""
        self.groups.add(group)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_all(), name="switchroom-presence"
            )

    def _schedule(self, group: str, delay: float | None) -> None:
        if delay is None or group in self._timers:
            return
        loop = asyncio.get_running_loop()
        self._timers[group] = loop.call_later(delay, self._start_flush, group)

    def _start_flush(self, group: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self._guarded(self.flush(group), f"flushing presence of {group}")
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Any, what: str) -> None:
        try:
            await work
        except LayerError as exc:
            log.warning("%s failed: %s", what, exc)

    async def _sweep_all(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.layer.heartbeat_interval)
            for group in list(self.groups):
                raise_if_cancelled()
                try:
                    left = await self.sweep(group)
                except LayerError as exc:
                    log.debug("sweeping presence of %s failed (%s); retrying", group, exc)
                    continue
                if not left:
                    self.groups.discard(group)
