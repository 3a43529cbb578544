"""Streams: payloads larger than one message, sent as chunk messages on one channel.

A stream has one writer and one reader. Each chunk is ``{"content": bytes,
"more_content": bool}`` (plus fields of its protocol, such as ``closed`` for request
bodies) and carries at most ``layer.chunk_size`` bytes, the one budget the layer
publishes; the last chunk says ``more_content: False``. The message that names the
stream may carry its first part itself (an HTTP request or response does).

Writers wait while the stream's channel is full, up to a deadline, so a reader that is
slower than the writer slows it down instead of losing chunks. Who sends first depends on
the promise made: HTTP sends the message first and streams the rest while the client is
still sending; email sends the chunks first, so the message that names them is on the
layer only once every byte is.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .base import BaseLayer, Message
from .errors import ChannelFull, LayerError

RETRY_FIRST = 0.005
RETRY_MOST = 0.1


def pieces(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into parts of at most ``size`` bytes; one empty part for no data."""
    if len(data) <= size:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


def chunk(content: bytes, more: bool, **fields: Any) -> Message:
    """One chunk message."""
    return {"content": content, "more_content": more, **fields}


async def send_waiting(
    layer: BaseLayer,
    channel: str,
    message: Message,
    deadline: float,
    give_up: Callable[[], bool] | None = None,
) -> None:
    """Send one message, waiting while ``channel`` is full until the ``time.monotonic()``
    ``deadline`` (or until ``give_up()`` is true); then the ChannelFull is raised."""
    delay = RETRY_FIRST
    while True:
        try:
            await layer.send(channel, message)
            return
        except ChannelFull:
            if time.monotonic() + delay > deadline or (give_up is not None and give_up()):
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MOST)


async def write(
    layer: BaseLayer,
    channel: str,
    parts: list[bytes],
    timeout: float,
    more_after: bool = False,
    give_up: Callable[[], bool] | None = None,
    **fields: Any,
) -> None:
    """Send ``parts`` as chunks on ``channel`` in order; the last says ``more_content``
    only if ``more_after`` (more parts follow in a later call). All within ``timeout``."""
    deadline = time.monotonic() + timeout
    last = len(parts) - 1
    for index, part in enumerate(parts):
        more = index < last or more_after
        await send_waiting(layer, channel, chunk(part, more, **fields), deadline, give_up)


async def read(layer: BaseLayer, channel: str, timeout: float) -> AsyncIterator[Message]:
    """The chunks of the stream on ``channel``, in order, up to the last one (or one that
    says ``closed``); LayerError when a chunk does not arrive within ``timeout``."""
    while True:
        name, piece = await layer.receive([channel], timeout=timeout)
        if name is None:
            raise LayerError(f"{channel}: a chunk did not arrive within {timeout} s")
        yield piece
        if not piece.get("more_content") or piece.get("closed"):
            return


async def read_all(layer: BaseLayer, channel: str, timeout: float) -> bytes:
    """Every byte of the stream on ``channel``."""
    return b"".join([piece.get("content") or b"" async for piece in read(layer, channel, timeout)])
