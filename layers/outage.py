"""One warning when a backend node stops answering, one line when it answers again.

Readers of the layer retry for as long as Redis is gone; logging each attempt would fill
the log with the same line twice a second. An ``Outage`` per node logs the first failure
of an outage as a warning and its end with how long it lasted, so the log shows one pair
of lines per outage however many loops retry meanwhile.
"""

import logging
import time
from collections import Counter

log = logging.getLogger("switchroom.layers")


class Outage:
    """Whether one node (a Redis server, named by ``what``) answers, as its callers see it."""

    def __init__(self, what: str, counts: Counter[str] | None = None) -> None:
        self.what = what
        self.counts = counts
        self.down_since: float | None = None
        self.attempts = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: Exception) -> None:
        """A command failed: the first failure of an outage is logged, later ones only counted."""
        self.attempts += 1
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        if self.counts is not None:
            self.counts["outages"] += 1
        log.warning("%s (retrying quietly; one line follows when it answers again)", error)

    def answered(self) -> None:
        """A command succeeded: end the outage, if there was one, with one line."""
        if self.down_since is None:
            return
        took = time.monotonic() - self.down_since
        log.warning(
            "%s answers again after %.1f s (%d failed attempt%s)",
            self.what,
            took,
            self.attempts,
            "" if self.attempts == 1 else "s",
        )
        self.down_since = None
        self.attempts = 0
