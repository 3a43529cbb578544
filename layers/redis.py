"""Redis channel layer: one server or several shards, on ``redis.asyncio`` with hiredis.

Every channel is a Redis list; all ``!`` channels of a process share one list named by
their prefix. A batch of sends is one script call per shard; a receive takes up to N
entries per round trip and blocks with ``BLPOP`` only when every queue is empty. Groups
are sorted sets (member -> join time) kept on the shard of each member's queue, so a
group send is one script call per shard however large the group.
"""

import asyncio
import functools
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import scripts
from .base import BaseLayer, Message, raise_if_cancelled
from .errors import ChannelFull, LayerError, LayerUnavailable
from .hashring import HashRing
from .names import queue_name
from .outage import Outage
from .stats import GroupReach

DEFAULT_PREFIX = "switchroom"
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_BLOCK_TIMEOUT = 5.0

T = TypeVar("T")


@contextmanager
def _unavailable(
    label: str,
    on_moved: Callable[[], None] | None = None,
    on_lost: Callable[[], None] | None = None,
    outage: Outage | None = None,
    quiet: bool = False,
) -> Iterator[None]:
    """Turn connection-level failures into LayerUnavailable naming the shard.

    A lost connection calls ``on_lost`` (the shard then closes its idle pooled connections,
    which a Redis restart has broken too, so none of them fails a command later).

    A cluster node answering MOVED/ASK/CLUSTERDOWN marks the topology stale, so the next
    call re-reads the slot map; the refused command was not run, so nothing is lost.

    ``outage`` hears of every success and (unless ``quiet``) every failure, so an outage
    is logged once however many callers retry.
    """
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
        if on_lost is not None:
            on_lost()
        error = LayerUnavailable(f"redis at {label} is unavailable: {exc}")
        if outage is not None and not quiet:
            outage.failed(error)
        raise error from exc
    except RedisError as exc:
        if on_moved is not None and str(exc).startswith(("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN")):
            on_moved()
            raise LayerUnavailable(f"redis cluster topology changed at {label}: {exc}") from exc
        error = LayerUnavailable(f"redis at {label} failed: {exc}")
        if outage is not None and not quiet:
            outage.failed(error)
        raise error from exc
    else:
        if outage is not None:
            outage.answered()


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so SCAN MATCH treats ``text`` literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def shard_key(queue: str) -> str:
    """The name a queue is hashed by: a process queue hashes by its process id only."""
    if queue.endswith("!"):
        return queue[:-1].rsplit(".", 1)[-1]
    return queue


async def _gather(calls: list[Coroutine[Any, Any, T]]) -> list[T | BaseException]:
    """Await one call directly (the common single-shard case) or several concurrently."""
    if len(calls) == 1:
        try:
            return [await calls[0]]
        except LayerError as exc:
            return [exc]
    return await asyncio.gather(*calls, return_exceptions=True)


HEALTH_CHECK_INTERVAL = 1.0

# Query-string options of a ``rediss`` URL that configure TLS (redis-py's names).
TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
TLS_OPTIONS = (*TLS_FILES, "ssl_password", "ssl_cert_reqs", "ssl_check_hostname")
CERT_REQS = ("required", "optional", "none")


def label(url: str) -> str:
    """``host:port/db`` of a Redis URL: what errors name and shards are hashed by.

    Credentials and the query string (which may carry a key's passphrase) are left out,
    so a label can be logged, and processes hash shards alike whatever their file paths.
    A password with an unencoded ``/`` ends the host part early; what follows its ``@``
    is still the address.
    """
    parts = urlsplit(url)
    text = parts.netloc + parts.path
    return text.rpartition("@")[2] if "@" in text else text


def tls_options(url: str) -> dict[str, Any]:
    """The TLS settings in a URL's query string, checked, as redis-py keywords.

    A ``rediss`` scheme turns TLS on; the options only make sense with it, and a file
    that is missing is refused here rather than on every later connection attempt.
    """
    parts = urlsplit(url)
    given = {k: v for k, v in parse_qsl(parts.query) if k in TLS_OPTIONS}
    if not parts.scheme.startswith("rediss"):
        if given:
            raise ValueError(f"TLS options ({', '.join(sorted(given))}) need a rediss:// URL")
        return {}
    options: dict[str, Any] = {"ssl": True}
    for key, value in given.items():
        if key in TLS_FILES and not os.path.isfile(value):
            raise ValueError(f"{key}: no such file: {value}")
        if key == "ssl_cert_reqs" and value not in CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
        if key == "ssl_check_hostname":
            options[key] = value.lower() in ("1", "true", "yes", "on")
        else:
            options[key] = value
    if "ssl_keyfile" in options and "ssl_certfile" not in options:
        raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate)")
    return options


def _without_tls_options(url: str) -> str:
    """``url`` with the TLS options taken out of its query string."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in TLS_OPTIONS]
    return parts._replace(query=urlencode(kept)).geturl()


def _connect(url: str, socket_timeout: float, connect_timeout: float) -> aioredis.Redis:
    """A client for a ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://`` URL.

    A Sentinel URL lists sentinels and names the service:
    ``redis+sentinel://[:password@]host:port,host:port/service?db=0``. Its client asks the
    sentinels for the current master whenever it opens a connection, so it follows a
    failover; calls made while no master answers raise LayerUnavailable.
    """
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": False,
        # A pooled connection idle for this long is pinged before use, so one that a Redis
        # restart broke is replaced instead of failing a send long after Redis came back.
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }
    tls = tls_options(url)
    parts = urlsplit(url)
    if not parts.scheme.endswith("+sentinel"):
        tls.pop("ssl", None)
        return aioredis.Redis.from_url(_without_tls_options(url), **options, **tls)
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        nodes.append((name, int(port or 26379)))
    query = dict(parse_qsl(parts.query))
    password = unquote(credentials.partition(":")[2]) or None if credentials else None
    sentinels = nodes
    sentinel = Sentinel(
        sentinels,
        sentinel_kwargs={"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout},
        **options,
    )
    return sentinel.master_for(
        parts.path.strip("/") or "mymaster",
        password=password,
        db=int(query.get("db", 0)),
        **tls,
    )


REDIS_CLUSTER_SLOTS = 16384


def _cluster_startup_nodes(url: str) -> list[tuple[str, int]]:
    """The ``host:port`` list of a ``redis+cluster://[:password@]h:p,h:p`` URL."""
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        nodes.append((name, int(port or 6379)))
    return nodes


class _Shard:
    """One Redis server (or Sentinel-managed master): its client, scripts and a label for errors."""

    def __init__(
        self,
        url: str,
        socket_timeout: float,
        connect_timeout: float,
        on_moved: Callable[[], None] | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.url = url
        self.label = label(url)
        self.on_moved = on_moved
        self.outage = outage or Outage(f"redis at {self.label}")
        self.client = _connect(url, socket_timeout, connect_timeout)
        self.send = self.client.register_script(scripts.SEND)
        self.pop = self.client.register_script(scripts.POP)
        self.group_send = self.client.register_script(scripts.GROUP_SEND)
        self._dropping: asyncio.Task[None] | None = None

    def guard(self, quiet: bool = False) -> AbstractContextManager[None]:
        """The error translation for a command here (``quiet``: failures are the caller's to report)."""
        return _unavailable(self.label, self.on_moved, self.drop_idle, self.outage, quiet)

    def drop_idle(self) -> None:
        """Close the pool's idle connections (in the background): they are likely broken too."""
        if self._dropping is None or self._dropping.done():
            pool = self.client.connection_pool
            self._dropping = asyncio.ensure_future(pool.disconnect(inuse_connections=False))


class RedisLayer(BaseLayer):
    """A channel layer on one Redis server or several shards (consistent hashing)."""

    extensions = ("groups", "flush")

    def __init__(
        self,
        urls: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = 5.0,
        block_timeout: float = DEFAULT_BLOCK_TIMEOUT,
        local: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if isinstance(urls, str):
            urls = [urls]
        if block_timeout >= socket_timeout:
            raise ValueError("block_timeout must be shorter than socket_timeout")
        self.urls = list(urls)
        self.cluster = any(urlsplit(u).scheme.endswith("+cluster") for u in self.urls)
        if self.cluster and len(self.urls) > 1:
            raise ValueError("a Redis Cluster layer takes one redis+cluster:// URL listing its nodes")
        self.prefix = prefix + ":"
        self._queue_prefix = self.prefix + "q:"
        self._group_prefix = self.prefix + "g:"
        self.block_timeout = block_timeout
        self._timeouts = (socket_timeout, connect_timeout)
        self._slot_owner: list[int] = []
        self._stale = True
        self._outages: dict[str, Outage] = {}
        if self.cluster:
            self._shards: list[_Shard] = []
            self._cluster_nodes = _cluster_startup_nodes(self.urls[0])
            self._cluster_tls = tls_options(self.urls[0])
            tls_query = [(k, v) for k, v in parse_qsl(urlsplit(self.urls[0]).query) if k in TLS_OPTIONS]
            self._cluster_query = "?" + urlencode(tls_query) if tls_query else ""
            self._topology_lock = asyncio.Lock()
        else:
            self._shards = [
                _Shard(u, socket_timeout, connect_timeout, outage=self._outage(label(u))) for u in self.urls
            ]
            self._ring = HashRing([s.label for s in self._shards])
        self._lua_patterns = [(scripts.glob_to_lua(p), c) for p, c in self.capacities.items()]
        self.local = local
        self._local_marker = f".{self.client_id}!"
        self._local_groups: dict[str, dict[str, float]] = {}
        self._stash: dict[str, deque[tuple[float, str, Message]]] = {}
        self._blocked: dict[tuple[int, frozenset[bytes]], asyncio.Task[Any]] = {}
        self._arrival_waiters: list[asyncio.Future[None]] = []
        self._rotation = 0

    def _outage(self, where: str) -> Outage:
        """The one outage record of a node, kept across cluster topology changes."""
        outage = self._outages.get(where)
        if outage is None:
            outage = self._outages[where] = Outage(f"redis at {where}", self.stats.counts)
        return outage

    def _shard_of(self, queue: str) -> int:
        """Where a queue lives: a shard index, or in a cluster its hash slot."""
        if self.cluster:
            return key_slot(shard_key(queue).encode())
        return self._ring.shard(shard_key(queue))

    def _shard(self, route: int) -> "_Shard":
        """The client serving a route from ``_shard_of``."""
        return self._shards[self._slot_owner[route]] if self.cluster else self._shards[route]

    async def _ready(self) -> None:
        """Cluster only: read the slot map (again, after a MOVED) and connect to each master."""
        if not self.cluster or not self._stale:
            return
        async with self._topology_lock:
            if self._stale:
                await self._read_topology()

    async def _read_topology(self) -> None:
        url = urlsplit(self.urls[0])
        credentials = url.netloc.rpartition("@")[0]
        scheme = "rediss" if url.scheme.startswith("rediss") else "redis"
        topology = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in self._cluster_nodes],
            password=unquote(credentials.partition(":")[2]) or None,
            socket_connect_timeout=self._timeouts[1],
            socket_timeout=self._timeouts[0],
            **self._cluster_tls,
        )
        try:
            with _unavailable(label(self.urls[0]), outage=self._outage(label(self.urls[0]))):
                await topology.initialize()
            masters: dict[str, int] = {}
            owners = []
            for slot in range(REDIS_CLUSTER_SLOTS):
                node = topology.nodes_manager.get_node_from_slot(slot)
                owners.append(masters.setdefault(node.name, len(masters)))
        finally:
            await topology.aclose()
        old, self._shards = (
            self._shards,
            [
                _Shard(
                    f"{scheme}://{credentials + '@' if credentials else ''}{name}/0{self._cluster_query}",
                    *self._timeouts,
                    on_moved=self._topology_changed,
                    outage=self._outage(f"{name}/0"),
                )
                for name in masters
            ],
        )
        self._slot_owner = owners
        self._stale = False
        for shard in old:
            await shard.client.aclose()

    def _topology_changed(self) -> None:
        self._stale = True

    def _queue_key(self, queue: str) -> bytes:
        """The Redis key of a queue; the ``{tag}`` keeps a process's queues in one cluster slot."""
        return f"{self._queue_prefix}{{{shard_key(queue)}}}:{queue}".encode()

    def _is_local(self, queue: str) -> bool:
        """True when ``local`` is on and ``queue`` is one of this process's ``!`` queues."""
        return self.local and queue.endswith(self._local_marker)

    # -- send ------------------------------------------------------------------------

    async def send_many(self, items: Iterable[tuple[str, Message]]) -> list[LayerError | None]:
        await self._ready()
        results: list[LayerError | None] = []
        channels: list[str] = []
        batches: dict[int, tuple[list[int], list[bytes], list[Any]]] = {}
        now = time.time()
        head = b"%013d" % int((now + self.expiry) * 1000)
        for index, (channel, message) in enumerate(items):
            results.append(None)
            channels.append(channel)
            try:
                payload = self.pack(channel, message)
            except LayerError as exc:
                results[index] = exc
                continue
            queue = queue_name(channel)
            if self._is_local(queue):
                results[index] = self._deliver_local(queue, channel, payload, now)
                continue
            positions, keys, argv = batches.setdefault(self._shard_of(queue), ([], [], []))
            positions.append(index)
            keys.append(self._queue_key(queue))
            argv.append(self.capacity_for(queue))
            argv.append(b"".join((head, channel.encode(), b"\n", payload)))
        if batches:
            ttl = int(self.expiry * 1000)
            now_ms = int(now * 1000)
            shard_ids = list(batches)
            calls = [self._send_batch(i, batches[i][1], [now_ms, ttl, *batches[i][2]]) for i in shard_ids]
            replies = await _gather(calls)
            for shard_id, reply in zip(shard_ids, replies, strict=False):
                positions = batches[shard_id][0]
                if isinstance(reply, BaseException):
                    if not isinstance(reply, LayerError):
                        raise reply
                    for index in positions:
                        results[index] = reply
                    continue
                for index, ok in zip(positions, reply, strict=False):
                    if not ok:
                        channel = channels[index]
                        capacity = self.capacity_for(queue_name(channel))
                        results[index] = ChannelFull(f"channel {channel!r} is full ({capacity} messages)")
        self.stats.sent(results)
        return results

    async def _send_batch(self, shard_id: int, keys: list[bytes], argv: list[Any]) -> list[int]:
        shard = self._shard(shard_id)
        with shard.guard():
            return await shard.send(keys=keys, args=argv)

    # -- receive ---------------------------------------------------------------------

    async def _receive_queues(
        self, queues: list[str], max_messages: int, timeout: float | None
    ) -> list[tuple[str, Message]]:
        out = self._take_stash(queues, max_messages)
        if out:
            return out
        await self._ready()
        by_shard: dict[int, list[bytes]] = {}
        for queue in queues:
            by_shard.setdefault(self._shard_of(queue), []).append(self._queue_key(queue))
        self._rotation += 1
        for keys in by_shard.values():
            if len(keys) > 1:
                r = self._rotation % len(keys)
                keys[:] = keys[r:] + keys[:r]
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        refill = False
        while True:
            raise_if_cancelled()
            arrival = loop.create_future()
            self._arrival_waiters.append(arrival)
            try:
                out = self._take_stash(queues, max_messages)
                if refill and out and len(out) < max_messages:
                    out += await self._pop_all(by_shard, max_messages - len(out))
                if not out:
                    out = await self._pop_all(by_shard, max_messages)
                if out:
                    return out
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return []
                block = self.block_timeout if remaining is None else min(remaining, self.block_timeout)
                refill = await self._block(by_shard, max(block, 0.01), arrival)
            finally:
                if not arrival.done():
                    arrival.cancel()
                    self._arrival_waiters.remove(arrival)

    async def _pop_all(
        self, by_shard: dict[int, list[bytes]], max_messages: int
    ) -> list[tuple[str, Message]]:
        """Take up to ``max_messages`` without blocking; one script call per shard."""
        if len(by_shard) == 1:
            ((shard_id, keys),) = by_shard.items()
            out = await self._pop(shard_id, keys, max_messages)
        else:
            replies = await asyncio.gather(
                *(self._pop(i, keys, max_messages) for i, keys in by_shard.items())
            )
            out = [item for entries in replies for item in entries]
        if len(out) > max_messages:
            self._hold(out[max_messages:])
            del out[max_messages:]
        return out

    async def _pop(self, shard_id: int, keys: list[bytes], count: int) -> list[tuple[str, Message]]:
        shard = self._shard(shard_id)
        with shard.guard():
            entries = await shard.pop(keys=keys, args=[count])
        return self._decode_all(entries)

    async def _block(
        self, by_shard: dict[int, list[bytes]], block: float, arrival: asyncio.Future[None]
    ) -> bool:
        """Wait until a blocked read on these queues returns, something else is held for
        this process, or ``block`` seconds pass. True if a blocked read brought messages.

        Every blocked read puts what it pops in the stash, so a read that outlives its
        caller loses nothing; callers waiting on the same queues share one blocked read.
        A failed read wakes its waiters, whose next non-blocking read raises the error.
        """
        tasks = []
        for shard_id, keys in by_shard.items():
            ident = (shard_id, frozenset(keys))
            task = self._blocked.get(ident)
            if task is None:
                task = asyncio.ensure_future(self._blpop(shard_id, keys, block))
                self._blocked[ident] = task
                task.add_done_callback(functools.partial(self._blocked_done, ident))
            tasks.append(task)
        done, _ = await asyncio.wait([*tasks, arrival], timeout=block, return_when=asyncio.FIRST_COMPLETED)
        return any(
            t is not arrival and not t.cancelled() and t.exception() is None and t.result() for t in done
        )

    async def _blpop(self, shard_id: int, keys: list[bytes], block: float) -> list[tuple[str, Message]]:
        shard = self._shard(shard_id)
        with shard.guard():
            reply = await shard.client.blpop(keys, timeout=block)
        return self._decode_all([reply[1]]) if reply else []

    def _blocked_done(self, ident: tuple[int, frozenset[bytes]], task: "asyncio.Task[Any]") -> None:
        """Stash what a blocked read popped, and wake whoever waits."""
        if self._blocked.get(ident) is task:
            del self._blocked[ident]
        if task.cancelled() or task.exception() is not None:
            self._wake_arrivals()
            return
        self._hold(task.result())

    def _hold(self, items: list[tuple[str, Message]]) -> None:
        """Keep messages already taken from Redis for the next receive on their queue."""
        if not items:
            return
        deadline = time.time() + self.expiry
        for channel, message in items:
            self._stash.setdefault(queue_name(channel), deque()).append((deadline, channel, message))
        self._wake_arrivals()

    def _wake_arrivals(self) -> None:
        waiters, self._arrival_waiters = self._arrival_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _deliver_local(self, queue: str, channel: str, payload: bytes, now: float) -> LayerError | None:
        """Put a message for one of this process's own queues straight into its stash."""
        box = self._stash.get(queue)
        if box is None:
            box = self._stash[queue] = deque()
        capacity = self.capacity_for(queue)
        if len(box) >= capacity:
            while box and box[0][0] <= now:
                box.popleft()
            if len(box) >= capacity:
                return ChannelFull(f"channel {channel!r} is full ({capacity} messages)")
        box.append((now + self.expiry, channel, self.unpack(payload)))
        self._wake_arrivals()
        return None

    def _take_stash(self, queues: list[str], max_messages: int) -> list[tuple[str, Message]]:
        out: list[tuple[str, Message]] = []
        if not self._stash:
            return out
        now = time.time()
        for queue in queues:
            box = self._stash.get(queue)
            while box and len(out) < max_messages:
                deadline, channel, message = box.popleft()
                if deadline > now:
                    out.append((channel, message))
            if box is not None and not box:
                del self._stash[queue]
        return out

    def _decode_all(self, entries: list[bytes]) -> list[tuple[str, Message]]:
        now_ms = int(time.time() * 1000)
        out = []
        for entry in entries:
            if int(entry[:13]) <= now_ms:
                continue
            split = entry.index(b"\n", 13)
            out.append((entry[13:split].decode(), self.unpack(entry[split + 1 :])))
        return out

    # -- groups ----------------------------------------------------------------------

    def _group_key(self, group: str, tag: str | None = None) -> bytes:
        """A group's member set: one per shard, or in a cluster one per member tag (slot)."""
        if tag is None:
            return (self._group_prefix + group).encode()
        return f"{self._group_prefix}{{{tag}}}:{group}".encode()

    def _group_index_key(self, group: str) -> bytes:
        """Cluster only: the set of member tags that have a member set for ``group``."""
        return f"{self.prefix}gi:{{{group}}}".encode()

    async def _group_tags(self, group: str) -> list[str]:
        shard = self._shard(key_slot(group.encode()))
        with shard.guard():
            return [t.decode() for t in await shard.client.smembers(self._group_index_key(group))]

    async def group_add(self, group: str, channel: str) -> None:
        self._check_group(group, channel)
        await self._ready()
        queue = queue_name(channel)
        shard = self._shard(self._shard_of(queue))
        tag = shard_key(queue) if self.cluster else None
        key = self._group_key(group, tag)
        ttl = int(self.group_expiry * 1000)
        if self._is_local(queue):
            self._local_groups.setdefault(group, {})[channel] = time.time()
        with shard.guard():
            async with shard.client.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {channel: int(time.time() * 1000)})
                pipe.pexpire(key, ttl)
                await pipe.execute()
        if tag is not None:
            index = self._shard(key_slot(group.encode()))
            with index.guard():
                async with index.client.pipeline(transaction=False) as pipe:
                    pipe.sadd(self._group_index_key(group), tag)
                    pipe.pexpire(self._group_index_key(group), ttl)
                    await pipe.execute()

    async def group_discard(self, group: str, channel: str) -> None:
        self._check_group(group, channel)
        await self._ready()
        members = self._local_groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._local_groups[group]
        queue = queue_name(channel)
        shard = self._shard(self._shard_of(queue))
        key = self._group_key(group, shard_key(queue) if self.cluster else None)
        with shard.guard():
            await shard.client.zrem(key, channel)

    def _group_targets(self, group: str, tags: list[str] | None) -> list[tuple["_Shard", bytes]]:
        """Every (client, member set) of a group: one per shard, or one per tag in a cluster."""
        if tags is None:
            return [(shard, self._group_key(group)) for shard in self._shards]
        return [(self._shard(key_slot(tag.encode())), self._group_key(group, tag)) for tag in tags]

    async def group_channels(self, group: str) -> list[str]:
        self._check_group(group)
        await self._ready()
        cutoff = int((time.time() - self.group_expiry) * 1000)
        tags = await self._group_tags(group) if self.cluster else None

        async def members(shard: _Shard, key: bytes) -> list[bytes]:
            with shard.guard():
                async with shard.client.pipeline(transaction=False) as pipe:
                    pipe.zremrangebyscore(key, "-inf", cutoff)
                    pipe.zrange(key, 0, -1)
                    return (await pipe.execute())[1]

        replies = await asyncio.gather(*(members(s, k) for s, k in self._group_targets(group, tags)))
        return [m.decode() for reply in replies for m in reply]

    async def group_send(self, group: str, message: Message) -> GroupReach:
        self._check_group(group)
        await self._ready()
        payload = self.encode(message, f"group {group}")
        now = time.time()
        argv: list[Any] = [
            int(now * 1000),
            int(self.expiry * 1000),
            int((now - self.group_expiry) * 1000),
            self._queue_prefix.encode(),
            b"%013d" % int((now + self.expiry) * 1000),
            payload,
            self.capacity,
            self.process_capacity,
            self._local_marker if self.local else "",
        ]
        for pattern, cap in self._lua_patterns:
            argv += [pattern, cap]
        tags = await self._group_tags(group) if self.cluster else None

        async def send(shard: _Shard, key: bytes) -> GroupReach:
            with shard.guard():
                reached, full, lapsed = await shard.group_send(keys=[key], args=argv)
            return GroupReach(reached=reached, full=full, expired=lapsed)

        reach = self._group_send_local(group, payload, now)
        for part in await asyncio.gather(*(send(s, k) for s, k in self._group_targets(group, tags))):
            reach += part
        self.stats.reach(group, reach)
        return reach

    def _group_send_local(self, group: str, payload: bytes, now: float) -> GroupReach:
        """Deliver a group message to this process's own members without Redis."""
        members = self._local_groups.get(group)
        if not members:
            return GroupReach()
        cutoff = now - self.group_expiry
        for channel in [c for c, joined in members.items() if joined <= cutoff]:
            del members[channel]
        sent = sum(
            self._deliver_local(queue_name(channel), channel, payload, now) is None
            for channel in list(members)
        )
        return GroupReach(reached=sent, full=len(members) - sent)

    # -- health ----------------------------------------------------------------------

    async def ping(self) -> None:
        await self._ready()

        async def one(shard: _Shard) -> None:
            with shard.guard(quiet=True):
                await shard.client.ping()
            shard.outage.answered()

        await asyncio.gather(*(one(shard) for shard in self._shards))

    async def queue_lengths(self, channels: Sequence[str]) -> dict[str, int]:
        await self._ready()
        queues = {channel: queue_name(channel) for channel in channels}
        by_shard: dict[int, list[str]] = {}
        for queue in dict.fromkeys(queues.values()):
            by_shard.setdefault(self._shard_of(queue), []).append(queue)

        async def lengths(route: int, names: list[str]) -> dict[str, int]:
            shard = self._shard(route)
            with shard.guard():
                async with shard.client.pipeline(transaction=False) as pipe:
                    for queue in names:
                        pipe.llen(self._queue_key(queue))
                    return dict(zip(names, await pipe.execute(), strict=True))

        found: dict[str, int] = {}
        for part in await asyncio.gather(*(lengths(r, names) for r, names in by_shard.items())):
            found.update(part)
        return {c: found[q] + len(self._stash.get(q, ())) for c, q in queues.items()}

    # -- housekeeping ----------------------------------------------------------------

    async def flush(self) -> None:
        await self._ready()
        for shard in self._shards:
            with shard.guard():
                batch = []
                async for key in shard.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
                    batch.append(key)
                    if len(batch) >= 1000:
                        await self._unlink(shard, batch)
                        batch = []
                if batch:
                    await self._unlink(shard, batch)
        self._stash.clear()
        self._local_groups.clear()
        self._clear_local()

    async def _unlink(self, shard: _Shard, keys: list[bytes]) -> None:
        """Delete keys; a cluster node takes one key per command (they span slots)."""
        if not self.cluster:
            await shard.client.unlink(*keys)
            return
        async with shard.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.unlink(key)
            await pipe.execute()

    async def close(self) -> None:
        await super().close()
        blocked = list(self._blocked.values())
        for task in blocked:
            task.cancel()
        await asyncio.gather(*blocked, return_exceptions=True)
        for shard in self._shards:
            await shard.client.aclose()
