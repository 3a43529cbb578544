"""A Channels 4 channel layer over Switchroom's layer, for a project's ``CHANNEL_LAYERS``:

    CHANNEL_LAYERS = {"default": {
        "BACKEND": "switchroom.layers.channels.ChannelLayer",
        "CONFIG": {"url": "redis://127.0.0.1:6379/0"},
    }}

Consumers in Switchroom workers, Daphne and uvicorn processes on one Redis (and one key
``prefix``) then share channels and groups. A consumer's own channel (``new_channel``) is
an address in its process's inbox, read through a ``Mailbox``; other names are plain
channels. Groups send one copy per member process and lose the members of processes that
die within seconds. Needs the ``channels`` package (it is not a dependency of Switchroom).
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from channels.exceptions import ChannelFull as ChannelsChannelFull
from channels.layers import BaseChannelLayer

from .base import BaseLayer
from .errors import ChannelFull, ReceiverGone
from .inbox import Mailbox
from .url import get_layer

log = logging.getLogger("switchroom.layers")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
# Set on each message this backend sends: when it expires. A consumer's own channel is
# read into its process as it arrives, so its expiry is applied when the consumer reads.
EXPIRES = "__expires__"


class ChannelLayer(BaseChannelLayer):
    """Channels' ``BaseChannelLayer`` contract (send, receive, new_channel, groups, flush,
    capacity, expiry) on a Switchroom layer built from ``url`` and layer options."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        url: str = DEFAULT_URL,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Any, int] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        patterns = {p: c for p, c in (channel_capacity or {}).items() if isinstance(p, str)}
        self.url = url
        self.options = {
            "expiry": expiry,
            "group_expiry": group_expiry,
            "capacity": capacity,
            "capacities": patterns,
            **options,
        }
        # One Switchroom layer per event loop: connections (and a consumer channel's inbox)
        # belong to the loop that made them, and sync code's ``async_to_sync`` runs on loops
        # of its own while the consumers' loop carries on.
        self._layers: dict[asyncio.AbstractEventLoop, BaseLayer] = {}
        self._mailboxes: dict[str, Mailbox] = {}

    async def layer(self) -> BaseLayer:
        """The Switchroom layer of the running loop, made on first use there."""
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            self._forget_closed_loops()
            layer = self._layers[loop] = get_layer(self.url, **self.options)
        return layer

    def _forget_closed_loops(self) -> None:
        """Drop the layers (and channels) of loops that have closed: their connections
        closed with them, and nothing can read those channels any more."""
        for loop in [loop for loop in self._layers if loop.is_closed()]:
            gone = self._layers.pop(loop)
            for address in [a for a, box in self._mailboxes.items() if box.inbox.layer is gone]:
                del self._mailboxes[address]

    async def _inbox_layer(self) -> BaseLayer:
        """The layer with this process's inbox reading (for channels made by ``new_channel``)."""
        layer = await self.layer()
        if not layer.inbox.running:
            await layer.inbox.start()
        return layer

    # -- channels ------------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` (a dict with ``type``); ChannelFull when the channel is full.

        A message for a consumer whose process is gone is dropped and counted as ``dead``.
        """
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        layer = await self.layer()
        try:
            await layer.send(channel, {**message, EXPIRES: time.time() + self.expiry})
        except ChannelFull as exc:
            raise ChannelsChannelFull(str(exc)) from None
        except ReceiverGone as exc:
            log.debug("dropped a message for %s: %s", channel, exc)

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message on ``channel`` (one of this layer's ``new_channel`` names, or a
        plain channel); waits as long as it takes."""
        self.require_valid_channel_name(channel)
        layer = await self.layer()
        if "!" in channel:
            mailbox = self._mailboxes.get(channel)
            if mailbox is None:
                raise ValueError(f"{channel!r} is not a channel of this process (make it with new_channel)")
            if mailbox.inbox.layer is not layer:
                raise ValueError(f"{channel!r} was made in another event loop; it is read in that one")
            while True:
                try:
                    message = await mailbox.get()
                except asyncio.CancelledError:
                    # As with Channels' own layers, a cancelled read of a consumer's channel
                    # means the consumer has ended: stop routing its address.
                    self.forget(channel)
                    raise
                assert message is not None
                expires = message.pop(EXPIRES, None)
                if expires is None or expires >= time.time():
                    return message
                layer.stats.drop("expired", 1, channel)
        while True:
            name, message = await layer.receive([channel], timeout=None)
            if name is not None:
                message.pop(EXPIRES, None)
                return message

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new channel name read by this process (an address in its inbox)."""
        layer = await self._inbox_layer()
        kind = prefix.rstrip(".!") or "specific"
        mailbox = layer.inbox.mailbox(kind, self.get_capacity(kind + "!"))
        self._mailboxes[mailbox.address] = mailbox
        return mailbox.address

    # -- groups --------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await (await self.layer()).group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await (await self.layer()).group_discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Send to every member; full members are skipped (the layer counts and logs them)."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        await (await self.layer()).group_send(group, {**message, EXPIRES: time.time() + self.expiry})

    # -- the rest ------------------------------------------------------------------------

    async def flush(self) -> None:
        """Delete every message and group on the layer; forget this process's channels."""
        layer = await self.layer()
        await layer.flush()
        for mailbox in self._mailboxes.values():
            mailbox.close()
        self._mailboxes.clear()

    async def close(self) -> None:
        """Close the running loop's Switchroom layer (its channels leave their groups at
        once) and forget those of loops that have closed."""
        layer = self._layers.pop(asyncio.get_running_loop(), None)
        self._forget_closed_loops()
        if layer is not None:
            for address in [a for a, box in self._mailboxes.items() if box.inbox.layer is layer]:
                del self._mailboxes[address]
            await layer.close()

    def forget(self, channel: str) -> None:
        """Stop reading one of this process's channels (its consumer has ended)."""
        mailbox = self._mailboxes.pop(channel, None)
        if mailbox is not None:
            mailbox.close()
