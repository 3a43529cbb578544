"""The bucketed timeouts the HTTP server arms per request: never early, cancellable,
movable, and one failing callback does not stop the others of its bucket."""

import asyncio
import logging

import pytest

from switchroom.servers.http_ws.deadlines import Deadlines


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

