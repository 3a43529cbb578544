"""Joins the sends of every caller in a process into one round trip to the backend.

While one batch is on its way, further sends gather and go together in the next: under
load many senders share each Redis call instead of making one each (and holding one
connection each), and when idle a send goes out at once.
"""

import asyncio
from collections.abc import Awaitable, Callable

from .base import Message
from .errors import LayerError

Results = list[LayerError | None]


class SendBatcher:
    """``send_many`` with the backend's meaning, sent together with whatever else waits.

    Items keep their order, so one caller's messages stay in order.
    """

    def __init__(self, send_now: Callable[[list[tuple[str, Message]]], Awaitable[Results]]) -> None:
        self.send_now = send_now
        self.items: list[tuple[str, Message]] = []
        self.waiters: list[tuple[asyncio.Future[Results], int, int]] = []
        self.flusher: asyncio.Task[None] | None = None

    async def send_many(self, items: list[tuple[str, Message]]) -> Results:
        """One result per item, None when sent."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Results] = loop.create_future()
        start = len(self.items)
        self.items.extend(items)
        self.waiters.append((future, start, len(self.items)))
        if self.flusher is None:
            self.flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Send what has gathered; what gathers meanwhile goes in the next call."""
        try:
            while self.items:
                items, waiters = self.items, self.waiters
                self.items, self.waiters = [], []
                try:
                    results = await self.send_now(items)
                except LayerError as exc:
                    results = [exc] * len(items)
                except BaseException as exc:
                    # Not a layer error (the loop is stopping, or a bug): nobody may wait for
                    # ever, neither these callers nor those who came meanwhile.
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
