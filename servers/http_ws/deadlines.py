"""Many timeouts at once for one asyncio loop, kept in buckets of ``resolution`` seconds.

Each request has timeouts (its read, its answer, the connection's keep-alive), and almost
none of them fire. A loop timer each would cost a heap entry and an object per arming;
here a bucket shares one loop timer, so arming, resetting and cancelling are dict
operations. A ``Timeout`` goes further for a timeout that is moved on every request: moving
it later only notes the new time. A timeout fires at most ``resolution`` late, never early.
"""

import asyncio
import logging
import math
from collections.abc import Callable

log = logging.getLogger("switchroom.http")

DEFAULT_RESOLUTION = 0.05


class Deadline:
    """One armed timeout; ``cancel`` and ``reset`` as on Twisted's ``DelayedCall`` (what
    ``TimeoutMixin`` calls), except that cancelling twice is not an error."""

    __slots__ = ("wheel", "tick", "callback")

    def __init__(self, wheel: "Deadlines", callback: Callable[[], object]) -> None:
        self.wheel = wheel
        self.tick: int | None = None
        self.callback = callback

    def active(self) -> bool:
        """True until it fires or is cancelled."""
        return self.tick is not None

    def cancel(self) -> None:
        """Disarm; nothing happens if it already fired or was cancelled."""
        if self.tick is not None:
            bucket = self.wheel.buckets.get(self.tick)
            if bucket is not None:
                bucket.pop(self, None)
            self.tick = None

    def reset(self, delay: float) -> None:
        """Fire ``delay`` seconds from now instead (re-arms one that was cancelled)."""
        self.cancel()
        self.wheel.place(self, delay)


class Deadlines:
    """The buckets of one loop; ``call_later`` is the only way in."""

    def __init__(self, resolution: float = DEFAULT_RESOLUTION) -> None:
        if resolution <= 0:
            raise ValueError("resolution must be positive")
        self.resolution = resolution
        self.buckets: dict[int, dict[Deadline, None]] = {}

    def call_later(self, delay: float, callback: Callable[[], object]) -> Deadline:
        """Call ``callback()`` once, ``delay`` seconds from now (up to ``resolution`` later)."""
        deadline = Deadline(self, callback)
        self.place(deadline, delay)
        return deadline

    def place(self, deadline: Deadline, delay: float) -> None:
        """Put ``deadline`` in the bucket ``delay`` seconds ahead, starting its timer if new."""
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + delay) / self.resolution)
        bucket = self.buckets.get(tick)
        if bucket is None:
            bucket = self.buckets[tick] = {}
            loop.call_at(tick * self.resolution, self._fire, tick)
        bucket[deadline] = None
        deadline.tick = tick

    def _fire(self, tick: int) -> None:
        bucket = self.buckets.pop(tick, None)
        if not bucket:
            return
        for deadline in bucket:
            if deadline.tick != tick:
                continue  # cancelled or moved by an earlier callback of this bucket
            deadline.tick = None
            try:
                deadline.callback()
            except Exception:
                log.exception("a timeout callback failed")

    def __len__(self) -> int:
        """How many timeouts are armed."""
        return sum(len(bucket) for bucket in self.buckets.values())


class Timeout:
    """One timeout moved often, and mostly later (a connection's: read, answer, keep-alive).

    ``set`` notes when it is due and what to call; it moves the deadline in the buckets only
    when that comes sooner than where the deadline sits. A deadline that comes before the
    time noted re-arms itself for the rest, so moving a timeout later costs no bucket work.
    """

    __slots__ = ("wheel", "deadline", "due", "action")

    def __init__(self, wheel: Deadlines) -> None:
        self.wheel = wheel
        self.deadline = Deadline(wheel, self._check)
        self.due = 0.0
        self.action: Callable[[], object] | None = None

    def set(self, delay: float, action: Callable[[], object]) -> None:
        """Call ``action()`` ``delay`` seconds from now (up to ``resolution`` later), instead of
        whatever was set before."""
        self.action = action
        due = self.due = asyncio.get_running_loop().time() + delay
        deadline = self.deadline
        if deadline.tick is None or deadline.tick * self.wheel.resolution > due:
            deadline.cancel()
            self.wheel.place(deadline, delay)

    def clear(self) -> None:
        """Call nothing (the deadline stays in its bucket and does nothing when it comes)."""
        self.action = None

    def cancel(self) -> None:
        """Call nothing, and take the deadline out of its bucket (the owner is going away)."""
        self.action = None
        self.deadline.cancel()

    def active(self) -> bool:
        """True while an action is set and has not been called."""
        return self.action is not None

    def _check(self) -> None:
        action = self.action
        if action is None:
            return
        remaining = self.due - asyncio.get_running_loop().time()
        if remaining > 0:
            self.wheel.place(self.deadline, remaining)
            return
        self.action = None
        action()
