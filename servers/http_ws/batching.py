"""Gathers the layer sends of every request and socket of one server process into one
``send_many`` per round trip to the layer: under load many clients share each Redis call
instead of making one each, and when idle a send goes out at once, as before."""

import asyncio

from switchroom.layers import BaseLayer, LayerError
from switchroom.layers.base import Message


class SendBatcher:
    """``send`` and ``send_many`` with the layer's meaning, sent together with whatever
    else is waiting. Items keep their order, so one caller's messages stay in order."""

    def __init__(self, layer: BaseLayer) -> None:
        self.layer = layer
        self.items: list[tuple[str, Message]] = []
        self.waiters: list[tuple[asyncio.Future[list[LayerError | None]], int, int]] = []
        self.flusher: asyncio.Task[None] | None = None

    async def send_many(self, items: list[tuple[str, Message]]) -> list[LayerError | None]:
        """One result per item, None when sent (as ``BaseLayer.send_many``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[LayerError | None]] = loop.create_future()
        start = len(self.items)
        self.items.extend(items)
        self.waiters.append((future, start, len(self.items)))
        if self.flusher is None:
            self.flusher = loop.create_task(self._flush())
        return await future

    async def send(self, channel: str, message: Message) -> None:
        """Send one message; raises the layer's error for it (as ``BaseLayer.send``)."""
        (error,) = await self.send_many([(channel, message)])
        if error is not None:
            raise error

    async def _flush(self) -> None:
        """Send what has gathered; what gathers meanwhile goes in the next call."""
        try:
            while self.items:
                items, waiters = self.items, self.waiters
                self.items, self.waiters = [], []
                try:
                    results: list[LayerError | None] = await self.layer.send_many(items)
                except LayerError as exc:
                    results = [exc] * len(items)
                except BaseException as exc:
                    # Not a layer error (the server is stopping, or a bug): nobody may wait
                    # for ever, neither these callers nor those who came meanwhile.
                    waiters += self.waiters
                    self.items, self.waiters = [], []
                    for future, _, _ in waiters:
                        if not future.done():
                            if isinstance(exc, asyncio.CancelledError):
                                future.cancel()
                            else:
                                future.set_exception(exc)
                    raise
                for future, start, end in waiters:
                    if not future.done():
                        future.set_result(results[start:end])
        finally:
            self.flusher = None
