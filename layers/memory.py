"""In-memory channel layer: one process, same semantics as the Redis layer.

Messages are serialised on send (so size limits, type checks and copy semantics match
the network backends) and kept per queue with their deadline; waiting receivers park
on a future and are woken by the next send to any queue they wait on. A process is alive
from its inbox's first heartbeat until the inbox closes.
"""

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from .base import BaseLayer, Message
from .durable_memory import MemoryDurable
from .errors import LayerError
from .names import join_addresses, process_of, queue_name
from .presence_memory import MemoryPresence
from .stats import GroupReach

Entry = tuple[float, str, bytes]


class MemoryLayer(BaseLayer):
    """A channel layer held in this process's memory; for tests and single-process runs."""

    extensions = ("groups", "flush")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._queues: dict[str, deque[Entry]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._groups: dict[str, dict[str, float]] = {}
        self._seen: set[str] = set()
        self._alive: set[str] = set()
        self._beats: dict[str, float] = {}
        self.durable = MemoryDurable(self, self.durable_settings)
        self._presence_memory = MemoryPresence(self, self.presence_interval)

    def _presence_store(self) -> MemoryPresence:
        return self._presence_memory

    def _dead(self, process: str) -> bool:
        return process in self._seen and process not in self._alive

    async def _send_queues(self, items: Iterable[tuple[str, Message]]) -> list[LayerError | None]:
        items = list(items)
        results: list[LayerError | None] = []
        now = time.time()
        deadline = now + self.expiry
        for channel, message in items:
            try:
                payload = self.pack(channel, message)
            except LayerError as exc:
                results.append(exc)
                continue
            if "!" in channel and self._dead(process_of(channel)):
                results.append(self._gone(channel))
            elif self._push(queue_name(channel), (deadline, channel, payload), now):
                results.append(None)
            else:
                results.append(self._full(channel))
        self._count_refusals(items, results)
        self.stats.sent(results)
        return results

    def _push(self, queue: str, entry: Entry, now: float) -> bool:
        """Append ``entry`` unless the queue is full (after shedding expired heads)."""
        box = self._queues.get(queue)
        if box is None:
            box = self._queues[queue] = deque()
        capacity = self.capacity_for(queue)
        if len(box) >= capacity:
            self._shed(box, now)
            if len(box) >= capacity:
                return False
        box.append(entry)
        for waiter in self._waiters.get(queue, ()):
            if not waiter.done():
                waiter.set_result(None)
                break
        return True

    def _shed(self, box: deque[Entry], now: float) -> None:
        expired = 0
        while box and box[0][0] <= now:
            box.popleft()
            expired += 1
        self.stats.drop("expired", expired)

    async def _receive_queues(
        self, queues: list[str], max_messages: int, timeout: float | None
    ) -> list[tuple[str, Message]]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        start = 0
        while True:
            out = self._pop(queues, start, max_messages)
            if out:
                return out
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            waiter = loop.create_future()
            for queue in queues:
                self._waiters.setdefault(queue, []).append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                for queue in queues:
                    waiters = self._waiters[queue]
                    waiters.remove(waiter)
                    if not waiters:
                        del self._waiters[queue]
            start += 1

    def _pop(self, queues: list[str], start: int, max_messages: int) -> list[tuple[str, Message]]:
        """Take up to ``max_messages`` unexpired messages, starting at a rotating queue."""
        out: list[tuple[str, Message]] = []
        now = time.time()
        count = len(queues)
        expired = 0
        for i in range(count):
            queue = queues[(start + i) % count]
            box = self._queues.get(queue)
            while box and len(out) < max_messages:
                deadline, target, payload = box.popleft()
                if deadline > now:
                    out.append((target, self.unpack(payload)))
                else:
                    expired += 1
            if box is not None and not box:
                del self._queues[queue]
            if len(out) >= max_messages:
                break
        self.stats.drop("expired", expired)
        return out

    async def ping(self) -> None:
        """This process's memory always answers."""
        return None

    async def _queue_lengths(self, channels: Sequence[str]) -> dict[str, int]:
        return {channel: len(self._queues.get(queue_name(channel), ())) for channel in channels}

    async def _announce(self, process: str, alive: bool) -> bool:
        was = process in self._alive
        if alive:
            self._seen.add(process)
            self._alive.add(process)
            self._beats[process] = time.monotonic()
        else:
            self._alive.discard(process)
            self._beats.pop(process, None)
        return was

    async def liveness(self, processes: Sequence[str]) -> dict[str, float | None]:
        now = time.monotonic()
        out: dict[str, float | None] = {}
        for process in processes:
            beat = self._beats.get(process)
            out[process] = None if beat is None or now - beat > self.liveness_timeout else now - beat
        return out

    async def group_add(self, group: str, channel: str) -> None:
        self._check_group(group, channel)
        self._groups.setdefault(group, {})[channel] = time.time()

    async def group_discard(self, group: str, channel: str) -> None:
        self._check_group(group, channel)
        members = self._groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._groups[group]

    async def group_channels(self, group: str) -> list[str]:
        self._check_group(group)
        members, _, _ = self._live_members(group)
        return list(members)

    def _live_members(self, group: str) -> tuple[dict[str, float], int, int]:
        """The group's members, after removing lapsed ones and those of dead processes;
        and how many of each were removed."""
        members = self._groups.get(group)
        if not members:
            return {}, 0, 0
        cutoff = time.time() - self.group_expiry
        lapsed = [c for c, joined in members.items() if joined <= cutoff]
        for channel in lapsed:
            del members[channel]
        dead = [c for c in members if "!" in c and self._dead(process_of(c))]
        for channel in dead:
            del members[channel]
        if not members:
            del self._groups[group]
        return members, len(lapsed), len(dead)

    async def group_send(self, group: str, message: Message) -> GroupReach:
        self._check_group(group)
        members, lapsed, dead = self._live_members(group)
        reached = full = 0
        if members:
            payload = self.encode(message, f"group {group}")
            now = time.time()
            deadline = now + self.expiry
            by_queue: dict[str, list[str]] = {}
            for channel in members:
                by_queue.setdefault(queue_name(channel), []).append(channel)
            # One entry per process for all its members; a plain channel is its own queue.
            for queue, channels in by_queue.items():
                if self._push(queue, (deadline, join_addresses(channels), payload), now):
                    reached += len(channels)
                else:
                    full += len(channels)
        reach = GroupReach(reached=reached, full=full, dead=dead, expired=lapsed)
        self.stats.reach(group, reach)
        return reach

    async def flush(self) -> None:
        self._queues.clear()
        self._groups.clear()
        self.durable.clear()
        self._presence_memory.clear()
