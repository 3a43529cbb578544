"""Watching other processes' heartbeats: ``ProcessWatch`` tells a callback when a watched
process has been silent for longer than ``silence`` seconds, or is gone from the layer.

A server that hands sockets to a worker process watches that worker: when it is killed
outright, nothing else would ever tell the server, so the watch is what closes its sockets.
One layer call per ``interval`` covers every watched process, however many sockets each has.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .cancelling import raise_if_cancelled
from .errors import LayerError
from .names import process_of

if TYPE_CHECKING:
    from .base import BaseLayer

log = logging.getLogger("switchroom.layers")

DEFAULT_SILENCE = 3.0
DEFAULT_INTERVAL = 0.5


class ProcessWatch:
    """Calls ``on_dead(process)`` once for each watched process that stops heartbeating.

    ``silence`` must leave room for at least one missed beat (it is checked against the
    layer's ``heartbeat_interval``); a process's sockets are then closed at most about
    ``silence + interval`` seconds after its last beat.
    """

    def __init__(
        self,
        layer: "BaseLayer",
        on_dead: Callable[[str], None],
        silence: float = DEFAULT_SILENCE,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if silence <= layer.heartbeat_interval:
            raise ValueError(
                f"silence ({silence} s) must be longer than the layer's heartbeat interval "
                f"({layer.heartbeat_interval} s)"
            )
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.layer = layer
        self.on_dead = on_dead
        self.silence = silence
        self.interval = interval
        self.watched: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, address: str) -> str:
        """Watch the process reading ``address`` (a ``!`` channel); returns that process.

        Each ``watch`` is matched by one ``unwatch``; the process is watched while any remain.
        """
        process = process_of(address)
        self.watched[process] = self.watched.get(process, 0) + 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="switchroom-process-watch")
        return process

    def unwatch(self, process: str) -> None:
        """Drop one ``watch`` of ``process``."""
        left = self.watched.get(process, 0) - 1
        if left > 0:
            self.watched[process] = left
        else:
            self.watched.pop(process, None)

    async def close(self) -> None:
        """Stop watching."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.interval)
            if not self.watched:
                continue
            try:
                ages = await self.layer.liveness(list(self.watched))
            except LayerError as exc:
                # Without the layer nothing can be told apart; the layer logs its outage.
                log.debug("cannot check process liveness (%s)", exc)
                continue
            for process, age in ages.items():
                if process in self.watched and (age is None or age > self.silence):
                    del self.watched[process]
                    log.warning(
                        "process %s stopped heartbeating (%s); closing what it served",
                        process,
                        "gone" if age is None else f"silent for {age:.1f} s",
                    )
                    try:
                        self.on_dead(process)
                    except Exception:
                        log.exception("handling the end of process %s failed", process)
