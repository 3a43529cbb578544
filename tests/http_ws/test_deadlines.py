"""The bucketed timeouts the HTTP server arms per request: never early, cancellable,
movable, and one failing callback does not stop the others of its bucket; a connection's
``Timeout`` moved later touches no bucket and still fires on time."""

import asyncio
import logging

import pytest

from switchroom.servers.http_ws.deadlines import Deadlines, Timeout


async def test_fires_once_and_never_early():
    wheel = Deadlines(resolution=0.05)
    loop = asyncio.get_running_loop()
    armed = loop.time()
    fired: list[float] = []
    deadline = wheel.call_later(0.12, lambda: fired.append(loop.time()))
    assert deadline.active()
    await asyncio.sleep(0.4)
    assert len(fired) == 1 and fired[0] >= armed + 0.12
    assert not deadline.active() and len(wheel) == 0


async def test_cancel_and_reset():
    wheel = Deadlines(resolution=0.05)
    fired: list[str] = []
    cancelled = wheel.call_later(0.05, lambda: fired.append("cancelled"))
    moved = wheel.call_later(0.05, lambda: fired.append("moved"))
    cancelled.cancel()
    cancelled.cancel()
    loop = asyncio.get_running_loop()
    moved_at = loop.time()
    moved.reset(0.3)
    await asyncio.sleep(0.15)
    assert fired == []
    await asyncio.sleep(0.4)
    assert fired == ["moved"]
    assert loop.time() >= moved_at + 0.3


async def test_a_callback_may_cancel_another_of_its_bucket():
    wheel = Deadlines(resolution=10.0)
    fired: list[str] = []
    second = None

    def first() -> None:
        fired.append("first")
        second.cancel()

    wheel.call_later(0.0, first)
    second = wheel.call_later(0.0, lambda: fired.append("second"))
    (tick,) = wheel.buckets
    wheel._fire(tick)
    assert fired == ["first"]


async def test_a_failing_callback_is_logged_and_the_rest_still_fire(caplog):
    wheel = Deadlines(resolution=10.0)
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    wheel.call_later(0.0, broken)
    wheel.call_later(0.0, lambda: fired.append("after"))
    (tick,) = wheel.buckets
    with caplog.at_level(logging.ERROR, logger="switchroom.http"):
        wheel._fire(tick)
    assert fired == ["after"]
    assert "a timeout callback failed" in caplog.text


def test_resolution_must_be_positive():
    with pytest.raises(ValueError, match="resolution"):
        Deadlines(resolution=0)



async def test_a_timeout_moved_later_stays_in_its_bucket_and_fires_at_the_new_time():
    wheel = Deadlines(resolution=0.05)
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    timeout = Timeout(wheel)
    timeout.set(0.1, lambda: fired.append(("first", loop.time())))
    tick = timeout.deadline.tick
    moved_at = loop.time()
    timeout.set(0.3, lambda: fired.append(("moved", loop.time())))
    assert timeout.deadline.tick == tick and list(wheel.buckets) == [tick]
    await asyncio.sleep(0.2)
    assert fired == [] and timeout.active()
    await asyncio.sleep(0.4)
    assert [name for name, _ in fired] == ["moved"] and fired[0][1] >= moved_at + 0.3
    assert not timeout.active() and len(wheel) == 0


async def test_a_timeout_moved_sooner_moves_its_deadline():
    wheel = Deadlines(resolution=0.05)
    fired: list[str] = []
    timeout = Timeout(wheel)
    timeout.set(30.0, lambda: fired.append("late"))
    timeout.set(0.05, lambda: fired.append("soon"))
    assert len(wheel) == 1
    await asyncio.sleep(0.3)
    assert fired == ["soon"]


async def test_a_cleared_timeout_calls_nothing_and_a_cancelled_one_leaves_its_bucket():
    wheel = Deadlines(resolution=0.05)
    fired: list[str] = []
    cleared, cancelled = Timeout(wheel), Timeout(wheel)
    cleared.set(0.05, lambda: fired.append("cleared"))
    cancelled.set(0.05, lambda: fired.append("cancelled"))
    cleared.clear()
    cancelled.cancel()
    assert not cleared.active() and not cancelled.active() and len(wheel) == 1
    await asyncio.sleep(0.3)
    assert fired == [] and len(wheel) == 0
