"""The channel layer: the one contract every server and worker speaks.

    layer = get_layer("redis://127.0.0.1:6379/0")
    await layer.send("email.receive", {...})
    channel, message = await layer.receive(["email.receive"], timeout=5)

See ``docs/layers.md`` for the semantics (capacity, expiry, groups, ``!`` and ``?`` names).
"""

from . import streams
from .base import BaseLayer, Message
from .durable import Delivery, Depth, DurableSettings, DurableStore, Janitor, Leases
from .errors import (
    ChannelFull,
    InvalidChannelName,
    InvalidMessage,
    LayerError,
    LayerUnavailable,
    MessageTooLarge,
    ReceiverGone,
)
from .inbox import Inbox
from .liveness import ProcessWatch
from .memory import MemoryLayer
from .names import queue_name, validate_channel, validate_group
from .redis import RedisLayer
from .stats import GroupReach, LayerStats
from .sync import SyncLayer
from .url import get_layer

__all__ = [
    "BaseLayer",
    "ChannelFull",
    "Delivery",
    "Depth",
    "DurableSettings",
    "DurableStore",
    "GroupReach",
    "Inbox",
    "InvalidChannelName",
    "InvalidMessage",
    "Janitor",
    "LayerError",
    "LayerStats",
    "LayerUnavailable",
    "Leases",
    "MemoryLayer",
    "Message",
    "ProcessWatch",
    "MessageTooLarge",
    "ReceiverGone",
    "RedisLayer",
    "SyncLayer",
    "get_layer",
    "queue_name",
    "streams",
    "validate_channel",
    "validate_group",
]
