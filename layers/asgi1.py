"""The ASGI 1.0 channel-layer interface over any Switchroom layer.

Channels 1.x workers and Daphne 1.x servers speak the synchronous channel-layer API of
the ASGI 1.0 standard (asgiref 1.x). This class offers exactly that API on top of a
Switchroom layer (memory, Redis, sharded Redis), running it on a private event-loop
thread, so those processes share a layer with Switchroom's own servers and workers::

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "switchroom.layers.asgi1.ChannelLayer",
            "ROUTING": "myproject.routing.channel_routing",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"], "capacity": 100},
        },
    }

Names follow the standard: ``prefix?random`` channels have a single reader and
``prefix!local`` channels belong to the one process that receives on ``prefix!`` and
gets back the full name of each message. They map directly onto Switchroom's ``?``
channels and process inboxes (the process being the last dotted part of the prefix, as
``daphne.response.<id>!``); a group message comes once per member, as the standard says.
See ``docs/migrating-from-channels-1.md``.
"""

import asyncio
import os
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from .base import BaseLayer, Message
from .errors import ChannelFull as _ChannelFull
from .errors import InvalidChannelName
from .errors import MessageTooLarge as _MessageTooLarge
from .names import process_of, validate_channel
from .readers import Readers
from .sync import SyncLayer, SyncPresence
from .url import get_layer

DEFAULT_URL = "memory://"
DEFAULT_BLOCK = 5.0

# asgi_redis settings with no counterpart here, and what to do instead.
UNSUPPORTED_OPTIONS = {
    "symmetric_encryption_keys": "encrypt traffic with TLS instead: rediss:// URLs",
    "connection_kwargs": "put connection settings in the URL (rediss://, :password@) or use socket_timeout",
}


def _host_url(host: str | Sequence[Any] | Mapping[str, Any]) -> str:
    """One entry of asgi_redis-style ``hosts``: a URL, a ``(host, port)`` pair, or a dict."""
    if isinstance(host, str):
        return host if "://" in host else f"redis://{host}"
    if isinstance(host, Mapping):
        return f"redis://{host.get('host', '127.0.0.1')}:{host.get('port', 6379)}/{host.get('db', 0)}"
    address, port = host
    return f"redis://{address}:{port}/0"


def _globs(channel_capacity: Mapping[Any, int] | None) -> dict[str, int]:
    """asgiref's ``channel_capacity`` as Switchroom's glob → capacity overrides."""
    globs: dict[str, int] = {}
    for pattern, value in (channel_capacity or {}).items():
        if isinstance(pattern, re.Pattern):
            raise TypeError(
                "channel_capacity patterns must be glob strings; compiled regexes are not supported"
            )
        globs[pattern] = int(value)
    return globs


Read = Callable[[float], Awaitable[list[tuple[str, Message]]]]


def _sources(layer: BaseLayer, names: list[str]) -> list[Read]:
    """One reader for the plain names together and one per process inbox named."""
    plain = [n for n in names if not n.endswith("!")]
    reads: list[Read] = []
    if plain:
        reads.append(lambda timeout: layer.receive_many(plain, 1, timeout))
    for name in names:
        if name.endswith("!"):
            inbox = layer.open_inbox(process_of(name))
            reads.append(lambda timeout, inbox=inbox: inbox.receive(1, timeout))
    return reads


async def _receive_one(
    layer: BaseLayer, names: list[str], timeout: float, held: deque[tuple[str, Message]]
) -> list[tuple[str, Message]]:
    """One message from plain channels and process inboxes (``prefix!``), as ASGI 1.0
    receives. When several sources answer one blocking wait, the extra messages are
    ``held`` for the next call that asks for their channel."""
    for index, (channel, message) in enumerate(held):
        if channel in names or channel[: channel.find("!") + 1] in names:
            del held[index]
            return [(channel, message)]
    reads = _sources(layer, names)
    for read in reads:
        got = await read(0)
        if got or not timeout:
            return got
    if len(reads) == 1:
        return await reads[0](timeout)
    tasks = [asyncio.ensure_future(read(timeout)) for read in reads]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    got: list[tuple[str, Message]] = []
    errors = []
    for task in tasks:
        if task.cancelled():
            continue
        if task.exception() is not None:
            errors.append(task.exception())
        else:
            got += task.result()
    if errors and not got:
        raise errors[0]
    held.extend(got[1:])
    return got[:1]


class ChannelLayer:
    """An ASGI 1.0 channel layer (asgiref 1.1 API) backed by a Switchroom layer.

    ``url`` (or ``hosts``, a list of Redis URLs or ``(host, port)`` pairs, several being
    shards) picks the backend; without either it is ``$SWITCHROOM_LAYER`` or memory.
    ``capacity``, ``channel_capacity`` (glob → capacity), ``expiry`` and ``group_expiry``
    mean what the standard says (unset, they come from the URL's query string or the
    layer's defaults: 100, 60 s, 1 day); ``process_capacity`` bounds the queue shared by one
    process's ``!`` channels; ``block_timeout`` is the longest wait of a blocking receive.
    Further keywords (``prefix``, ``max_message_size``, ``socket_timeout``, ``local`` ...)
    go to ``switchroom.layers.get_layer``.
    """

    extensions = ["groups", "flush"]

    ChannelFull = _ChannelFull
    MessageTooLarge = _MessageTooLarge

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        hosts: Sequence[Any] | None = None,
        expiry: float | None = None,
        group_expiry: float | None = None,
        capacity: int | None = None,
        channel_capacity: Mapping[Any, int] | None = None,
        block_timeout: float = DEFAULT_BLOCK,
        **options: Any,
    ) -> None:
        if url is not None and hosts is not None:
            raise ValueError("give either url or hosts, not both")
        unsupported = sorted(options.keys() & UNSUPPORTED_OPTIONS.keys())
        if unsupported:
            name = unsupported[0]
            raise ValueError(f"the {name!r} setting is not supported: {UNSUPPORTED_OPTIONS[name]}")
        if hosts is not None:
            url = [_host_url(h) for h in hosts]
        if url is None:
            url = os.environ.get("SWITCHROOM_LAYER", DEFAULT_URL)
        if block_timeout <= 0:
            raise ValueError("block_timeout must be positive")
        given = {"expiry": expiry, "group_expiry": group_expiry, "capacity": capacity}
        options.update((key, value) for key, value in given.items() if value is not None)
        self.channel_capacity = _globs(channel_capacity)
        self.block_timeout = float(block_timeout)
        self.layer = get_layer(url, capacities=self.channel_capacity, **options)
        # The layer's own values: keywords, else the URL's query string, else its defaults.
        self.expiry = self.layer.expiry
        self.group_expiry = self.layer.group_expiry
        self.capacity = self.layer.capacity
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._loop.run_forever, name="switchroom-asgi1", daemon=True
        )
        self._thread.start()
        self._sync = SyncLayer(self.layer, loop=self._loop)
        self._held: deque[tuple[str, Message]] = deque()
        # A process that receives on plain channels is counted as their reader (readers.py).
        self._readers = Readers(self.layer)

    @property
    def presence(self) -> SyncPresence:
        """Presence on the layer's groups, as blocking calls (a Switchroom extension, beyond
        the standard; ``docs/presence.md``): ``presence.track("room", reply_channel, user,
        diffs="frame")`` in a ``websocket.connect`` consumer, ``untrack`` on disconnect."""
        return self._sync.presence

    # -- the ASGI 1.0 core API ---------------------------------------------------------

    def send(self, channel: str, message: Message) -> None:
        """Send ``message`` on ``channel``; raises ChannelFull or MessageTooLarge."""
        self._check_name(channel, receive=False)
        self._sync.send(channel, message)

    def receive(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str, Message] | tuple[None, None]:
        """The next message on any of ``channels``, or ``(None, None)``.

        Without ``block`` it returns at once; with it, it waits up to ``block_timeout``.
        A process-specific channel is received on its prefix (``name!``) and comes back
        with its full name.
        """
        if isinstance(channels, str | bytes):
            raise InvalidChannelName("receive needs a list of channel names, not a string")
        names = list(dict.fromkeys(channels))
        if not names:
            raise InvalidChannelName("receive needs at least one channel name")
        for name in names:
            self._check_name(name, receive=True)
        plain = [n for n in names if not n.endswith("!")]
        if any(n not in self._readers.channels for n in plain):
            asyncio.run_coroutine_threadsafe(self._readers.announce(plain), self._loop).result()
        timeout = self.block_timeout if block else 0
        read = _receive_one(self.layer, names, timeout, self._held)
        batch = asyncio.run_coroutine_threadsafe(read, self._loop).result()
        return batch[0] if batch else (None, None)

    def receive_many(
        self, channels: Iterable[str], block: bool = False
    ) -> tuple[str, Message] | tuple[None, None]:
        """The standard's deprecated spelling of ``receive``, kept for old callers."""
        return self.receive(channels, block)

    def new_channel(self, pattern: str) -> str:
        """A new unique single-reader name from ``pattern``, which must end in ``?``."""
        if not isinstance(pattern, str) or not pattern.endswith("?") or pattern.count("?") != 1:
            raise InvalidChannelName(f"new_channel needs a pattern ending in '?': {pattern!r}")
        return self._sync.new_channel(pattern)

    # -- the "groups" extension ----------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``, or refresh its membership."""
        self._check_name(channel, receive=False)
        self._sync.group_add(group, channel)

    def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; nothing happens if it is not a member."""
        self._sync.group_discard(group, channel)

    def group_channels(self, group: str) -> list[str]:
        """The current members of ``group``."""
        return self._sync.group_channels(group)

    def send_group(self, group: str, message: Message) -> None:
        """Send ``message`` to every member of ``group``; full members are skipped."""
        self._sync.group_send(group, message)

    # -- the "flush" extension -----------------------------------------------------------

    def flush(self) -> None:
        """Delete every message and group in the layer."""
        self._sync.flush()

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend's connections and stop the private event loop."""
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._readers.withdraw(), self._loop).result()
        self._sync.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._thread = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {type(self.layer).__name__}>"

    @staticmethod
    def _check_name(name: str, receive: bool) -> None:
        """Apply the standard's rules for ``?`` and ``!`` names on top of the layer's own."""
        validate_channel(name)
        if name.endswith("?"):
            raise InvalidChannelName(f"a single-reader name needs its random part: {name!r}")
        if "!" in name and name.endswith("!") != receive:
            if receive:
                raise InvalidChannelName(
                    f"receive process-specific channels on their prefix ending at '!': {name!r}"
                )
            raise InvalidChannelName(f"cannot send to a bare process prefix: {name!r}")
