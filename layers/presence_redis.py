"""Presence kept in Redis: per group, on the shard (or cluster slot) of the group's name.

Five keys share the group's hash tag: ``p:{g}`` (hash: address -> entry), ``pe:{g}`` (list:
events), ``ps:{g}`` (the flush slot: ``claimed`` or ``cooling``, expiring), ``pp:{g}`` (hash:
process -> its number of entries) and ``pt:{g}`` (sorted set: address -> deadline, for
entries with a ttl). Each change is one script call that stores, appends its event and
claims the flush; a sweep asks the liveness keys which processes are dead, then removes
their entries in one script call.
"""

import asyncio
from typing import TYPE_CHECKING, Any

from .presence import CLAIM_GRACE, Entry
from .tracking import PresenceStore

if TYPE_CHECKING:
    from .redis import RedisLayer, _Shard

_COMMON = """
local function claim(interval, grace)
  local state = redis.call('GET', KEYS[3])
  if state == 'claimed' then return -1 end
  local delay = 0
  if state == 'cooling' then delay = math.max(redis.call('PTTL', KEYS[3]), 0) end
  redis.call('SET', KEYS[3], 'claimed', 'PX', delay + grace)
  return delay
end
local function process_of(value)
  return cmsgpack.unpack(value)[1]
end
local function drop(address, old)
  redis.call('HDEL', KEYS[1], address)
  redis.call('ZREM', KEYS[5], address)
  local proc = process_of(old)
  if proc ~= '' and redis.call('HINCRBY', KEYS[4], proc, -1) <= 0 then
    redis.call('HDEL', KEYS[4], proc)
  end
  redis.call('RPUSH', KEYS[2], 'l' .. address .. '\\n' .. old)
end
local function keep(ttl)
  for i = 1, 5 do
    if i ~= 3 then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
"""

# KEYS: the group's five keys. ARGV: address, entry ("" to remove), deadline ms (0: none),
# key ttl ms, interval ms, claim grace ms. Returns the flush delay ms, or -1.
WRITE = (
    _COMMON
    + """
local address, value = ARGV[1], ARGV[2]
local old = redis.call('HGET', KEYS[1], address)
if value == '' then
  if not old then return -1 end
  drop(address, old)
else
  if old == value then return -1 end
  if old then
    redis.call('RPUSH', KEYS[2], 'l' .. address .. '\\n' .. old)
  else
    local proc = process_of(value)
    if proc ~= '' then redis.call('HINCRBY', KEYS[4], proc, 1) end
  end
  redis.call('HSET', KEYS[1], address, value)
  redis.call('RPUSH', KEYS[2], 'j' .. address .. '\\n' .. value)
  if ARGV[3] ~= '0' then
    redis.call('ZADD', KEYS[5], ARGV[3], address)
  else
    redis.call('ZREM', KEYS[5], address)
  end
end
keep(ARGV[4])
return claim(tonumber(ARGV[5]), tonumber(ARGV[6]))
"""
)

# KEYS: the group's five keys. ARGV: now ms, interval ms, claim grace ms, then the dead
# processes. Removes their entries and those past their deadline; claims a flush if events
# wait. Returns {flush delay ms or -1, entries left}.
SWEEP = (
    _COMMON
    + """
for _, address in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[1])) do
  local old = redis.call('HGET', KEYS[1], address)
  if old then drop(address, old) else redis.call('ZREM', KEYS[5], address) end
end
if #ARGV > 3 then
  local dead = {}
  for i = 4, #ARGV do dead[ARGV[i]] = true end
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if dead[process_of(all[i + 1])] then drop(all[i], all[i + 1]) end
  end
end
local out = -1
if redis.call('EXISTS', KEYS[2]) == 1 then out = claim(tonumber(ARGV[2]), tonumber(ARGV[3])) end
return {out, redis.call('HLEN', KEYS[1])}
"""
)

# KEYS: the group's events and its flush slot. ARGV: interval ms. Takes the events and
# starts the cooling.
TAKE = """
local events = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[2], 'cooling', 'PX', ARGV[1])
else
  redis.call('DEL', KEYS[2])
end
return events
"""


def _delay(ms: int) -> float | None:
    return None if ms < 0 else ms / 1000


class RedisPresence(PresenceStore):
    """The Redis presence store of a ``RedisLayer``."""

    def __init__(self, layer: "RedisLayer", interval: float) -> None:
        self.layer = layer
        self.interval_ms = int(interval * 1000)
        self.grace_ms = int(CLAIM_GRACE * 1000)

    def _keys(self, group: str) -> list[bytes]:
        return [f"{self.layer.prefix}{kind}:{{{group}}}".encode() for kind in ("p", "pe", "ps", "pp", "pt")]

    async def _on(self, group: str) -> "_Shard":
        await self.layer._ready()
        return self.layer._shard(self.layer._shard_of(group))

    async def write(self, group: str, address: str, entry: Entry | None) -> float | None:
        shard = await self._on(group)
        argv: list[Any] = [
            address,
            entry.pack() if entry is not None else b"",
            entry.deadline_ms if entry is not None else 0,
            int(self.layer.group_expiry * 1000),
            self.interval_ms,
            self.grace_ms,
        ]
        async with shard.use():
            return _delay(await shard.presence_write(keys=self._keys(group), args=argv))

    async def stored(self, group: str) -> tuple[list[str], list[bytes]]:
        """``HKEYS`` of the process counts and ``HVALS`` of the entries in one transaction
        (so they agree); plain commands cost Redis far less than a script handling the values."""
        shard = await self._on(group)
        keys = self._keys(group)
        async with shard.use():
            async with shard.client.pipeline(transaction=True) as pipe:
                pipe.hkeys(keys[3])
                pipe.hvals(keys[0])
                processes, values = await pipe.execute()
        return [p.decode() for p in processes], values

    async def processes(self, group: str) -> list[str]:
        shard = await self._on(group)
        async with shard.use():
            return [p.decode() for p in await shard.client.hkeys(self._keys(group)[3])]

    async def dead(self, processes: list[str]) -> set[str]:
        """A process is dead when it was seen and its liveness key has lapsed (as in the
        send scripts); one pipeline per shard holding liveness keys."""
        if not processes:
            return set()
        await self.layer._ready()
        by_route: dict[int, list[str]] = {}
        for process in processes:
            by_route.setdefault(self.layer._shard_of(process + "!"), []).append(process)
        prefix = self.layer.prefix

        async def check(route: int, names: list[str]) -> set[str]:
            shard = self.layer._shard(route)
            async with shard.use():
                async with shard.client.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.exists(f"{prefix}seen:{{{name}}}")
                        pipe.exists(f"{prefix}live:{{{name}}}")
                    found = await pipe.execute()
            return {name for i, name in enumerate(names) if found[2 * i] and not found[2 * i + 1]}

        dead: set[str] = set()
        for part in await asyncio.gather(*(check(r, names) for r, names in by_route.items())):
            dead |= part
        return dead

    async def remove(self, group: str, dead: list[str], now_ms: int) -> tuple[float | None, int]:
        shard = await self._on(group)
        async with shard.use():
            claim, left = await shard.presence_sweep(
                keys=self._keys(group), args=[now_ms, self.interval_ms, self.grace_ms, *dead]
            )
        return _delay(claim), left

    async def take(self, group: str) -> list[bytes]:
        shard = await self._on(group)
        keys = self._keys(group)
        async with shard.use():
            return await shard.presence_take(keys=[keys[1], keys[2]], args=[self.interval_ms])
