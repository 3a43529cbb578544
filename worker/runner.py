"""The worker loop: drain messages in batches, run at most N consumers at once, stop
taking messages while at the limit, and stop gracefully. It has the servers' lifecycle
(``switchroom.shared.serving.Server``): ``start`` returns once it reads its channels,
``stop`` once running consumers finished (or were cancelled after the grace period).

Durable channels (``email.receive``, ``slack.event``, ...) are read apart from the others:
each entry is acknowledged only after its consumer returned, kept from other workers
while its consumer runs, and left for another worker to retry when the consumer fails
(after the layer's visibility timeout) or given back at once when the worker stops
before it could run it to the end."""

import asyncio
import dataclasses
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from switchroom.layers import BaseLayer, Delivery, LayerError, LayerUnavailable, Leases
from switchroom.layers.readers import Readers
from switchroom.shared import metrics
from switchroom.shared.startup import StartupError

from .app import App
from .asgi import Lifespan
from .dispatch import Dispatcher
from .settings import WorkerSettings

log = logging.getLogger("switchroom.worker")


class Worker:
    """Reads the app's channels from the layer and hands each message to the dispatcher."""

    def __init__(
        self,
        app: App,
        layer: BaseLayer,
        settings: WorkerSettings | None = None,
        poll: float = 0.5,
        **overrides: Any,
    ) -> None:
        """``overrides`` replace fields of ``settings`` (``Worker(app, layer, grace=5)``)."""
        s = self.settings = dataclasses.replace(settings or WorkerSettings(), **overrides)
        if min(s.concurrency, s.threads, s.batch, s.durable_batch) < 1:
            raise ValueError("concurrency, threads, batch and durable_batch must be at least 1")
        self.app = app
        self.layer = layer
        self.concurrency = s.concurrency
        self.batch = s.batch
        self.durable_batch = s.durable_batch
        self.grace = s.grace
        self.poll = poll
        self.pool = ThreadPoolExecutor(s.threads, thread_name_prefix="switchroom-consumer")
        self.lifespan = Lifespan(app.asgi_app, s.lifespan_timeout) if app.asgi_app else None
        self.dispatcher = Dispatcher(app, layer, self.pool, body_timeout=s.body_timeout)
        self.running: set[asyncio.Task[None]] = set()
        self._socket_tails: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self.serving = asyncio.Event()
        metrics.workers.add(self)
        self.leases = Leases(layer.durable)
        # Counts this process as a reader of its plain channels (servers ask; readers.py).
        self.readers = Readers(layer)
        # Entries whose consumer returned, waiting to be acknowledged in one call.
        self._acks: list[Delivery] = []
        self._ack_ready = asyncio.Event()
        self._unfinished: dict[tuple[str, str], Delivery] = {}
        self._task: asyncio.Future[None] | None = None
        self._said_stopped = False

    async def start(self) -> None:
        """Run the ASGI lifespan startup and start reading; returns once reading.

        An app without routes is a ValueError; an app whose startup fails, a StartupError.
        """
        channels = self.app.channels()
        if not channels:
            raise ValueError("the app has no routes")
        if self._task is not None:
            return
        # Announced before the app starts: a worker still starting is waited for, not refused.
        await self.readers.announce(c for c in channels if not self.layer.durable.handles(c))
        if self.lifespan is not None:
            try:
                await self.lifespan.startup()
            except Exception as exc:
                await self.readers.withdraw()
                self.pool.shutdown(wait=False, cancel_futures=True)
                raise StartupError(f"the app did not start: {exc or type(exc).__name__}") from None
            self.dispatcher.lifespan_state = self.lifespan.state if self.lifespan.supported else None
        if self.dispatcher.sockets is not None:
            # ASGI sockets' messages arrive at this process's inbox (socket affinity).
            await self.layer.inbox.start()
        log.info("worker reading %s (concurrency %d)", ", ".join(channels), self.concurrency)
        self.serving.set()
        self._task = asyncio.ensure_future(self._read(channels))

    def stop(self) -> "asyncio.Future[None]":
        """Stop taking messages at once; the future is done once running consumers finished
        (they get the grace period) and the worker cleaned up."""
        if not self._stopping.is_set():
            log.info("stopping: finishing %d running consumers", len(self.running))
        self._stopping.set()
        if self._task is None:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return asyncio.ensure_future(self._stopped(self._task))

    async def _stopped(self, task: "asyncio.Future[None]") -> None:
        await asyncio.wait([task])
        if not self._said_stopped:
            self._said_stopped = True
            log.info("worker stopped")

    async def wait(self) -> None:
        """Return once the worker has stopped; raises what stopped it if it was not ``stop``."""
        if self._task is not None:
            await self._task

    async def run(self) -> None:
        """Start, then serve until ``stop``."""
        await self.start()
        await self.wait()

    async def _read(self, channels: list[str]) -> None:
        """The reading loops; on their end, finish or cancel running consumers and clean up."""
        sockets = self.dispatcher.sockets
        durable = [c for c in channels if self.layer.durable.handles(c)]
        plain = [c for c in channels if c not in durable]
        loops = [self._serve(plain)] if plain else []
        acker = None
        if durable:
            loops.append(self._serve_durable(durable))
            acker = asyncio.ensure_future(self._acknowledge())
        try:
            await asyncio.gather(*loops)
        finally:
            await self.readers.withdraw()
            await asyncio.gather(self._drain(), sockets.stop(self.grace) if sockets else asyncio.sleep(0))
            await self._finish_durable(acker)
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

    async def _serve_durable(self, channels: list[str]) -> None:
        while not self._stopping.is_set():
            room = self.concurrency - len(self.running)
            if room <= 0:
                await asyncio.wait(set(self.running), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                deliveries = await self.layer.durable.read(
                    channels, min(room, self.durable_batch), timeout=self.poll
                )
            except LayerError as exc:
                log.debug("reading %s failed (%s); retrying", ", ".join(channels), exc)
                await asyncio.sleep(self.poll)
                continue
            for delivery in deliveries:
                self.leases.hold(delivery)
                self._unfinished[delivery.channel, delivery.id] = delivery
                task = asyncio.create_task(self._handle_durable(delivery))
                self.running.add(task)
                task.add_done_callback(self.running.discard)

    async def _handle_durable(self, delivery: Delivery) -> None:
        """Run the consumer; acknowledge the entry only if it returned."""
        handled = await self.dispatcher.handle(delivery.channel, delivery.message, delivery)
        self.leases.drop(delivery)
        del self._unfinished[delivery.channel, delivery.id]
        if handled:
            self._acks.append(delivery)
            self._ack_ready.set()
            return
        log.warning(
            "%s entry %s is left for a retry in %.0f s (delivery %d of %d)",
            delivery.channel,
            delivery.key,
            self.layer.durable.settings.visibility_timeout,
            delivery.attempt,
            self.layer.durable.settings.max_deliveries,
        )

    async def _acknowledge(self) -> None:
        """Acknowledge finished entries in batches, as they finish."""
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        batch, self._acks = self._acks, []
        if not batch:
            return
        try:
            await self.layer.durable.ack(batch)
        except LayerError as exc:
            # Not lost: unacknowledged entries come back after the visibility timeout. An
            # outage is logged once by the layer, not on each try.
            level = logging.DEBUG if isinstance(exc, LayerUnavailable) else logging.WARNING
            log.log(level, "could not acknowledge %d entries (%s); trying again", len(batch), exc)
            self._acks = batch + self._acks
            await asyncio.sleep(self.poll)
            self._ack_ready.set()

    async def _finish_durable(self, acker: "asyncio.Task[None] | None") -> None:
        """On stop: acknowledge what finished, give back what did not (for another worker
        to take at once), and stop renewing."""
        if acker is None:
            return
        acker.cancel()
        await asyncio.gather(acker, return_exceptions=True)
        await self._flush_acks()
        await self.leases.close()
        unfinished = list(self._unfinished.values())
        self._unfinished.clear()
        if unfinished:
            log.info("giving back %d durable entries not finished before the stop", len(unfinished))
            try:
                await self.layer.durable.release(unfinished)
            except LayerError as exc:
                log.warning(
                    "could not give back %d entries (%s): they return after the visibility timeout",
                    len(unfinished),
                    exc,
                )

    def _start(self, channel: str, message: dict[str, Any]) -> None:
        reply = message.get("reply_channel") if channel.startswith("websocket.") else None
        previous = self._socket_tails.get(reply) if isinstance(reply, str) else None
        if previous is None:
            task = asyncio.create_task(self.dispatcher.handle(channel, message))
        else:
            task = asyncio.create_task(self._handle_after(previous, channel, message))
        self.running.add(task)
        if isinstance(reply, str):
            self._socket_tails[reply] = task
            task.add_done_callback(functools.partial(self._socket_done, reply))
        else:
            task.add_done_callback(self.running.discard)

    def _socket_done(self, reply: str, task: asyncio.Task[None]) -> None:
        """A socket's message handled: forget the task, and the socket's tail if it is the last."""
        self.running.discard(task)
        if self._socket_tails.get(reply) is task:
            del self._socket_tails[reply]

    async def _handle_after(self, previous: asyncio.Task[None], channel: str, message: dict) -> None:
        """Handle a message, after the previous one of the same socket so frames stay in order."""
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
