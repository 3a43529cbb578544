"""A blocking facade over an async layer, for synchronous code (threads, scripts, shells).

Calls run on an event loop: the one given (for code on worker threads of a process
whose loop already owns the layer) or a private loop on a daemon thread.
"""

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from .base import BaseLayer, Message
from .errors import LayerError
from .stats import GroupReach
from .tracking import Presence

T = TypeVar("T")


class SyncLayer:
    """The layer API as plain blocking methods; never call it from the loop it runs on."""

    def __init__(self, layer: BaseLayer, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.layer = layer
        self._thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=loop.run_forever, name="switchroom-sync-layer", daemon=True
            )
            self._thread.start()
        self._loop = loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def presence(self) -> "SyncPresence":
        """Presence on this layer, as blocking calls."""
        return SyncPresence(self)

    def send(self, channel: str, message: Message) -> None:
        self._run(self.layer.send(channel, message))

    def send_many(self, items: Iterable[tuple[str, Message]]) -> list[LayerError | None]:
        return self._run(self.layer.send_many(list(items)))

    def receive(
        self, channels: Sequence[str], timeout: float | None = None
    ) -> tuple[str, Message] | tuple[None, None]:
        return self._run(self.layer.receive(channels, timeout))

    def receive_many(
        self, channels: Sequence[str], max_messages: int = 100, timeout: float | None = None
    ) -> list[tuple[str, Message]]:
        return self._run(self.layer.receive_many(channels, max_messages, timeout))

    def new_channel(self, prefix: str) -> str:
        return self._run(self.layer.new_channel(prefix))

    def group_add(self, group: str, channel: str) -> None:
        self._run(self.layer.group_add(group, channel))

    def group_discard(self, group: str, channel: str) -> None:
        self._run(self.layer.group_discard(group, channel))

    def group_send(self, group: str, message: Message) -> GroupReach:
        return self._run(self.layer.group_send(group, message))

    def group_channels(self, group: str) -> list[str]:
        return self._run(self.layer.group_channels(group))

    def flush(self) -> None:
        self._run(self.layer.flush())

    def close(self) -> None:
        """Close the layer, and stop the private loop if this facade owns one."""
        self._run(self.layer.close())
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._thread = None


def _blocking(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """``Presence.<method>`` as a blocking call through the facade's loop, with the
    method's signature and docstring."""
    name = method.__name__

    @functools.wraps(method)
    def call(self: "SyncPresence", *args: Any, **kwargs: Any) -> T:
        return self._sync._run(getattr(self._sync.layer.presence, name)(*args, **kwargs))

    return call


class SyncPresence:
    """``layer.presence`` as blocking calls (``docs/presence.md``), through a ``SyncLayer``."""

    def __init__(self, sync: SyncLayer) -> None:
        self._sync = sync

    track = _blocking(Presence.track)
    untrack = _blocking(Presence.untrack)
    list = _blocking(Presence.list)
    watch = _blocking(Presence.watch)
    unwatch = _blocking(Presence.unwatch)
