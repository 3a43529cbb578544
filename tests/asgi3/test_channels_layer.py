"""``switchroom.layers.channels.ChannelLayer`` against Channels 4's layer contract, on a real
Redis: the behaviours a Channels backend's own test suite checks (send and receive,
capacity, per-channel capacity, process-local channels, order, name checks, groups within
one process and across two, full members skipped, cancelled reads, expiry, flush)."""

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull

from switchroom.layers.channels import ChannelLayer


def make(redis_server, **config):
    return ChannelLayer(url=f"{redis_server.url}?prefix=cl{uuid.uuid4().hex[:10]}", **config)


@pytest.fixture
async def layer(redis_server):
    channel_layer = make(redis_server, capacity=3, channel_capacity={"tiny": 1})
    yield channel_layer
    await channel_layer.flush()
    await channel_layer.close()


async def test_send_then_receive(layer):
    await layer.send("test-channel-1", {"type": "test.message", "text": "Ahoy-hoy!"})
    assert await layer.receive("test-channel-1") == {"type": "test.message", "text": "Ahoy-hoy!"}


async def test_receive_waits_for_a_send(layer):
    reader = asyncio.ensure_future(layer.receive("test-channel-2"))
    await asyncio.sleep(0.2)
    assert not reader.done()
    await layer.send("test-channel-2", {"type": "later"})
    assert (await asyncio.wait_for(reader, 5))["type"] == "later"


async def test_capacity_raises_channel_full(layer):
    for i in range(3):
        await layer.send("test-channel-3", {"type": "n", "i": i})
    with pytest.raises(ChannelFull):
        await layer.send("test-channel-3", {"type": "n", "i": 3})
    assert [(await layer.receive("test-channel-3"))["i"] for _ in range(3)] == [0, 1, 2]


async def test_per_channel_capacity(layer):
    await layer.send("tiny", {"type": "one"})
    with pytest.raises(ChannelFull):
        await layer.send("tiny", {"type": "two"})


async def test_process_local_channel(layer):
    channel = await layer.new_channel()
    assert "!" in channel
    await layer.send(channel, {"type": "local", "n": 1})
    assert await layer.receive(channel) == {"type": "local", "n": 1}


async def test_order_of_many_messages(layer):
    channel = await layer.new_channel()
    for i in range(3):
        await layer.send(channel, {"type": "n", "i": i})
    assert [(await layer.receive(channel))["i"] for _ in range(3)] == [0, 1, 2]


async def test_bad_names_are_refused(layer):
    with pytest.raises(TypeError):
        await layer.send("=+135!", {"type": "foom"})
    with pytest.raises(TypeError):
        await layer.group_add("bad group!", "ok")
    with pytest.raises(TypeError):
        await layer.send("x" * 120, {"type": "too.long"})


async def test_groups_in_one_process(layer):
    one, two, three = [await layer.new_channel() for _ in range(3)]
    for channel in (one, two, three):
        await layer.group_add("room", channel)
    await layer.group_discard("room", two)
    await layer.group_send("room", {"type": "hello"})
    assert (await asyncio.wait_for(layer.receive(one), 5))["type"] == "hello"
    assert (await asyncio.wait_for(layer.receive(three), 5))["type"] == "hello"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(two), 0.5)


async def test_groups_across_two_processes(redis_server):
    url = f"{redis_server.url}?prefix=cl{uuid.uuid4().hex[:10]}"
    first, second = ChannelLayer(url=url), ChannelLayer(url=url)
    try:
        a, b = await first.new_channel(), await second.new_channel()
        await first.group_add("room", a)
        await second.group_add("room", b)
        await first.group_send("room", {"type": "across"})
        assert (await asyncio.wait_for(first.receive(a), 5))["type"] == "across"
        assert (await asyncio.wait_for(second.receive(b), 5))["type"] == "across"
        # A process that closes its layer leaves its groups: sends still reach the rest.
        await second.close()
        await first.group_send("room", {"type": "after"})
        assert (await asyncio.wait_for(first.receive(a), 5))["type"] == "after"
    finally:
        await first.flush()
        await first.close()
        await second.close()


async def test_group_send_skips_a_full_member(layer):
    await layer.group_add("busy", "test-channel-4")
    other = await layer.new_channel()
    await layer.group_add("busy", other)
    for i in range(5):
        await layer.group_send("busy", {"type": "n", "i": i})
    assert [(await layer.receive("test-channel-4"))["i"] for _ in range(3)] == [0, 1, 2]
    assert (await layer.receive(other))["i"] == 0


async def test_cancelled_receive_loses_nothing(layer):
    reader = asyncio.ensure_future(layer.receive("test-channel-5"))
    await asyncio.sleep(0.2)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await layer.send("test-channel-5", {"type": "kept"})
    assert (await asyncio.wait_for(layer.receive("test-channel-5"), 5))["type"] == "kept"


async def test_expired_messages_are_not_received(redis_server):
    layer = make(redis_server, expiry=1)
    try:
        await layer.send("test-channel-6", {"type": "old"})
        await asyncio.sleep(1.5)
        await layer.send("test-channel-6", {"type": "new"})
        assert (await asyncio.wait_for(layer.receive("test-channel-6"), 5))["type"] == "new"
    finally:
        await layer.close()


async def test_flush_empties_channels_and_groups(layer):
    await layer.send("test-channel-7", {"type": "gone"})
    member = await layer.new_channel()
    await layer.group_add("flushed", member)
    await layer.flush()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive("test-channel-7"), 0.5)
    assert await (await layer.layer()).group_channels("flushed") == []


async def test_expiry_applies_to_a_consumers_own_channel(redis_server):
    layer = make(redis_server, expiry=1)
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "old"})
        await layer.group_add("room", channel)
        await layer.group_send("room", {"type": "old too"})
        await asyncio.sleep(1.5)
        await layer.send(channel, {"type": "new"})
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "new"}
        assert (await layer.layer()).stats.dropped["expired"] == 2
    finally:
        await layer.close()


def test_sync_code_sends_through_async_to_sync(redis_server):
    """Sync code (a Django view, a script) sends with ``async_to_sync``: each call runs on
    an event loop of its own, and the layer follows it."""
    layer = make(redis_server)
    for i in range(3):
        async_to_sync(layer.send)("test-channel-8", {"type": "sync", "i": i})

    async def read_all():
        try:
            return [(await layer.receive("test-channel-8"))["i"] for _ in range(3)]
        finally:
            await layer.close()

    assert asyncio.run(read_all()) == [0, 1, 2]


def test_extensions():
    assert set(ChannelLayer.extensions) == {"groups", "flush"}


def test_a_consumer_channel_survives_sync_sends_from_other_loops(redis_server):
    """A consumer's loop makes its channel; sync code sends to it with ``async_to_sync``,
    each call on an event loop of its own; the consumer's loop then reads all of it."""
    layer = make(redis_server)
    consumer_loop = asyncio.new_event_loop()
    try:
        channel = consumer_loop.run_until_complete(layer.new_channel())
        for i in range(3):
            async_to_sync(layer.send, force_new_loop=True)(channel, {"type": "sync", "i": i})

        async def read_three():
            return [(await asyncio.wait_for(layer.receive(channel), 5))["i"] for _ in range(3)]

        assert consumer_loop.run_until_complete(read_three()) == [0, 1, 2]
        consumer_loop.run_until_complete(layer.close())
    finally:
        consumer_loop.close()


def test_a_consumer_channel_read_from_another_loop_is_a_clear_error(redis_server):
    layer = make(redis_server)
    consumer_loop = asyncio.new_event_loop()
    try:
        channel = consumer_loop.run_until_complete(layer.new_channel())
        with pytest.raises(ValueError, match="another event loop"):
            async_to_sync(layer.receive, force_new_loop=True)(channel)
        consumer_loop.run_until_complete(layer.close())
    finally:
        consumer_loop.close()
    assert channel not in layer._mailboxes

    async def send_and_close():
        await layer.send("test-channel-9", {"type": "after"})
        await layer.close()

    # The layer made for the closed loop of the failed read is forgotten by the next call.
    asyncio.run(send_and_close())
    assert layer._layers == {}
