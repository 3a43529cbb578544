"""Errors raised by channel layers; every backend raises exactly these."""


class LayerError(Exception):
    """Base class of every error a channel layer raises."""


class ChannelFull(LayerError):
    """The channel is at capacity; the sender should back off and tell its client."""


class MessageTooLarge(LayerError):
    """The serialised message exceeds the layer's size limit; chunk the payload instead."""


class InvalidChannelName(LayerError, ValueError):
    """A channel or group name breaks the naming rules."""


class InvalidMessage(LayerError, TypeError):
    """The message is not a dict of the serialisable types."""


class LayerUnavailable(LayerError):
    """The backend could not be reached or did not answer in time."""


class ReceiverGone(LayerError):
    """The process that reads this ``!`` channel has stopped (closed, or its heartbeat lapsed)."""
