"""The server's send batcher: concurrent sends share one ``send_many``, each caller gets its
own results in order, and nobody waits for ever when the layer fails or the server stops."""

import asyncio

import pytest

from switchroom.layers import ChannelFull, LayerUnavailable, get_layer
from switchroom.servers.http_ws.batching import SendBatcher


class CountingLayer:
    """A real in-memory layer, counting the ``send_many`` calls that reach it."""

    def __init__(self, **options) -> None:
        self.layer = get_layer("memory://", **options)
        self.calls: list[int] = []
        self.fail_with: BaseException | None = None

    async def send_many(self, items):
        self.calls.append(len(items))
        await asyncio.sleep(0.01)  # a round trip, during which more sends gather
        if self.fail_with is not None:
            raise self.fail_with
        return await self.layer.send_many(items)


async def test_concurrent_sends_share_one_layer_call_and_keep_their_order():
    counting = CountingLayer()
    batcher = SendBatcher(counting)  # type: ignore[arg-type]
    await asyncio.gather(*(batcher.send("c", {"n": n}) for n in range(50)))
    assert counting.calls == [50]
    got = [(await counting.layer.receive(["c"], timeout=1))[1]["n"] for _ in range(50)]
    assert got == list(range(50))


async def test_sends_arriving_during_a_call_go_in_the_next_one():
    counting = CountingLayer()
    batcher = SendBatcher(counting)  # type: ignore[arg-type]
    first = asyncio.ensure_future(batcher.send_many([("c", {"n": 0}), ("c", {"n": 1})]))
    await asyncio.sleep(0.005)
    second = asyncio.ensure_future(batcher.send_many([("c", {"n": 2})]))
    third = asyncio.ensure_future(batcher.send("c", {"n": 3}))
    assert await first == [None, None] and await second == [None] and await third is None
    assert counting.calls == [2, 2]


async def test_each_caller_gets_its_own_errors():
    counting = CountingLayer(capacity=2)
    batcher = SendBatcher(counting)  # type: ignore[arg-type]
    results = await asyncio.gather(
        batcher.send_many([("full", {"n": 1}), ("full", {"n": 2})]),
        batcher.send_many([("full", {"n": 3}), ("other", {"n": 4})]),
    )
    assert results[0] == [None, None]
    assert isinstance(results[1][0], ChannelFull) and results[1][1] is None
    with pytest.raises(ChannelFull):
        await batcher.send("full", {"n": 5})


async def test_a_failed_layer_call_fails_every_send_in_it():
    counting = CountingLayer()
    counting.fail_with = LayerUnavailable("redis is down")
    batcher = SendBatcher(counting)  # type: ignore[arg-type]
    results = await asyncio.gather(batcher.send_many([("a", {}), ("b", {})]), batcher.send_many([("c", {})]))
    assert all(isinstance(error, LayerUnavailable) for result in results for error in result)


async def test_an_unexpected_failure_reaches_every_waiting_caller():
    counting = CountingLayer()
    counting.fail_with = RuntimeError("a bug")
    batcher = SendBatcher(counting)  # type: ignore[arg-type]
    first = asyncio.ensure_future(batcher.send("a", {}))
    await asyncio.sleep(0.005)
    later = asyncio.ensure_future(batcher.send("b", {}))
    for waiting in (first, later):
        with pytest.raises(RuntimeError, match="a bug"):
            await asyncio.wait_for(waiting, 1)
    assert batcher.flusher is None and not batcher.items


async def test_stopping_the_batcher_cancels_the_callers_instead_of_leaving_them_waiting():
    counting = CountingLayer()
    batcher = SendBatcher(counting)  # type: ignore[arg-type]
    first = asyncio.ensure_future(batcher.send("a", {}))
    await asyncio.sleep(0.005)
    later = asyncio.ensure_future(batcher.send("b", {}))
    await asyncio.sleep(0)
    assert batcher.flusher is not None
    batcher.flusher.cancel()
    for waiting in (first, later):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 1)
