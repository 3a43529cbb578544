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
    ReceiverGone,
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


async def test_a_sent_message_is_a_copy(make_layer):
    layer = make_layer()
    message = {"list": [1, [2]], "dict": {"a": b"b"}, "text": "t"}
    await layer.send("conf.copy", message)
    message["list"][1].append(3)
    message["dict"]["a"] = b"changed"
    message["more"] = 1
    _, received = await layer.receive(["conf.copy"], timeout=2)
    assert received == {"list": [1, [2]], "dict": {"a": b"b"}, "text": "t"}


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


async def test_send_many_fills_each_channel_in_order(make_layer):
    layer = make_layer(capacity=3, expiry=0.3)
    await layer.send("conf.fa", {"old": 0})
    await asyncio.sleep(0.45)
    items = [("conf.fa", {"n": n}) if n % 2 == 0 else ("conf.fb", {"n": n}) for n in range(10)]
    results = await layer.send_many(items)
    assert [r is None for r in results] == [True] * 6 + [False] * 4
    assert all(isinstance(r, ChannelFull) for r in results[6:])
    for channel, kept in (("conf.fa", [0, 2, 4]), ("conf.fb", [1, 3, 5])):
        got = await layer.receive_many([channel], 10, timeout=0.5)
        assert got == [(channel, {"n": n}) for n in kept]


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


async def test_process_channels_share_one_inbox_queue(make_layer):
    layer = make_layer()
    a = layer.inbox.address("conf.reply")
    b = await layer.new_channel("conf.other!")
    assert queue_name(a) == queue_name(b) == layer.client_id + "!"
    await layer.send(a, {"to": "a"})
    await layer.send(b, {"to": "b"})
    got = await layer.inbox.receive(10, timeout=2)
    assert sorted(got, key=lambda item: item[1]["to"]) == [(a, {"to": "a"}), (b, {"to": "b"})]


async def started_inbox(layer, process=None):
    inbox = layer.inbox if process is None else layer.open_inbox(process)
    await inbox.start()
    return inbox


async def until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_inbox_hands_each_message_to_its_address_handler(make_layer):
    layer = make_layer()
    inbox = await started_inbox(layer)
    got: dict[str, list] = {}
    names = [inbox.address("conf.demux", lambda m, i=i: got.setdefault(i, []).append(m)) for i in range(20)]
    await layer.send_many([(n, {"for": i}) for i, n in reversed(list(enumerate(names)))])
    await until(lambda: len(got) == 20)
    assert got == {i: [{"for": i}] for i in range(20)}


async def test_a_burst_to_one_address_arrives_whole_and_in_order(make_layer):
    layer = make_layer()
    inbox = await started_inbox(layer)
    got: list[int] = []
    address = inbox.address("conf.burst", lambda m: got.append(m["n"]))
    for n in range(1000):
        await layer.send(address, {"n": n})
    await until(lambda: len(got) == 1000)
    assert got == list(range(1000))
    assert layer.stats.dropped == {}


async def test_a_full_inbox_refuses_counts_and_tells_the_sender(make_layer):
    layer = make_layer(process_capacity=50)
    address = layer.inbox.address("conf.full")
    results = await layer.send_many([(address, {"n": n}) for n in range(60)])
    assert results[:50] == [None] * 50
    assert all(isinstance(r, ChannelFull) for r in results[50:])
    assert layer.stats.dropped["full"] == 10
    got = await layer.inbox.receive(100, timeout=2)
    assert [m["n"] for _, m in got] == list(range(50))


async def test_messages_for_forgotten_addresses_are_counted_as_gone(make_layer):
    layer = make_layer()
    inbox = await started_inbox(layer)
    seen = []
    kept = inbox.address("conf.kept", seen.append)
    gone = inbox.address("conf.gone", seen.append)
    inbox.forget(gone)
    await layer.send(gone, {"late": True})
    await layer.send(kept, {"on": "time"})
    await until(lambda: seen)
    assert seen == [{"on": "time"}]
    assert layer.stats.dropped["gone"] == 1


async def test_receive_refuses_process_names(make_layer):
    layer = make_layer()
    name = await layer.new_channel("conf.mix!")
    with pytest.raises(InvalidChannelName):
        await layer.receive([name], timeout=0.1)
    with pytest.raises(InvalidChannelName):
        await layer.receive([queue_name(name)], timeout=0.1)


async def test_group_send_puts_one_entry_per_member_process(make_layer):
    layer = make_layer()
    inbox = await started_inbox(layer)
    fanned: list[tuple[list[str], dict]] = []
    got: list[str] = []
    inbox.fanout = lambda addresses, message: fanned.append((addresses, message)) or addresses[1:]
    members = [inbox.address("conf.sock", lambda m, i=i: got.append(i)) for i in range(5)]
    for member in members:
        await layer.group_add("per-process", member)
    assert await layer.group_send("per-process", {"text": "hi"}) == GroupReach(reached=5)
    await until(lambda: len(got) == 4)
    assert len(fanned) == 1
    assert sorted(fanned[0][0]) == sorted(members)
    assert fanned[0][1] == {"text": "hi"}


async def test_members_of_an_unknown_process_are_still_reached(make_layer):
    layer = make_layer()
    stranger = "conf.sock.nobodyknows!abc"
    await layer.group_add("strangers", stranger)
    assert await layer.group_send("strangers", {"n": 1}) == GroupReach(reached=1)
    assert await layer.open_inbox("nobodyknows").receive(10, timeout=2) == [(stranger, {"n": 1})]


async def test_members_of_a_stopped_process_leave_and_senders_learn(make_layer):
    layer = make_layer()
    other = await started_inbox(layer, "conf-other-process")
    theirs = [other.address("conf.sock", lambda m: None) for _ in range(3)]
    mine = (await started_inbox(layer)).address("conf.sock", lambda m: None)
    for member in [*theirs, mine]:
        await layer.group_add("leavers", member)
    assert (await layer.group_send("leavers", {"n": 1})).reached == 4
    await other.close()
    assert await layer.group_send("leavers", {"n": 2}) == GroupReach(reached=1, dead=3)
    assert await layer.group_channels("leavers") == [mine]
    assert await layer.group_send("leavers", {"n": 3}) == GroupReach(reached=1)
    with pytest.raises(ReceiverGone):
        await layer.send(theirs[0], {"late": True})
    assert layer.stats.dropped["dead"] == 4


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


async def test_a_refused_message_leaves_nothing_behind(make_layer):
    layer = make_layer()
    with pytest.raises(InvalidMessage):
        await layer.send("conf.refused", {"text": "x" * 40, "list": [b"y" * 40, object()]})
    await layer.send("conf.refused", {"next": [1, 2]})
    assert await layer.receive(["conf.refused"], timeout=2) == ("conf.refused", {"next": [1, 2]})
    assert await layer.receive(["conf.refused"], timeout=0.05) == (None, None)


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
    got = await layer.inbox.receive(100, timeout=2)
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
