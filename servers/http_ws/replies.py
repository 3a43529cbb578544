"""One reader for every reply this server process gets.

All reply channels of the process share the layer's process queues (``http.response.<id>!``
and ``websocket.send.<id>!``), so one blocking read drains replies for every open request
and socket in batches, and a dict hands each to its connection.
"""

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from switchroom.layers import BaseLayer, LayerError

log = logging.getLogger("switchroom.http")

Handler = Callable[[dict[str, Any]], None]


class ReplyRouter:
    """Names reply channels, and delivers what arrives on them to registered handlers."""

    def __init__(self, layer: BaseLayer, batch: int = 500) -> None:
        self.layer = layer
        self.batch = batch
        self.handlers: dict[str, Handler] = {}
        self.prefixes: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Learn this process's prefixes and start the reader."""
        for kind in ("http.response!", "websocket.send!"):
            channel = await self.layer.new_channel(kind)
            self.prefixes.append(channel[: channel.index("!") + 1])
        self._task = asyncio.get_running_loop().create_task(self._read(), name="switchroom-replies")

    def new_channel(self, websocket: bool, handler: Handler) -> str:
        """A fresh reply channel for one request or socket, routed to ``handler``."""
        channel = self.prefixes[websocket] + secrets.token_hex(8)
        self.handlers[channel] = handler
        return channel

    def forget(self, channel: str) -> None:
        """Stop routing ``channel``; later replies to it are dropped."""
        self.handlers.pop(channel, None)

    async def _read(self) -> None:
        while True:
            try:
                batch = await self.layer.receive_many(self.prefixes, self.batch, timeout=5.0)
            except LayerError as exc:
                log.warning("reading replies failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for channel, message in batch:
                handler = self.handlers.get(channel)
                if handler is None:
                    log.debug("reply for %s, which is gone: dropped", channel)
                    continue
                try:
                    handler(message)
                except Exception:
                    log.exception("handling a reply on %s failed", channel)

    async def stop(self) -> None:
        """Stop reading replies."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
