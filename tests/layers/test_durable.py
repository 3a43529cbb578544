"""The durable (at-least-once) channels, run against every backend."""

import asyncio
import time

import pytest

from switchroom.layers import ChannelFull, InvalidChannelName, Janitor, MessageTooLarge, get_layer
from switchroom.layers.cancelling import cancel_and_wait

DURABLE = {"durable_channels": "dur.*", "visibility_timeout": 0.6}


def two_consumers(make_layer, backend, **options):
    """Two layers standing for two processes (the memory layer has one process only, so
    there the second reader is the same one)."""
    first = make_layer(**DURABLE, **options)
    if backend == "memory":
        return first, first
    second = make_layer(**DURABLE, **options)
    second.prefix, second._queue_prefix = first.prefix, first._queue_prefix
    return first, second


async def test_send_and_receive_on_a_durable_channel_take_each_entry_once(make_layer):
    layer = make_layer(**DURABLE)
    await layer.send("dur.plain", {"n": 1})
    await layer.send("email.receive", {"n": 2})
    assert await layer.receive(["dur.plain"], timeout=2) == ("dur.plain", {"n": 1})
    assert await layer.receive(["email.receive"], timeout=2) == ("email.receive", {"n": 2})
    assert await layer.receive(["dur.plain", "email.receive"], timeout=0.3) == (None, None)
    assert (await layer.durable.depth("dur.plain")).entries == 0


async def test_entries_outlive_the_layers_expiry(make_layer):
    layer = make_layer(expiry=0.3, **DURABLE)
    await layer.send_many([("dur.late", {"n": 1}), ("plain.late", {"n": 2})])
    await asyncio.sleep(0.5)
    assert await layer.receive(["plain.late"], timeout=0.1) == (None, None)
    assert await layer.receive(["dur.late"], timeout=2) == ("dur.late", {"n": 1})


async def test_an_entry_not_acknowledged_goes_to_another_consumer_after_the_visibility_timeout(
    make_layer, backend
):
    first, second = two_consumers(make_layer, backend)
    await first.durable.add("dur.work", {"job": 1}, key="job-1")
    (delivery,) = await first.durable.read(["dur.work"], 10, timeout=2)
    assert (delivery.message, delivery.key, delivery.attempt) == ({"job": 1}, "job-1", 1)
    assert abs(delivery.added - time.time()) < 5
    assert await second.durable.read(["dur.work"], 10, timeout=0.2) == []
    await asyncio.sleep(0.7)
    (again,) = await second.durable.read(["dur.work"], 10, timeout=2)
    assert (again.id, again.key, again.attempt) == (delivery.id, "job-1", 2)
    await second.durable.ack([again])
    await asyncio.sleep(0.7)
    assert await first.durable.read(["dur.work"], 10, timeout=0.3) == []
    assert await first.durable.depth("dur.work") == (await first.durable.depth("dur.none"))


async def test_released_entries_are_taken_at_once_and_not_counted(make_layer, backend):
    first, second = two_consumers(make_layer, backend)
    await first.durable.add("dur.rel", {"n": 1})
    (delivery,) = await first.durable.read(["dur.rel"], 1, timeout=2)
    await first.durable.release([delivery])
    (again,) = await second.durable.read(["dur.rel"], 1, timeout=0.5)
    assert again.id == delivery.id and again.attempt == 1


async def test_touch_keeps_an_entry_and_reports_one_taken_meanwhile(make_layer, backend):
    first, second = two_consumers(make_layer, backend)
    await first.durable.add("dur.touch", {"n": 1})
    (delivery,) = await first.durable.read(["dur.touch"], 1, timeout=2)
    for _ in range(3):
        await asyncio.sleep(0.3)
        assert await first.durable.touch([delivery]) == []
    assert await second.durable.read(["dur.touch"], 1, timeout=0.1) == []
    if backend == "memory":
        return
    await asyncio.sleep(0.7)
    (taken,) = await second.durable.read(["dur.touch"], 1, timeout=2)
    assert taken.id == delivery.id
    assert await first.durable.touch([delivery]) == [delivery]


async def test_a_note_travels_with_the_entry(make_layer):
    layer = make_layer(**DURABLE)
    await layer.durable.add("dur.note", {"n": 1})
    (delivery,) = await layer.durable.read(["dur.note"], 1, timeout=2)
    assert delivery.note is None
    await layer.durable.save_note(delivery, {"attempts": 3, "next": 12.5})
    await layer.durable.release([delivery])
    (again,) = await layer.durable.read(["dur.note"], 1, timeout=2)
    assert again.note == {"attempts": 3, "next": 12.5}


async def test_capacity_counts_entries_not_yet_acknowledged(make_layer):
    layer = make_layer(durable_capacity=3, **DURABLE)
    for n in range(3):
        await layer.durable.add("dur.cap", {"n": n})
    with pytest.raises(ChannelFull):
        await layer.send("dur.cap", {"n": 3})
    deliveries = await layer.durable.read(["dur.cap"], 2, timeout=2)
    with pytest.raises(ChannelFull):
        await layer.durable.add("dur.cap", {"n": 3})
    await layer.durable.ack(deliveries[:1])
    assert await layer.durable.add("dur.cap", {"n": 3}) is True
    depth = await layer.durable.depth("dur.cap")
    assert (depth.entries, depth.pending) == (3, 1)
    assert depth.oldest is not None and abs(depth.oldest - time.time()) < 5


async def test_a_key_added_with_dedupe_is_added_once(make_layer):
    layer = make_layer(**DURABLE)
    assert await layer.durable.add("dur.dedupe", {"n": 1}, key="Ev1", dedupe=True) is True
    assert await layer.durable.add("dur.dedupe", {"n": 2}, key="Ev1", dedupe=True) is False
    assert await layer.durable.add("dur.dedupe", {"n": 3}, key="Ev1") is True
    got = await layer.durable.read(["dur.dedupe"], 10, timeout=2)
    assert [d.message["n"] for d in got] == [1, 3]
    await layer.durable.ack(got)
    assert await layer.durable.add("dur.dedupe", {"n": 4}, key="Ev1", dedupe=True) is False


async def test_an_entry_that_keeps_failing_becomes_a_dead_letter(make_layer):
    layer = make_layer(max_deliveries=2, **DURABLE)
    await layer.durable.add("dur.poison", {"n": 1}, key="p1")
    for attempt in (1, 2):
        (delivery,) = await layer.durable.read(["dur.poison"], 1, timeout=2)
        assert delivery.attempt == attempt
        await asyncio.sleep(0.7)
    assert await layer.durable.read(["dur.poison"], 1, timeout=0.3) == []
    _, report = await layer.receive(["dur.poison.failed"], timeout=2)
    assert report["message"] == {"n": 1} and report["key"] == "p1" and report["attempts"] == 3
    assert "not acknowledged after 2 deliveries" in report["error"]
    assert (await layer.durable.depth("dur.poison")).entries == 0
    assert layer.stats.dropped["failed"] == 1


async def test_take_old_takes_old_entries_nobody_works_on(make_layer):
    layer = make_layer(**DURABLE)
    for n in range(4):
        await layer.durable.add("dur.old", {"n": n})
    (busy,) = await layer.durable.read(["dur.old"], 1, timeout=2)
    await asyncio.sleep(0.05)
    cutoff = time.time()
    await layer.durable.add("dur.old", {"n": 4})
    old = await layer.durable.take_old("dur.old", cutoff)
    assert sorted(d.message["n"] for d in old) == [1, 2, 3]
    await layer.durable.ack(old)
    await asyncio.sleep(0.7)
    old = await layer.durable.take_old("dur.old", cutoff)
    assert [d.message["n"] for d in old] == [busy.message["n"]]
    await layer.durable.ack(old)
    (young,) = await layer.durable.read(["dur.old"], 10, timeout=2)
    assert young.message == {"n": 4}


async def test_the_janitor_reports_the_age_and_hands_over_what_is_past_the_max_age(make_layer, caplog):
    layer = make_layer(**DURABLE)
    expired = []

    async def expire(deliveries):
        expired.extend(deliveries)

    janitor = Janitor(layer.durable, "dur.age", 0.5, expire, warn_after=0.2)
    await layer.durable.add("dur.age", {"n": 1})
    await janitor.sweep()
    assert (expired, janitor.counts["queued"]) == ([], 1)
    await asyncio.sleep(0.6)
    await layer.durable.add("dur.age", {"n": 2})
    await janitor.sweep()
    assert [d.message for d in expired] == [{"n": 1}]
    assert janitor.counts["expired"] == 1
    assert "2 entries wait on dur.age (0 being handled), the oldest for " in caplog.text
    assert (await layer.durable.depth("dur.age")).entries == 1


async def test_a_blocked_read_wakes_when_an_entry_arrives(make_layer, backend):
    first, second = two_consumers(make_layer, backend)
    reader = asyncio.ensure_future(first.durable.read(["dur.wake", "dur.other"], 10, timeout=5))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await second.durable.add("dur.wake", {"n": 1})
    (delivery,) = await reader
    assert delivery.message == {"n": 1} and time.monotonic() - started < 2


async def test_durable_entries_have_their_own_size_limit(make_layer):
    layer = make_layer(max_message_size=1000, durable_max_message_size=200_000, **DURABLE)
    with pytest.raises(MessageTooLarge):
        await layer.send("plain.big", {"b": b"x" * 5000})
    await layer.send("dur.big", {"b": b"x" * 100_000})
    with pytest.raises(MessageTooLarge):
        await layer.send("dur.big", {"b": b"x" * 300_000})
    assert (await layer.receive(["dur.big"], timeout=2))[1] == {"b": b"x" * 100_000}


async def test_durable_and_plain_names_do_not_mix_in_receives_or_groups(make_layer):
    layer = make_layer(**DURABLE)
    with pytest.raises(InvalidChannelName):
        await layer.receive(["dur.a", "plain.a"], timeout=0.1)
    with pytest.raises(InvalidChannelName):
        await layer.group_add("room", "dur.a")
    with pytest.raises(InvalidChannelName):
        await layer.durable.read(["plain.a"], 1, timeout=0.1)
    errors = await layer.send_many(
        [("plain.a", {"n": 1}), ("dur.a", {"n": 2}), ("dur.a", {"n": b"x" * 40_000_000})]
    )
    assert errors[:2] == [None, None] and isinstance(errors[2], MessageTooLarge)
    assert layer.durable.handles("dur.a") and layer.durable.handles("slack.event")
    assert not layer.durable.handles("dur.a.failed") and not layer.durable.handles("slack.message")


async def test_flush_empties_durable_channels(make_layer):
    layer = make_layer(**DURABLE)
    await layer.send("dur.flush", {"n": 1})
    await layer.flush()
    assert await layer.receive(["dur.flush"], timeout=0.3) == (None, None)
    await layer.send("dur.flush", {"n": 2})
    assert await layer.receive(["dur.flush"], timeout=2) == ("dur.flush", {"n": 2})


async def test_check_says_what_would_not_survive_a_restart(make_layer, backend):
    layer = make_layer(**DURABLE)
    problems = await layer.durable.check()
    if backend == "memory":
        assert problems == [
            "the memory layer keeps durable channels in this process only: they do not survive a restart"
        ]
    else:
        assert problems and all("appendonly" in p for p in problems)


async def test_the_janitor_stops_when_its_work_swallowed_the_cancellation():
    # redis-py can finish a command that was cancelled as its reply came in, losing the
    # cancellation; an ``expire`` that does the same stands for it here.
    layer = get_layer("memory://", **DURABLE)
    started = asyncio.Event()

    async def expire(deliveries):
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass

    # A short interval: an entry is old only once its millisecond has passed, so the first
    # look may find nothing to expire.
    janitor = Janitor(layer.durable, "dur.swallow", 0.0, expire, interval=0.01)
    await layer.durable.add("dur.swallow", {"n": 1})
    janitor.start()
    await started.wait()
    janitor.task.cancel()
    done, _ = await asyncio.wait([janitor.task], timeout=5)
    assert done, "the janitor went on after its cancellation"
    await layer.close()


async def test_cancel_and_wait_repeats_a_swallowed_cancellation_and_names_what_is_left():
    swallowed = asyncio.Event()

    async def swallows_once():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.sleep(30)

    released = asyncio.Event()

    async def ignores_cancellation():
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                pass

    once = asyncio.ensure_future(swallows_once())
    stubborn = asyncio.ensure_future(ignores_cancellation())
    await asyncio.sleep(0)
    assert await cancel_and_wait([once, stubborn], 0.5) == {stubborn}
    assert swallowed.is_set() and once.cancelled()
    released.set()
    await stubborn


async def test_http_and_websocket_stay_at_most_once():
    layer = get_layer("memory://", expiry=0.2)
    try:
        for channel in ("http.request", "http.disconnect", "websocket.connect", "websocket.receive"):
            assert not layer.durable.handles(channel), channel
        await layer.send("http.request", {"path": "/late"})
        await asyncio.sleep(0.4)
        assert await layer.receive(["http.request"], timeout=0.1) == (None, None), "dropped, not kept"
    finally:
        await layer.close()
    for option in ("http.*", "websocket.receive", "*", "web*"):
        with pytest.raises(InvalidChannelName, match="stay at most once"):
            get_layer("memory://", durable_channels=option)
