"""In-memory channel layer: one process, same semantics as the Redis layer.

Messages are serialised on send (so size limits, type checks and copy semantics match
the network backends) and kept per queue with their deadline; waiting receivers park
on a future and are woken by the next send to any queue they wait on.
"""

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from .base import BaseLayer, Message
from .errors import ChannelFull, LayerError
from .names import queue_name
from .stats import GroupReach


class MemoryLayer(BaseLayer):
    """A channel layer held in this process's memory; for tests and single-process runs."""

    extensions = ("groups", "flush")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._queues: dict[str, deque[tuple[float, str, bytes]]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._groups: dict[str, dict[str, float]] = {}

    async def send_many(self, items: Iterable[tuple[str, Message]]) -> list[LayerError | None]:
        results: list[LayerError | None] = []
        now = time.time()
        deadline = now + self.expiry
        for channel, message in items:
            try:
                payload = self.pack(channel, message)
            except LayerError as exc:
                results.append(exc)
                continue
            results.append(self._push(queue_name(channel), deadline, channel, payload, now))
        self.stats.sent(results)
        return results

    def _push(
        self, queue: str, deadline: float, channel: str, payload: bytes, now: float
    ) -> LayerError | None:
        box = self._queues.get(queue)
        if box is None:
            box = self._queues[queue] = deque()
        capacity = self.capacity_for(queue)
        if len(box) >= capacity:
            while box and box[0][0] <= now:
                box.popleft()
            if len(box) >= capacity:
                return ChannelFull(f"channel {channel!r} is full ({capacity} messages)")
        box.append((deadline, channel, payload))
        for waiter in self._waiters.get(queue, ()):
            if not waiter.done():
                waiter.set_result(None)
                break
        return None

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
        for i in range(count):
            queue = queues[(start + i) % count]
            box = self._queues.get(queue)
            while box and len(out) < max_messages:
                expires, channel, payload = box.popleft()
                if expires > now:
                    out.append((channel, self.unpack(payload)))
            if box is not None and not box:
                del self._queues[queue]
            if len(out) >= max_messages:
                break
        return out

    async def ping(self) -> None:
        """This process's memory always answers."""
        return None

    async def queue_lengths(self, channels: Sequence[str]) -> dict[str, int]:
        return {channel: len(self._queues.get(queue_name(channel), ())) for channel in channels}

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
        return list(self._live_members(group)[0])

    def _live_members(self, group: str) -> tuple[dict[str, float], int]:
        """The group's members, after removing lapsed ones; and how many lapsed."""
        members = self._groups.get(group)
        if not members:
            return {}, 0
        cutoff = time.time() - self.group_expiry
        lapsed = [c for c, joined in members.items() if joined <= cutoff]
        for channel in lapsed:
            del members[channel]
        return members, len(lapsed)

    async def group_send(self, group: str, message: Message) -> GroupReach:
        self._check_group(group)
        members, lapsed = self._live_members(group)
        if not members:
            reach = GroupReach(expired=lapsed)
            self.stats.reach(group, reach)
            return reach
        payload = self.encode(message, f"group {group}")
        now = time.time()
        deadline = now + self.expiry
        sent = full = 0
        for channel in list(members):
            if self._push(queue_name(channel), deadline, channel, payload, now) is None:
                sent += 1
            else:
                full += 1
        reach = GroupReach(reached=sent, full=full, expired=lapsed)
        self.stats.reach(group, reach)
        return reach

    async def flush(self) -> None:
        self._queues.clear()
        self._groups.clear()
        self._clear_local()
