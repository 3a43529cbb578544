"""The send batcher: concurrent sends share one backend call, each caller gets its own
results in order, and nobody waits for ever when the backend fails or the loop stops; and
on Redis, many concurrent calls wait for a connection instead of failing."""

import asyncio

import pytest

from switchroom.layers import ChannelFull, LayerUnavailable, get_layer
from switchroom.layers.batching import SendBatcher


class CountingLayer:
    """A real in-memory layer, counting the calls that reach it."""

    def __init__(self, **options) -> None:
        self.layer = get_layer("memory://", **options)
        self.calls: list[int] = []
        self.fail_with: BaseException | None = None
        self.stuck = False

    async def send_many(self, items):
        self.calls.append(len(items))
        if self.stuck:  # a round trip that never ends
            await asyncio.Event().wait()
        await asyncio.sleep(0.01)  # a round trip, during which more sends gather
        if self.fail_with is not None:
            raise self.fail_with
        return await self.layer.send_many(items)


async def test_concurrent_sends_share_one_layer_call_and_keep_their_order():
    counting = CountingLayer()
    batcher = SendBatcher(counting.send_many)
    await asyncio.gather(*(batcher.send_many([("c", {"n": n})]) for n in range(50)))
    assert counting.calls == [50]
    got = [(await counting.layer.receive(["c"], timeout=1))[1]["n"] for _ in range(50)]
    assert got == list(range(50))


async def test_sends_arriving_during_a_call_go_in_the_next_one():
    counting = CountingLayer()
    batcher = SendBatcher(counting.send_many)
    first = asyncio.ensure_future(batcher.send_many([("c", {"n": 0}), ("c", {"n": 1})]))
    await asyncio.sleep(0.005)
    second = asyncio.ensure_future(batcher.send_many([("c", {"n": 2})]))
    third = asyncio.ensure_future(batcher.send_many([("c", {"n": 3})]))
    assert await first == [None, None] and await second == [None] and await third == [None]
    assert counting.calls == [2, 2]


async def test_each_caller_gets_its_own_errors():
    counting = CountingLayer(capacity=2)
    batcher = SendBatcher(counting.send_many)
    results = await asyncio.gather(
        batcher.send_many([("full", {"n": 1}), ("full", {"n": 2})]),
        batcher.send_many([("full", {"n": 3}), ("other", {"n": 4})]),
    )
    assert results[0] == [None, None]
    assert isinstance(results[1][0], ChannelFull) and results[1][1] is None
    (error,) = await batcher.send_many([("full", {"n": 5})])
    assert isinstance(error, ChannelFull)


async def test_a_failed_layer_call_fails_every_send_in_it():
    counting = CountingLayer()
    counting.fail_with = LayerUnavailable("redis is down")
    batcher = SendBatcher(counting.send_many)
    results = await asyncio.gather(batcher.send_many([("a", {}), ("b", {})]), batcher.send_many([("c", {})]))
    assert all(isinstance(error, LayerUnavailable) for result in results for error in result)


async def test_an_unexpected_failure_reaches_every_waiting_caller():
    counting = CountingLayer()
    counting.fail_with = RuntimeError("a bug")
    batcher = SendBatcher(counting.send_many)
    first = asyncio.ensure_future(batcher.send_many([("a", {})]))
    await asyncio.sleep(0.005)
    later = asyncio.ensure_future(batcher.send_many([("b", {})]))
    for waiting in (first, later):
        with pytest.raises(RuntimeError, match="a bug"):
            await asyncio.wait_for(waiting, 1)
    assert batcher.flusher is None and not batcher.items


async def test_stopping_the_batcher_cancels_the_callers_instead_of_leaving_them_waiting():
    counting = CountingLayer()
    counting.stuck = True
    batcher = SendBatcher(counting.send_many)
    first = asyncio.ensure_future(batcher.send_many([("a", {})]))
    while not counting.calls:
        await asyncio.sleep(0)
    later = asyncio.ensure_future(batcher.send_many([("b", {})]))
    await asyncio.sleep(0)
    assert batcher.flusher is not None
    batcher.flusher.cancel()
    for waiting in (first, later):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 1)


async def test_a_thousand_concurrent_sends_on_redis_wait_for_connections(redis_server):
    layer = get_layer(redis_server.url, prefix="many-sends", max_connections=4, capacity=10_000)
    try:
        members = [await layer.new_channel("many.sock!") for _ in range(10)]
        for member in members:
            await layer.group_add("many", member)
        sends = [layer.send("many.q", {"n": n}) for n in range(1000)]
        broadcasts = [layer.group_send("many", {"n": n}) for n in range(200)]
        results = await asyncio.gather(*sends, *broadcasts)
        assert all(reach.reached == 10 for reach in results[1000:])
        got = []
        while len(got) < 1000:
            got += await layer.receive_many(["many.q"], 1000, timeout=2)
        assert sorted(m["n"] for _, m in got) == list(range(1000))
    finally:
        await layer.flush()
        await layer.close()


async def test_past_the_bound_a_call_fails_clearly_instead_of_waiting_for_ever(redis_server):
    layer = get_layer(
        redis_server.url, prefix="no-room", max_connections=2, socket_timeout=0.5, block_timeout=0.4
    )
    shard = layer._shards[0]
    try:
        # Every connection busy for longer than socket_timeout (as under a flood of slow calls).
        for _ in range(2):
            await shard.slots.acquire()
        with pytest.raises(LayerUnavailable, match="no free connection.*max_connections"):
            await layer.group_channels("anything")
        shard.slots.release()
        assert await layer.group_channels("anything") == []
    finally:
        shard.slots.release()
        await layer.close()
