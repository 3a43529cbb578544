"""The worker loop: drain messages in batches, run at most N consumers at once, stop
taking messages while at the limit, and shut down gracefully on SIGTERM/SIGINT."""

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from switchroom.layers import BaseLayer, LayerError
from switchroom.shared import metrics

from .app import App
from .asgi import Lifespan
from .dispatch import Dispatcher

log = logging.getLogger("switchroom.worker")


class Worker:
    """Reads the app's channels from the layer and hands each message to the dispatcher."""

    def __init__(
        self,
        app: App,
        layer: BaseLayer,
        concurrency: int = 100,
        threads: int = 8,
        batch: int = 100,
        grace: float = 30.0,
        poll: float = 0.5,
        body_timeout: float = 30.0,
        lifespan_timeout: float = 30.0,
    ) -> None:
        if concurrency < 1 or threads < 1 or batch < 1:
            raise ValueError("concurrency, threads and batch must be at least 1")
        self.app = app
        self.layer = layer
        self.concurrency = concurrency
        self.batch = batch
        self.grace = grace
        self.poll = poll
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="switchroom-consumer")
        self.lifespan = Lifespan(app.asgi_app, lifespan_timeout) if app.asgi_app else None
        self.dispatcher = Dispatcher(app, layer, self.pool, body_timeout=body_timeout)
        self.running: set[asyncio.Task[None]] = set()
        self._socket_tails: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.serving = asyncio.Event()
        metrics.workers.add(self)

    def stop(self) -> None:
        """Stop taking messages; running consumers get the grace period to finish."""
        if not self._stopping.is_set():
            log.info("stopping: finishing %d running consumers", len(self.running))
        self._stopping.set()

    async def run(self) -> None:
        """Serve until ``stop``; then finish or cancel running consumers and clean up."""
        channels = self.app.channels()
        if not channels:
            raise ValueError("the app has no routes")
        if self.lifespan is not None:
            await self.lifespan.startup()
            self.dispatcher.lifespan_state = self.lifespan.state if self.lifespan.supported else None
        log.info("worker reading %s (concurrency %d)", ", ".join(channels), self.concurrency)
        self.serving.set()
        try:
            await self._serve(channels)
        finally:
            await self._drain()
            if self.lifespan is not None:
                await self.lifespan.shutdown()
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self, channels: list[str]) -> None:
        while not self._stopping.is_set():
            room = self.concurrency - len(self.running)
            if room <= 0:
                await asyncio.wait(set(self.running), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                batch = await self.layer.receive_many(channels, min(room, self.batch), timeout=self.poll)
            except LayerError as exc:
                # The layer logs an outage once; each retry is only worth a debug line.
                log.debug("receive failed (%s); retrying", exc)
                await asyncio.sleep(self.poll)
                continue
            for channel, message in batch:
                self._start(channel, message)

    def _start(self, channel: str, message: dict[str, Any]) -> None:
        reply = message.get("reply_channel") if channel.startswith("websocket.") else None
        previous = self._socket_tails.get(reply) if isinstance(reply, str) else None
        task = asyncio.create_task(self._handle_after(previous, channel, message))
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        if isinstance(reply, str):
            self._socket_tails[reply] = task
            task.add_done_callback(lambda t: self._forget_tail(reply, t))

    def _forget_tail(self, reply: str, task: asyncio.Task[None]) -> None:
        if self._socket_tails.get(reply) is task:
            del self._socket_tails[reply]

    async def _handle_after(self, previous: asyncio.Task[None] | None, channel: str, message: dict) -> None:
        """Handle a message, after the previous one of the same socket so frames stay in order."""
        if previous is not None:
            await asyncio.wait([previous])
        await self.dispatcher.handle(channel, message)

    async def _drain(self) -> None:
        if not self.running:
            return
        done, pending = await asyncio.wait(set(self.running), timeout=self.grace)
        if pending:
            log.warning("cancelling %d consumers still running after %s s", len(pending), self.grace)
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)

    async def not_ready(self) -> str | None:
        """None while taking messages; otherwise why not."""
        if self._stopping.is_set():
            return "stopping"
        return None if self.serving.is_set() else "starting"

    def served_channels(self) -> list[str]:
        """The channels this worker reads."""
        return self.app.channels()

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT call ``stop``."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
