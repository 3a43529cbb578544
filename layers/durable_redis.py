"""Durable channels of the Redis layer: one Redis Stream and consumer group per channel.

A channel's stream is ``<prefix>:d:{<channel>}``, on the shard (or cluster slot) its name
hashes to like any other key; its notes (retry state kept with an entry) are the hash
``...:n`` and its idempotency keys ``...:k:<key>``, all in that slot. Adding is one script
call per shard for a whole batch (capacity check, dedupe, XADD); acknowledging is XACK and
XDEL together, so the stream's length is what is still to do. Reading reclaims entries
idle past the visibility timeout (XAUTOCLAIM, at most every few seconds per channel),
then takes new ones with XREADGROUP, blocking only when there are none.
"""

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError, ResponseError

from .durable import Delivery, Depth, DurableSettings, DurableStore, Message, batched, entry_time
from .errors import ChannelFull, LayerError

if TYPE_CHECKING:
    from .redis import RedisLayer, _Shard

GROUP = "consumers"
# How often a reader looks for entries to reclaim, at most (and at least once per timeout).
CLAIM_EVERY = 5.0

# KEYS: per item, its stream and its idempotency key. ARGV: group, dedupe window ms (0:
# no dedupe), then per item capacity, key and payload. Returns per item 1 (added), 0 (a
# duplicate key) or -1 (full).
ADD = """
local window = tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 2 do
  local stream, seen = KEYS[2 * i - 1], KEYS[2 * i]
  local base = 3 * i
  if window > 0 and redis.call('EXISTS', seen) == 1 then
    out[i] = 0
  elseif redis.call('XLEN', stream) >= tonumber(ARGV[base]) then
    out[i] = -1
  else
    if redis.call('EXISTS', stream) == 0 then
      redis.call('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
    end
    local id = redis.call('XADD', stream, '*', 'k', ARGV[base + 1], 'm', ARGV[base + 2])
    if window > 0 then redis.call('SET', seen, id, 'PX', window) end
    out[i] = 1
  end
end
return out
"""

# KEYS: stream, notes. ARGV: group, consumer, min idle ms, cursor, count. Reclaims entries
# idle that long; returns {next cursor, {{id, fields, deliveries, note or false}, ...}}.
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', {}} end
local ok, r = pcall(redis.call, 'XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
if not ok then return {'0-0', {}} end
local out = {}
for _, e in ipairs(r[2]) do
  if type(e) == 'table' and type(e[2]) == 'table' then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    out[#out + 1] = {e[1], e[2], p[1] and p[1][4] or 1, redis.call('HGET', KEYS[2], e[1])}
  elseif type(e) == 'table' then
    redis.call('XACK', KEYS[1], ARGV[1], e[1])
  end
end
return {r[1], out}
"""

# KEYS: stream, notes. ARGV: group, ids. Done with them: acknowledged and deleted.
ACK = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
redis.call('HDEL', KEYS[2], unpack(ARGV, 2))
return 1
"""

# KEYS: stream. ARGV: group, consumer, idle ms to set (-1: now), ids. For each entry this
# consumer still holds: restart its idle time (or set it, to give it back, with its count
# lowered by one). Returns the ids it no longer holds.
HOLD = """
local lost = {}
local idle = tonumber(ARGV[3])
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    if idle < 0 then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', idle,
                 'RETRYCOUNT', math.max(0, p[1][4] - 1), 'JUSTID')
    end
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

# KEYS: stream, notes. ARGV: group, consumer, last id to take, min idle ms, count. Takes
# entries up to that id that nobody works on: unread ones (the oldest unread, in order,
# so XREADGROUP takes exactly them) and ones idle that long. Returns {{id, fields,
# deliveries, note or false}, ...}.
TAKE_OLD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local entries = redis.call('XRANGE', KEYS[1], '-', ARGV[3], 'COUNT', ARGV[5])
local out = {}
local unread = 0
for _, e in ipairs(entries) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
  if p[1] then
    if p[1][3] >= tonumber(ARGV[4]) then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, e[1], 'JUSTID')
      out[#out + 1] = {e[1], e[2], p[1][4], redis.call('HGET', KEYS[2], e[1])}
    end
  else
    unread = unread + 1
  end
end
if unread > 0 then
  local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', unread, 'STREAMS', KEYS[1], '>')
  if got then
    for _, e in ipairs(got[1][2]) do out[#out + 1] = {e[1], e[2], 0, false} end
  end
end
return out
"""

# KEYS: stream. ARGV: group. Returns {entries, handed out and not acknowledged, oldest id or false}.
DEPTH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, false} end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
return {redis.call('XLEN', KEYS[1]), ok and pending[1] or 0, first[1] and first[1][1] or false}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _retrieve(task: "asyncio.Task[Any]") -> None:
    """Mark a background read's failure as seen (its caller, if still waiting, raises it)."""
    if not task.cancelled():
        task.exception()


class RedisDurable(DurableStore):
    """Durable channels as Redis Streams on the layer's shards (or cluster slots)."""

    layer: "RedisLayer"

    def __init__(self, layer: "RedisLayer", settings: DurableSettings) -> None:
        super().__init__(layer, settings)
        self._scripts: dict[tuple[int, str], Any] = {}
        self._next_claim: dict[str, float] = {}
        self._cursors: dict[str, str] = {}
        self._stash: list[Delivery] = []
        self._blocked: set[asyncio.Task[list[Delivery]]] = set()

    # -- keys and scripts --------------------------------------------------------------

    def key(self, channel: str) -> bytes:
        return f"{self.layer.prefix}d:{{{channel}}}".encode()

    def _notes(self, channel: str) -> bytes:
        return self.key(channel) + b":n"

    def _seen(self, channel: str, key: str) -> bytes:
        return self.key(channel) + b":k:" + key.encode("utf-8", "surrogatepass")

    def _shard_for(self, channel: str) -> "_Shard":
        return self.layer._shard(self.layer._shard_of(channel))

    def _script(self, shard: "_Shard", source: str) -> Any:
        ident = (id(shard.client), source)
        script = self._scripts.get(ident)
        if script is None:
            if len(self._scripts) > 1000:
                self._scripts.clear()
            script = self._scripts[ident] = shard.client.register_script(source)
        return script

    async def _run(self, channel: str, source: str, keys: list[bytes], args: list[Any]) -> Any:
        shard = self._shard_for(channel)
        async with shard.use():
            return await self._script(shard, source)(keys=keys, args=args)

    # -- adding ------------------------------------------------------------------------

    async def _add_many(
        self, items: Sequence[tuple[str, Message, str | None]], dedupe: bool = False
    ) -> list[bool | LayerError]:
        await self.layer._ready()
        out: list[bool | LayerError] = [True] * len(items)
        batches: dict[int, tuple[list[int], list[bytes], list[Any]]] = {}
        for index, (channel, message, key) in enumerate(items):
            try:
                payload = self.pack(channel, message)
            except LayerError as exc:
                out[index] = exc
                continue
            positions, keys, argv = batches.setdefault(self.layer._shard_of(channel), ([], [], []))
            positions.append(index)
            keys += [self.key(channel), self._seen(channel, key) if key else self.key(channel) + b":k"]
            argv += [self.settings.capacity, key or "", payload]
        window = int(self.settings.dedupe_window * 1000) if dedupe else 0

        async def call(route: int, keys: list[bytes], argv: list[Any]) -> list[int]:
            shard = self.layer._shard(route)
            async with shard.use():
                return await self._script(shard, ADD)(keys=keys, args=[GROUP, window, *argv])

        routes = list(batches)
        replies = await asyncio.gather(
            *(call(r, batches[r][1], batches[r][2]) for r in routes), return_exceptions=True
        )
        for route, reply in zip(routes, replies, strict=True):
            positions = batches[route][0]
            if isinstance(reply, BaseException):
                if not isinstance(reply, LayerError):
                    raise reply
                for index in positions:
                    out[index] = reply
                continue
            for index, code in zip(positions, reply, strict=True):
                if code == -1:
                    channel = items[index][0]
                    out[index] = ChannelFull(
                        f"durable channel {channel!r} is full ({self.settings.capacity} entries)"
                    )
                else:
                    out[index] = code == 1
        return out

    # -- reading -------------------------------------------------------------------------

    async def _read(self, channels: list[str], count: int, timeout: float | None) -> list[Delivery]:
        await self.layer._ready()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        routes: dict[int, list[str]] = {}
        for channel in channels:
            routes.setdefault(self.layer._shard_of(channel), []).append(channel)
        while True:
            out = self._take_stash(channels, count)
            if out:
                return out
            out = await self._reclaim(channels, count)
            if len(out) < count:
                replies = await asyncio.gather(
                    *(self._xread(cs, count - len(out), None) for cs in routes.values())
                )
                for reply in replies:
                    out += reply
            if out:
                return self._keep(out, count)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            block = (
                self.layer.block_timeout if remaining is None else min(remaining, self.layer.block_timeout)
            )
            block = max(0.01, min(block, self._claim_every()))
            tasks = [asyncio.ensure_future(self._blocked_read(cs, count, block)) for cs in routes.values()]
            done, _ = await asyncio.wait(tasks, timeout=block + 1, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def _reclaim(self, channels: list[str], count: int) -> list[Delivery]:
        """Entries idle past the visibility timeout, for channels whose look is due."""
        out: list[Delivery] = []
        now = time.monotonic()
        for channel in channels:
            if len(out) >= count:
                break
            if now >= self._next_claim.get(channel, 0.0):
                claimed = await self._claim(channel, count - len(out))
                out += claimed
                # Keep reclaiming while there is a backlog of abandoned entries.
                self._next_claim[channel] = now if claimed else now + self._claim_every()
        return out

    def _claim_every(self) -> float:
        return min(CLAIM_EVERY, self.settings.visibility_timeout / 2)

    def _keep(self, out: list[Delivery], count: int) -> list[Delivery]:
        """Return ``count`` deliveries; stash the rest for the next read."""
        if len(out) > count:
            self._stash += out[count:]
            del out[count:]
        return out

    def _take_stash(self, channels: list[str], count: int) -> list[Delivery]:
        if not self._stash:
            return []
        wanted = set(channels)
        out = [d for d in self._stash if d.channel in wanted][:count]
        if out:
            taken = {id(d) for d in out}
            self._stash = [d for d in self._stash if id(d) not in taken]
        return out

    async def _blocked_read(self, channels: list[str], count: int, block: float) -> list[Delivery]:
        """A blocking XREADGROUP whose result goes to the stash, so a read that outlives
        the caller who started it loses nothing."""
        task = asyncio.current_task()
        assert task is not None
        self._blocked.add(task)  # type: ignore[arg-type]
        task.add_done_callback(_retrieve)
        try:
            got = await self._xread(channels, count, block)
        finally:
            self._blocked.discard(task)  # type: ignore[arg-type]
        self._stash += got
        return got

    async def _xread(self, channels: list[str], count: int, block: float | None) -> list[Delivery]:
        """New entries of channels on one shard (blocking up to ``block`` seconds if given)."""
        shard = self._shard_for(channels[0])
        streams = {self.key(c): ">" for c in channels}
        block_ms = None if block is None else max(1, int(block * 1000))
        for attempt in range(2):
            async with shard.use():
                try:
                    reply = await shard.client.xreadgroup(
                        GROUP, self.layer.client_id, streams, count=count, block=block_ms
                    )
                    break
                except ResponseError as exc:
                    # A channel nothing was added to yet (or flushed): make its stream and group.
                    if "NOGROUP" not in str(exc) or attempt:
                        raise
            await self._create_groups(shard, list(streams))
        out = []
        names = {self.key(c): c for c in channels}
        for key, entries in reply or []:
            channel = names[key if isinstance(key, bytes) else key.encode()]
            for entry_id, fields in entries:
                out.append(self._delivery(channel, _text(entry_id), fields, 1, None))
        return out

    async def _create_groups(self, shard: "_Shard", keys: list[bytes]) -> None:
        for key in keys:
            async with shard.use():
                try:
                    await shard.client.xgroup_create(key, GROUP, id="0", mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    async def _claim(self, channel: str, count: int) -> list[Delivery]:
        cursor = self._cursors.get(channel, "0-0")
        min_idle = int(self.settings.visibility_timeout * 1000)
        reply = await self._run(
            channel,
            CLAIM,
            [self.key(channel), self._notes(channel)],
            [GROUP, self.layer.client_id, min_idle, cursor, count],
        )
        self._cursors[channel] = _text(reply[0])
        return [self._delivery(channel, _text(i), f, int(n), note) for i, f, n, note in reply[1]]

    def _delivery(self, channel: str, entry_id: str, fields: Any, attempt: int, note: Any) -> Delivery:
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        key = fields.get(b"k") or b""
        return Delivery(
            channel,
            self.layer.unpack(fields[b"m"]),
            entry_id,
            _text(key) or entry_id,
            attempt,
            entry_time(entry_id),
            self.layer.unpack(note) if note else None,
        )

    # -- after reading -------------------------------------------------------------------

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        await self.layer._ready()
        calls = []
        for channel, items in batched(deliveries).items():
            for start in range(0, len(items), 500):
                ids = [d.id for d in items[start : start + 500]]
                calls.append(
                    self._run(channel, ACK, [self.key(channel), self._notes(channel)], [GROUP, *ids])
                )
        for reply in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(reply, BaseException):
                raise reply

    async def _hold(self, deliveries: Sequence[Delivery], idle: int) -> list[Delivery]:
        await self.layer._ready()
        lost: list[Delivery] = []
        for channel, items in batched(deliveries).items():
            by_id = {d.id: d for d in items}
            gone = await self._run(
                channel, HOLD, [self.key(channel)], [GROUP, self.layer.client_id, idle, *by_id]
            )
            lost += [by_id[_text(i)] for i in gone]
        return lost

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        await self._hold(deliveries, int(self.settings.visibility_timeout * 1000))

    async def touch(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        return await self._hold(deliveries, -1)

    async def save_note(self, delivery: Delivery, note: Message) -> None:
        await self.layer._ready()
        shard = self._shard_for(delivery.channel)
        async with shard.use():
            await shard.client.hset(
                self._notes(delivery.channel), delivery.id, self.layer.encode(note, "a note")
            )

    async def depth(self, channel: str) -> Depth:
        await self.layer._ready()
        entries, pending, oldest = await self._run(channel, DEPTH, [self.key(channel)], [GROUP])
        return Depth(int(entries), int(pending), entry_time(_text(oldest)) if oldest else None)

    async def take_old(self, channel: str, added_before: float, count: int = 100) -> list[Delivery]:
        await self.layer._ready()
        last = f"{int(added_before * 1000) - 1}-18446744073709551615"
        min_idle = int(self.settings.visibility_timeout * 1000)
        reply = await self._run(
            channel,
            TAKE_OLD,
            [self.key(channel), self._notes(channel)],
            [GROUP, self.layer.client_id, last, min_idle, count],
        )
        return [self._delivery(channel, _text(i), f, int(n), note) for i, f, n, note in reply]

    # -- durability ----------------------------------------------------------------------

    async def check(self) -> list[str]:
        await self.layer._ready()
        problems = []
        for shard in self.layer._shards:
            try:
                async with shard.use():
                    persistence = await shard.client.info("persistence")
                    memory = await shard.client.info("memory")
            except LayerError as exc:
                problems.append(f"redis at {shard.label} could not be checked: {exc}")
                continue
            if not int(persistence.get("aof_enabled", 0)):
                problems.append(
                    f"redis at {shard.label} runs without AOF (appendonly no): entries on durable "
                    "channels since its last snapshot are lost if it stops; set appendonly yes"
                )
            policy = _text(memory.get("maxmemory_policy", "noeviction"))
            if policy != "noeviction":
                problems.append(
                    f"redis at {shard.label} has maxmemory-policy {policy}: it may evict durable "
                    "entries when full; set maxmemory-policy noeviction (a full Redis then refuses "
                    "new entries, and senders are told to retry)"
                )
        return problems

    def clear(self) -> None:
        self._stash.clear()
        self._cursors.clear()
        self._next_claim.clear()

    async def close(self) -> None:
        blocked = list(self._blocked)
        for task in blocked:
            task.cancel()
        await asyncio.gather(*blocked, return_exceptions=True)
        stash, self._stash = self._stash, []
        if stash:
            try:
                await self.release(stash)
            except (LayerError, RedisError):
                pass
