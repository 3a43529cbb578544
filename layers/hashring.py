"""Consistent hashing of names onto shards.

Each shard owns many points on a 64-bit ring; a name belongs to the first point at or
after its hash. Adding a shard moves only about 1/N of the names.
"""

import bisect
import hashlib
from collections.abc import Sequence

POINTS_PER_SHARD = 160


def _hash(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Maps names to shard indexes; shards are identified by stable names (their URLs)."""

    def __init__(self, shard_names: Sequence[str]) -> None:
        if not shard_names:
            raise ValueError("a hash ring needs at least one shard")
        points = sorted(
            (_hash(f"{name}#{i}"), index)
            for index, name in enumerate(shard_names)
            for i in range(POINTS_PER_SHARD)
        )
        self._hashes = [h for h, _ in points]
        self._owners = [owner for _, owner in points]
        self._single = len(shard_names) == 1
        self._cache: dict[str, int] = {}

    def shard(self, name: str) -> int:
        """The index of the shard that owns ``name``."""
        if self._single:
            return 0
        owner = self._cache.get(name)
        if owner is None:
            i = bisect.bisect_left(self._hashes, _hash(name))
            owner = self._owners[i % len(self._owners)]
            if len(self._cache) < 100_000:
                self._cache[name] = owner
        return owner
