"""Many timeouts at once for one asyncio loop, kept in buckets of ``resolution`` seconds.

Each request arms and cancels several timeouts (its read, its answer, the connection's
keep-alive), and almost none of them fire. A loop timer each would cost a heap entry and
an object per arming; here a bucket shares one loop timer, so arming, resetting and
cancelling are dict operations. A timeout fires at most ``resolution`` late, never early.
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
