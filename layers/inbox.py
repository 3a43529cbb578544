"""A process's inbox: every ``!`` address of one process, read by one reader.

All addresses of a process (``http.response.<process>!<local>``, ``websocket.send...``)
share its one queue on the layer, ``<process>!``, which holds at most
``process_capacity`` messages. The inbox names addresses synchronously and is that
queue's only reader. It works in one of two ways:

- **handlers**: after ``start()``, a reader takes the queue in batches and calls the
  handler registered for each message's address (servers do this for every request and
  socket). A group send brings one entry for all of this process's members; ``fanout``,
  when set, gets it whole (a server encodes one frame for many sockets), else each
  address's handler gets the same message.
- **receive**: ``receive()`` returns ``(address, message)`` pairs, one per address (ASGI
  1.0 peers and scripts).

A ``Mailbox`` is an address whose messages wait in a bounded local queue for code that
reads one address at a time (a reply awaited by a script, a Channels consumer).

A message whose address has no handler (its request or socket is gone) is dropped and
counted under ``gone``. While the inbox runs it keeps its process alive on the layer with
a heartbeat; once it closes, or its heartbeat lapses, the process is dead to the others:
sends to its addresses raise ``ReceiverGone`` and group sends skip and remove its members.
"""

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .cancelling import raise_if_cancelled
from .errors import LayerError
from .names import split_addresses, validate_channel

if TYPE_CHECKING:
    from .base import BaseLayer, Message

log = logging.getLogger("switchroom.layers")

Handler = Callable[["Message"], None]
# Gets a fan-out entry's addresses and its message; returns the addresses it left to the
# inbox (which hands them to their handlers one by one).
Fanout = Callable[[list[str], "Message"], list[str]]

DEFAULT_BATCH = 500
# Random bytes read from the operating system at a time for addresses' local parts: each
# address takes 8 of them (16 hex digits), so one read serves 512 addresses.
RANDOM_POOL = 4096
TOKEN_DIGITS = 16
# Address kinds whose checked prefix an inbox remembers (kinds are a program's constants).
KNOWN_KINDS = 64
READ_BLOCK = 5.0
RETRY_DELAY = 0.5


class Inbox:
    """The one reader of one process's ``!`` queue; see the module docstring."""

    def __init__(self, layer: "BaseLayer", process: str, batch: int = DEFAULT_BATCH) -> None:
        self.layer = layer
        self.process = process
        self.queue = process + "!"
        self.batch = batch
        self.handlers: dict[str, Handler] = {}
        self.fanout: Fanout | None = None
        # Called when a beat finds the process was taken for dead (a stall, or the layer
        # restarted empty): what it had announced, such as group members, is to be redone.
        self.revived: list[Callable[[], None]] = []
        self._pending: deque[tuple[str, Message]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._beats = 0
        self._prefixes: dict[str, str] = {}
        self._random = ""
        self._random_at = 0

    # -- addresses ---------------------------------------------------------------------

    def address(self, kind: str = "inbox", handler: Handler | None = None, local: str | None = None) -> str:
        """A new address of this process, ``kind.<process>!<local>``, routed to ``handler``.

        ``local`` defaults to a random token (64 bits from the operating system's secure
        random source, so that no address can be guessed from another); give one to make an
        address a later message can name again (the Slack server uses an event's id).
        """
        if local:
            address = validate_channel(f"{kind}.{self.process}!{local}")
        else:
            address = self._prefix(kind) + self._token()
        if handler is not None:
            if self._reader is None:
                raise RuntimeError("start() the inbox before routing addresses to handlers")
            self.handlers[address] = handler
        return address

    def _prefix(self, kind: str) -> str:
        """``kind.<process>!``, checked once per kind as the start of a full-length address."""
        prefix = self._prefixes.get(kind)
        if prefix is None:
            prefix = validate_channel(f"{kind}.{self.process}!{'0' * TOKEN_DIGITS}")[:-TOKEN_DIGITS]
            if len(self._prefixes) < KNOWN_KINDS:
                self._prefixes[kind] = prefix
        return prefix

    def _token(self) -> str:
        """The next 16 hex digits of the random pool, refilled from ``os.urandom`` when used up."""
        at = self._random_at
        if at >= len(self._random):
            self._random = os.urandom(RANDOM_POOL).hex()
            at = 0
        self._random_at = at + TOKEN_DIGITS
        return self._random[at : at + TOKEN_DIGITS]

    def forget(self, address: str) -> None:
        """Stop routing ``address``; what still arrives for it is dropped as ``gone``."""
        self.handlers.pop(address, None)

    def mailbox(self, kind: str = "inbox", capacity: int | None = None) -> "Mailbox":
        """A new address whose messages wait for ``Mailbox.get`` (at most ``capacity``,
        default ``process_capacity``; more are dropped as ``full``)."""
        return Mailbox(self, kind, capacity or self.layer.process_capacity)

    # -- lifetime ----------------------------------------------------------------------

    async def start(self) -> None:
        """Announce the process alive (when the layer answers), then start the heartbeat and
        the reader that calls handlers."""
        if self._reader is not None:
            return
        await self.keep_alive()
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"switchroom-inbox-{self.process}"
        )

    async def keep_alive(self) -> None:
        """Announce the process alive (when the layer answers) and start the heartbeat, without
        a reader (for a process that is known to others by an address it reads nothing on)."""
        if self._heartbeat is None:
            try:
                await self.layer._announce(self.process, alive=True)
                self._beats += 1
            except LayerError as exc:
                log.warning("process %s could not announce itself yet (%s)", self.process, exc)
            self._start_heartbeat()

    async def close(self) -> None:
        """Stop reading and beating, and mark the process gone on the layer at once."""
        tasks = [t for t in (self._reader, self._heartbeat) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reader = self._heartbeat = None
        if tasks:
            try:
                await self.layer._announce(self.process, alive=False)
            except LayerError as exc:
                log.info("could not mark process %s gone (%s); its heartbeat lapses", self.process, exc)
        self.layer._inboxes.pop(self.process, None)

    @property
    def running(self) -> bool:
        """True once ``start()`` was called and until ``close()``."""
        return self._reader is not None

    # -- receive mode ------------------------------------------------------------------

    async def receive(
        self, max_messages: int = 100, timeout: float | None = None
    ) -> list[tuple[str, "Message"]]:
        """Up to ``max_messages`` ``(address, message)`` pairs; ``[]`` after ``timeout``.

        Each address of a fan-out entry comes back as its own pair, with its own copy.
        """
        if self._reader is not None:
            raise RuntimeError("this inbox hands its messages to handlers; receive() is not available")
        self._start_heartbeat()
        if not self._pending:
            for field, message in await self.layer._receive_queues([self.queue], max_messages, timeout):
                addresses = split_addresses(field)
                if len(addresses) == 1:
                    self._pending.append((field, message))
                else:
                    self._pending.extend((a, dict(message)) for a in addresses)
        count = min(max_messages, len(self._pending))
        return [self._pending.popleft() for _ in range(count)]

    # -- the reader ----------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            raise_if_cancelled()
            try:
                batch = await self.layer._receive_queues([self.queue], self.batch, READ_BLOCK)
            except LayerError as exc:
                # The layer logs an outage once; this loop just retries.
                log.debug("process %s cannot read its inbox (%s); retrying", self.process, exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            self.layer.stats.counts["received"] += len(batch)
            for field, message in batch:
                self._dispatch(field, message)

    def _dispatch(self, field: str, message: "Message") -> None:
        if "," not in field:
            self._deliver(field, message)
            return
        addresses = split_addresses(field)
        if self.fanout is not None:
            try:
                addresses = self.fanout(addresses, message)
            except Exception:
                log.exception("fanning out to %d addresses of %s failed", len(addresses), self.queue)
                return
        for address in addresses:
            self._deliver(address, message)

    def _deliver(self, address: str, message: "Message") -> None:
        handler = self.handlers.get(address)
        if handler is None:
            self.layer.stats.drop("gone", 1, self.queue)
            return
        try:
            handler(message)
        except Exception:
            log.exception("handling a message for %s failed", address)

    # -- liveness ------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat(), name=f"switchroom-heartbeat-{self.process}"
            )

    async def _beat(self) -> None:
        """Refresh the process's liveness every ``heartbeat_interval`` seconds."""
        while True:
            raise_if_cancelled()
            if self._beats:
                await asyncio.sleep(self.layer.heartbeat_interval)
            try:
                was_alive = await self.layer._announce(self.process, alive=True)
            except LayerError:
                await asyncio.sleep(self.layer.heartbeat_interval)
                continue
            if not was_alive and self._beats:
                log.warning(
                    "process %s was taken for dead: its heartbeat lapsed (a stall over %.0f s, or the "
                    "layer restarted); other processes may have removed its group members",
                    self.process,
                    self.layer.liveness_timeout,
                )
                for callback in self.revived:
                    callback()
            self._beats += 1


class Mailbox:
    """An inbox address whose messages wait in a bounded local queue until read."""

    def __init__(self, inbox: Inbox, kind: str, capacity: int) -> None:
        self.inbox = inbox
        self.capacity = capacity
        self._messages: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.address = inbox.address(kind, self._put)

    def _put(self, message: "Message") -> None:
        if len(self._messages) >= self.capacity:
            self.inbox.layer.stats.drop("full", 1, self.address)
            return
        self._messages.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self, timeout: float | None = None) -> "Message | None":
        """The next message, or None after ``timeout`` seconds."""
        if not self._messages:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        return self._messages.popleft()

    def close(self) -> None:
        """Stop receiving; later messages are dropped as ``gone``."""
        self.inbox.forget(self.address)
