"""The channel-layer contract, run against every backend (memory, one Redis, two shards)."""

import asyncio
import time

import pytest

from switchroom.layers import (
    ChannelFull,
    GroupReach,
    InvalidChannelName,
    InvalidMessage,
    MessageTooLarge,
    SyncLayer,
    queue_name,
)


async def test_send_receive_round_trip_keeps_types(make_layer):
    layer = make_layer()
    message = {
        "bytes": b"\x00\xffraw",
        "text": "héllo ✓",
        "int": -(2**40),
        "float": 1.5,
        "bool": True,
        "none": None,
        "list": [1, b"x", ["nested"]],
        "dict": {"a": {"b": b"c"}},
    }
    await layer.send("conf.roundtrip", message)
    channel, received = await layer.receive(["conf.roundtrip"], timeout=2)
    assert channel == "conf.roundtrip"
    assert received == message


async def test_per_channel_order_is_kept(make_layer):
    layer = make_layer()
    for i in range(50):
        await layer.send("conf.order", {"i": i})
    got = []
    while len(got) < 50:
        batch = await layer.receive_many(["conf.order"], 7, timeout=2)
        assert batch, "messages went missing"
        got += [m["i"] for _, m in batch]
    assert got == list(range(50))


async def test_receive_many_takes_a_batch_across_channels(make_layer):
    layer = make_layer()
    errors = await layer.send_many([(f"conf.many.{i % 3}", {"i": i}) for i in range(30)])
    assert errors == [None] * 30
    batch = await layer.receive_many(["conf.many.0", "conf.many.1", "conf.many.2"], 100, timeout=2)
    assert sorted(m["i"] for _, m in batch) == list(range(30))
    assert await layer.receive_many(["conf.many.0"], 10, timeout=0.05) == []


async def test_receive_times_out_with_nothing(make_layer):
    layer = make_layer()
    start = time.monotonic()
    assert await layer.receive(["conf.empty"], timeout=0.2) == (None, None)
    assert time.monotonic() - start >= 0.15


async def test_blocked_receiver_wakes_on_send(make_layer):
    layer = make_layer()
    waiting = asyncio.ensure_future(layer.receive(["conf.wake"], timeout=5))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await layer.send("conf.wake", {"hello": 1})
    assert await asyncio.wait_for(waiting, 5) == ("conf.wake", {"hello": 1})


async def test_capacity_raises_channel_full(make_layer):
    layer = make_layer(capacity=3)
    for i in range(3):
        await layer.send("conf.cap", {"i": i})
    with pytest.raises(ChannelFull):
        await layer.send("conf.cap", {"i": 3})
    await layer.receive(["conf.cap"], timeout=1)
    await layer.send("conf.cap", {"i": 4})


async def test_capacity_override_by_pattern(make_layer):
    layer = make_layer(capacity=50, capacities={"conf.tiny.*": 1})
    await layer.send("conf.tiny.a", {})
    with pytest.raises(ChannelFull):
        await layer.send("conf.tiny.a", {})
    await layer.send("conf.other", {})
    await layer.send("conf.other", {})


async def test_send_many_reports_each_item(make_layer):
    layer = make_layer(capacity=2)
    results = await layer.send_many(
        [("conf.sm", {"i": 0}), ("conf.sm", {"i": 1}), ("conf.sm", {"i": 2}), ("bad name", {}), ("ok.x", {})]
    )
    assert results[0] is None and results[1] is None and results[4] is None
    assert isinstance(results[2], ChannelFull)
    assert isinstance(results[3], InvalidChannelName)


async def test_expired_messages_are_dropped_and_free_capacity(make_layer):
    layer = make_layer(expiry=0.3, capacity=2)
    await layer.send("conf.exp", {"old": 1})
    await layer.send("conf.exp", {"old": 2})
    with pytest.raises(ChannelFull):
        await layer.send("conf.exp", {"old": 3})
    await asyncio.sleep(0.45)
    await layer.send("conf.exp", {"new": 1})
    assert await layer.receive_many(["conf.exp"], 10, timeout=0.5) == [("conf.exp", {"new": 1})]


async def test_new_channel_names(make_layer):
    layer = make_layer()
    single = await layer.new_channel("conf.body?")
    assert single.startswith("conf.body?") and len(single) > len("conf.body?")
    process = await layer.new_channel("conf.reply!")
    assert process.startswith("conf.reply.") and "!" in process
    assert process != await layer.new_channel("conf.reply!")
    with pytest.raises(InvalidChannelName):
        await layer.new_channel("conf.plain")
    await layer.send(single, {"x": 1})
    assert await layer.receive([single], timeout=2) == (single, {"x": 1})


async def test_process_channels_share_one_prefix_queue(make_layer):
    layer = make_layer()
    a = await layer.new_channel("conf.reply!")
    b = await layer.new_channel("conf.reply!")
    assert queue_name(a) == queue_name(b)
    await layer.send(a, {"to": "a"})
    await layer.send(b, {"to": "b"})
    got = await layer.receive_many([queue_name(a)], 10, timeout=2)
    assert sorted(got, key=lambda item: item[1]["to"]) == [(a, {"to": "a"}), (b, {"to": "b"})]


async def test_full_process_names_are_demultiplexed(make_layer):
    layer = make_layer()
    names = [await layer.new_channel("conf.demux!") for _ in range(20)]
    waiters = [asyncio.ensure_future(layer.receive([n], timeout=5)) for n in names]
    await asyncio.sleep(0.05)
    await layer.send_many([(n, {"for": n}) for n in reversed(names)])
    results = await asyncio.gather(*waiters)
    assert results == [(n, {"for": n}) for n in names]


async def test_prefix_reader_sees_messages_held_by_the_demux(make_layer):
    layer = make_layer()
    first = await layer.new_channel("conf.mixed!")
    await layer.send(first, {"n": 1})
    assert await layer.receive([first], timeout=2) == (first, {"n": 1})
    other = await layer.new_channel("conf.mixed!")
    await layer.send(other, {"n": 2})
    assert await layer.receive([queue_name(other)], timeout=2) == (other, {"n": 2})


async def test_process_names_cannot_mix_with_plain_names(make_layer):
    layer = make_layer()
    name = await layer.new_channel("conf.mix!")
    with pytest.raises(InvalidChannelName):
        await layer.receive([name, "conf.plain"], timeout=0.1)


@pytest.mark.parametrize(
    "name",
    ["", "has space", "semi;colon", "x" * 100, "two!bangs!", "ünicode", "q?a?b"],
)
async def test_invalid_names_are_refused(make_layer, name):
    layer = make_layer()
    with pytest.raises(InvalidChannelName):
        await layer.send(name, {})
    with pytest.raises(InvalidChannelName):
        await layer.receive([name], timeout=0.1)
    with pytest.raises(InvalidChannelName):
        await layer.group_add(name, "conf.member")
    with pytest.raises(InvalidChannelName):
        await layer.group_add("conf-group", name)


async def test_receive_needs_a_list(make_layer):
    layer = make_layer()
    with pytest.raises(InvalidChannelName):
        await layer.receive("conf.string", timeout=0.1)


async def test_messages_must_be_serialisable_dicts(make_layer):
    layer = make_layer()
    with pytest.raises(InvalidMessage):
        await layer.send("conf.type", ["not", "a", "dict"])
    with pytest.raises(InvalidMessage):
        await layer.send("conf.type", {"set": {1, 2}})


async def test_size_limit(make_layer):
    layer = make_layer(max_message_size=1000)
    await layer.send("conf.size", {"b": b"x" * 900})
    with pytest.raises(MessageTooLarge):
        await layer.send("conf.size", {"b": b"x" * 1001})
    group_member = await layer.new_channel("conf.size!")
    await layer.group_add("conf-size", group_member)
    with pytest.raises(MessageTooLarge):
        await layer.group_send("conf-size", {"b": b"x" * 1001})


async def test_groups_broadcast_and_discard(make_layer):
    layer = make_layer()
    members = [await layer.new_channel("conf.grp!") for _ in range(5)] + ["conf.plain-member"]
    for member in members:
        await layer.group_add("room", member)
    assert sorted(await layer.group_channels("room")) == sorted(members)
    assert await layer.group_send("room", {"text": "hi"}) == GroupReach(reached=6)
    got = await layer.receive_many([queue_name(members[0])], 100, timeout=2)
    assert sorted(c for c, _ in got) == sorted(members[:5])
    assert await layer.receive(["conf.plain-member"], timeout=2) == ("conf.plain-member", {"text": "hi"})
    await layer.group_discard("room", members[0])
    await layer.group_discard("room", "conf.never-joined")
    assert await layer.group_send("room", {"text": "again"}) == GroupReach(reached=5)
    assert await layer.group_send("empty-group", {"text": "nobody"}) == GroupReach()


async def test_group_send_skips_full_members(make_layer):
    layer = make_layer(capacity=1)
    await layer.group_add("skip", "conf.full")
    await layer.group_add("skip", "conf.free")
    await layer.send("conf.full", {"filler": True})
    assert await layer.group_send("skip", {"n": 1}) == GroupReach(reached=1, full=1)
    assert layer.stats.dropped["full"] == 1
    assert await layer.receive(["conf.free"], timeout=2) == ("conf.free", {"n": 1})
    assert await layer.receive(["conf.full"], timeout=2) == ("conf.full", {"filler": True})


async def test_group_membership_expires(make_layer):
    layer = make_layer(group_expiry=0.3)
    await layer.group_add("lapse", "conf.gone")
    await asyncio.sleep(0.45)
    await layer.group_add("lapse", "conf.fresh")
    assert await layer.group_channels("lapse") == ["conf.fresh"]
    assert await layer.group_send("lapse", {"x": 1}) == GroupReach(reached=1)


async def test_concurrent_senders_and_receivers_lose_nothing(make_layer):
    layer = make_layer(capacity=10_000)
    senders, per_sender = 5, 200
    received: list[int] = []

    async def send(s):
        for i in range(per_sender):
            await layer.send("conf.busy", {"n": s * per_sender + i})

    async def receive():
        while len(received) < senders * per_sender:
            batch = await layer.receive_many(["conf.busy"], 25, timeout=0.5)
            received.extend(m["n"] for _, m in batch)

    await asyncio.wait_for(
        asyncio.gather(*(send(s) for s in range(senders)), *(receive() for _ in range(3))), 30
    )
    assert sorted(received) == list(range(senders * per_sender))


async def test_flush_empties_channels_and_groups(make_layer):
    layer = make_layer()
    await layer.send("conf.flush", {})
    await layer.group_add("flushed", "conf.flush")
    await layer.flush()
    assert await layer.receive(["conf.flush"], timeout=0.1) == (None, None)
    assert await layer.group_channels("flushed") == []


async def test_sync_facade(make_layer):
    layer = make_layer()
    loop = asyncio.get_running_loop()

    def blocking_side():
        sync = SyncLayer(layer, loop=loop)
        sync.send("conf.sync", {"from": "thread"})
        return sync.receive(["conf.sync.back"], timeout=5)

    future = loop.run_in_executor(None, blocking_side)
    assert await layer.receive(["conf.sync"], timeout=5) == ("conf.sync", {"from": "thread"})
    await layer.send("conf.sync.back", {"ok": True})
    assert await future == ("conf.sync.back", {"ok": True})
