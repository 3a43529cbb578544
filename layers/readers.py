"""Who reads a shared channel: a reading process announces itself in a group per channel,
so a server can tell "no worker is running" from "the workers are busy".

A reader's member is an address of its own process, so the layer's liveness removes it
within seconds when the process dies; a graceful stop withdraws it at once. Readers
announce before their first read, so a process that will take a message is counted before
it can. The membership is redone as soon as the process's heartbeat finds it was taken for
dead (the layer restarted empty), and refreshed every ``REFRESH`` seconds (a ``flush``
empties groups).
"""

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .cancelling import raise_if_cancelled
from .errors import LayerError
from .names import MAX_NAME_LENGTH

if TYPE_CHECKING:
    from .base import BaseLayer

log = logging.getLogger("switchroom.layers")

GROUP_PREFIX = "switchroom.readers."
REFRESH = 60.0


def readers_group(channel: str) -> str | None:
    """The group whose members read ``channel``; None for a name too long to have one."""
    group = GROUP_PREFIX + channel
    return group if len(group) < MAX_NAME_LENGTH else None


async def live_readers(layer: "BaseLayer", channel: str) -> int:
    """How many live processes announced that they read ``channel``."""
    group = readers_group(channel)
    return len(await layer.group_channels(group)) if group else 0


class Readers:
    """One process's announcement that it reads some channels (``announce`` / ``withdraw``)."""

    def __init__(self, layer: "BaseLayer", refresh: float = REFRESH) -> None:
        self.layer = layer
        self.refresh = refresh
        self.channels: list[str] = []
        self.member: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._redoing: set[asyncio.Future[None]] = set()

    async def announce(self, channels: Iterable[str]) -> None:
        """Keep the process alive on the layer and count it as a reader of ``channels``
        (adds to those already announced); a layer error is logged, not raised."""
        new = [c for c in channels if c not in self.channels and readers_group(c)]
        if not new:
            return
        self.channels += new
        inbox = self.layer.inbox
        await inbox.keep_alive()
        if self.member is None:
            self.member = inbox.address("reader", local="r")
            inbox.revived.append(self._revived)
        await self._add(new)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep(), name="switchroom-readers")

    async def withdraw(self) -> None:
        """No longer a reader of any channel."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        channels, self.channels = self.channels, []
        member, self.member = self.member, None
        if member is None:
            return
        if self._revived in self.layer.inbox.revived:
            self.layer.inbox.revived.remove(self._revived)
        for channel in channels:
            try:
                await self.layer.group_discard(GROUP_PREFIX + channel, member)
            except LayerError as exc:
                log.info(
                    "could not withdraw as a reader of %s (%s); it lapses with its process", channel, exc
                )

    async def _add(self, channels: list[str]) -> None:
        for channel in channels:
            if self.member is None:
                return
            try:
                await self.layer.group_add(GROUP_PREFIX + channel, self.member)
            except LayerError as exc:
                log.warning("could not announce as a reader of %s (%s); retrying later", channel, exc)

    def _revived(self) -> None:
        if self.channels:
            redo = asyncio.ensure_future(self._add(list(self.channels)))
            self._redoing.add(redo)
            redo.add_done_callback(self._redoing.discard)

    async def _keep(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.refresh)
            await self._add(list(self.channels))
