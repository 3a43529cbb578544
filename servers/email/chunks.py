"""Reading back the parts of an email that travelled as streams (``email.chunk``)."""

import asyncio
from typing import Any

from switchroom.layers import BaseLayer, streams

from .parse import fields


async def read_chunks(layer: BaseLayer, channel: str, timeout: float = 10.0) -> bytes:
    """All the bytes sent on a ``raw_channel`` or ``content_channel``, in order."""
    return await streams.read_all(layer, channel, timeout)


async def raw_message(layer: BaseLayer, message: dict[str, Any], timeout: float = 10.0) -> bytes:
    """The whole message of an ``email.receive``, wherever it travelled."""
    if message.get("raw") is not None:
        return message["raw"]
    return await read_chunks(layer, message["raw_channel"], timeout)


async def attachment_content(layer: BaseLayer, attachment: dict[str, Any], timeout: float = 10.0) -> bytes:
    """One attachment's bytes, wherever they travelled."""
    if attachment.get("content") is not None:
        return attachment["content"]
    return await read_chunks(layer, attachment["content_channel"], timeout)


async def complete(layer: BaseLayer, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """A copy of an ``email.receive`` with ``raw`` and every attachment's ``content`` filled
    in, and the fields listed in ``truncated`` whole again (parsed from the raw message).

    Each chunked part can be read once (its channel has a single reader), so call this
    once per message; the parts are read concurrently.
    """
    attachments = [dict(item) for item in message.get("attachments") or []]
    raw, *contents = await asyncio.gather(
        raw_message(layer, message, timeout),
        *(attachment_content(layer, item, timeout) for item in attachments),
    )
    for item, content in zip(attachments, contents, strict=True):
        item["content"], item["content_channel"] = content, None
    whole = {**message, "raw": raw, "raw_channel": None, "attachments": attachments, "truncated": []}
    if message.get("truncated"):
        again = await asyncio.to_thread(fields, raw)
        whole.update({key: again[key] for key in message["truncated"]})
    return whole
