"""What a layer counts: messages sent, received and dropped, and what group sends reached.

Every drop a layer makes is counted here under its reason and logged (at most once per
reason every ``LOG_EVERY`` seconds, with how many since the last line), so nothing
vanishes silently and a busy process does not flood its log. Metrics read ``counts``.
"""

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("switchroom.layers")

LOG_EVERY = 10.0

# Why a message was dropped (each is a key of ``LayerStats.dropped``), and the log level:
# a reply arriving after its client left is routine, the others mean lost work.
DROP_REASONS = {
    "full": ("the receiving queue was full", logging.WARNING),
    "expired": ("nobody read it before it expired", logging.WARNING),
    "gone": ("it arrived for an address this process no longer serves", logging.INFO),
    "dead": ("its receiver's process had stopped", logging.WARNING),
    "malformed": ("it could not be read as its kind of message", logging.WARNING),
    "failed": ("its consumers failed on it every time it was handed out", logging.WARNING),
    "unrouted": ("it came on a channel no route of the worker's app reads", logging.WARNING),
}


@dataclass(frozen=True)
class GroupReach:
    """What one ``group_send`` did: members reached, and members skipped by reason.

    ``full``: their queue had no room. ``dead``: their process stopped; they were removed
    from the group. ``expired``: their membership lapsed (``group_expiry``); removed too.
    """

    reached: int = 0
    full: int = 0
    dead: int = 0
    expired: int = 0

    @property
    def skipped(self) -> int:
        """Members the message did not reach, whatever the reason."""
        return self.full + self.dead + self.expired

    def __add__(self, other: "GroupReach") -> "GroupReach":
        return GroupReach(
            self.reached + other.reached,
            self.full + other.full,
            self.dead + other.dead,
            self.expired + other.expired,
        )


class LayerStats:
    """Running totals of one layer object; every count only grows."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        # Failed operations by (operation, error class): ("send", "ChannelFull"), ...
        self.errors: Counter[tuple[str, str]] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._example: dict[str, str] = {}
        self._next_log: dict[str, float] = {}

    def drop(self, reason: str, count: int = 1, where: str = "") -> None:
        """Count ``count`` messages dropped for ``reason`` and log it, rate-limited per reason."""
        if count <= 0:
            return
        self.dropped[reason] += count
        self._unlogged[reason] += count
        if where:
            self._example[reason] = where
        now = time.monotonic()
        if now >= self._next_log.get(reason, 0.0):
            self._next_log[reason] = now + LOG_EVERY
            self._log(reason)

    def flush_log(self) -> None:
        """Log the drops not logged yet (the layer is closing)."""
        for reason, count in list(self._unlogged.items()):
            if count:
                self._log(reason)

    def _log(self, reason: str) -> None:
        total, self._unlogged[reason] = self._unlogged[reason], 0
        why, level = DROP_REASONS[reason]
        where = self._example.pop(reason, "")
        place = f" (e.g. {where})" if where else ""
        log.log(level, "dropped %d message%s: %s%s", total, "" if total == 1 else "s", why, place)

    def reach(self, group: str, reach: GroupReach) -> None:
        """Count one group send; its skipped members are drops of their reason."""
        self.counts["group_sends"] += 1
        self.counts["group_reached"] += reach.reached
        for reason in ("full", "dead", "expired"):
            skipped = getattr(reach, reason)
            if skipped:
                self.counts[f"group_skipped_{reason}"] += skipped
                if reason != "expired":
                    self.drop(reason, skipped, f"group {group}")

    def sent(self, results: Sequence[Exception | None]) -> None:
        """Count one ``send_many``: messages the layer took, and each refusal by its error."""
        if not any(results):
            self.counts["sent"] += len(results)
            return
        failed = 0
        for error in results:
            if error is not None:
                failed += 1
                self.errors["send", type(error).__name__] += 1
        self.counts["sent"] += len(results) - failed

    def failed(self, operation: str, error: Exception) -> None:
        """Count an operation (``receive``, ...) that raised ``error``."""
        self.errors[operation, type(error).__name__] += 1
