"""Streams: one writer and one reader for payloads larger than a message, on every backend."""

import asyncio

import pytest

from switchroom.layers import ChannelFull, LayerError, streams
from switchroom.shared.messages import validate


def test_pieces_cut_a_payload_and_keep_an_empty_one():
    assert streams.pieces(b"", 10) == [b""]
    assert streams.pieces(b"abc", 10) == [b"abc"]
    assert streams.pieces(b"a" * 25, 10) == [b"a" * 10, b"a" * 10, b"a" * 5]
    validate("http.request.body", streams.chunk(b"x", True, closed=False))


def test_one_budget_leaves_room_for_the_envelope():
    from switchroom.layers import get_layer

    assert get_layer("memory://").chunk_size == 1024 * 1024 - 64 * 1024
    assert get_layer("memory://", max_message_size=4000).chunk_size == 3000


async def test_a_stream_longer_than_its_channel_holds_arrives_whole(make_layer):
    """The writer waits while the reader catches up, instead of losing chunks."""
    layer = make_layer(capacity=3)
    channel = await layer.new_channel("stream.body?")
    data = bytes(range(256)) * 40
    parts = streams.pieces(data, 100)
    writer = asyncio.ensure_future(streams.write(layer, channel, parts, timeout=10))
    received = await streams.read_all(layer, channel, timeout=5)
    await writer
    assert received == data
    assert len(parts) > 3


async def test_a_writer_gives_up_at_its_deadline(make_layer):
    layer = make_layer(capacity=2)
    channel = await layer.new_channel("stream.stuck?")
    with pytest.raises(ChannelFull):
        await streams.write(layer, channel, [b"a", b"b", b"c"], timeout=0.2)


async def test_a_reader_gives_up_when_a_chunk_does_not_come(make_layer):
    layer = make_layer()
    channel = await layer.new_channel("stream.short?")
    await streams.write(layer, channel, [b"first"], timeout=1, more_after=True)
    with pytest.raises(LayerError, match="did not arrive"):
        await streams.read_all(layer, channel, timeout=0.2)
