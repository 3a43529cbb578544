"""Refusing WebSocket handshakes at once when no worker reads ``websocket.connect``.

While handshakes wait, one round every ``interval`` seconds asks the layer how many live
processes announced that they read the channel (``switchroom.layers.readers``) and how many
messages wait unread on it: two commands sent together per round, none per handshake. When
the rounds have found no reader and unread messages for ``patience`` seconds on end
(two heartbeat intervals: a reader whose announcement a layer restart wiped has redone it
by then), nothing is taking them, and each handshake that has waited that long in that
state is refused (503) with a log line, instead of waiting for the connect timeout. A
worker announces itself before it starts its app, so one still starting is waited for. A
process that reads the channel without announcing itself keeps it drained while it keeps
up, and then nothing is refused.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from switchroom.layers import LayerError
from switchroom.layers.readers import live_readers

if TYPE_CHECKING:
    from switchroom.layers import BaseLayer

log = logging.getLogger("switchroom.http")

DEFAULT_INTERVAL = 0.5


class NoWorkerCheck:
    """Calls ``refuse(since, why)`` when no worker reads ``channel``: every handshake that
    was already waiting at the monotonic time ``since`` is to be refused."""

    def __init__(
        self,
        layer: "BaseLayer",
        channel: str,
        pending: Callable[[], bool],
        refuse: Callable[[float, str], None],
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.layer = layer
        self.channel = channel
        self.pending = pending
        self.refuse = refuse
        self.interval = interval
        self.patience = 2 * layer.heartbeat_interval
        self._task: asyncio.Task[None] | None = None

    def waiting(self) -> None:
        """A handshake is waiting: run the rounds (until none waits)."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="switchroom-no-worker-check")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        # When the current run of rounds finding no reader and unread messages began.
        first: float | None = None
        try:
            while self.pending():
                await asyncio.sleep(self.interval)
                began = time.monotonic()
                try:
                    readers, lengths = await asyncio.gather(
                        live_readers(self.layer, self.channel), self.layer.queue_lengths([self.channel])
                    )
                except LayerError as exc:
                    log.debug("cannot tell whether a worker reads %s (%s)", self.channel, exc)
                    first = None
                    continue
                unread = lengths.get(self.channel, 0)
                if readers or not unread:
                    first = None
                    continue
                if first is None:
                    first = began
                if began - first >= self.patience:
                    why = f"no worker reads {self.channel} ({unread} messages unread, no reader announced)"
                    # Handshakes younger than the patience wait for a later round.
                    self.refuse(began - self.patience, why)
        finally:
            if self._task is asyncio.current_task():
                self._task = None
