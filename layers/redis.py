"""Redis channel layer: one server or several shards, on ``redis.asyncio`` with hiredis.

Every channel is a Redis list; all ``!`` channels of a process share one list, its inbox
queue. Sends that arrive while a round trip is in flight go together in the next one (one
script call per shard); a receive takes up to N entries per round trip and blocks with
``BLPOP`` only when every queue is empty. Groups are sorted sets (member -> join time)
kept on the shard of each member's queue, so a group send is one script call per shard
however large the group, and puts one entry per member process. Each process with an
inbox keeps a liveness key alive; the scripts treat a process whose key lapsed as dead.
"""

import asyncio
import functools
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, RedisError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchroom.shared.options import boolean

from . import presence_redis, scripts
from .base import BaseLayer, Message
from .batching import SendBatcher
from .cancelling import raise_if_cancelled
from .durable_redis import RedisDurable
from .errors import LayerError, LayerUnavailable
from .hashring import HashRing
from .names import join_addresses, queue_name
from .outage import Outage
from .rediscall import Lane, Script, bulk, command
from .stats import GroupReach

DEFAULT_PREFIX = "switchroom"
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_BLOCK_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 50

T = TypeVar("T")


# Failures that mean the node is unreachable, and those that mean it answered with an error.
_LOST = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
_FAILED = (*_LOST, RedisError)
_REDIRECTS = (AskError, ClusterDownError, TryAgainError)


def _layer_error(
    exc: BaseException,
    label: str,
    on_moved: Callable[[], None] | None = None,
    on_lost: Callable[[], None] | None = None,
    outage: Outage | None = None,
    quiet: bool = False,
) -> LayerUnavailable:
    """The LayerUnavailable naming the shard for a failed command.

    A lost connection calls ``on_lost`` (the shard then closes its idle pooled connections,
    which a Redis restart has broken too, so none of them fails a command later).

    A cluster node answering MOVED/ASK/CLUSTERDOWN/TRYAGAIN marks the topology stale, so the
    next call re-reads the slot map; the refused command was not run, so nothing is lost.

    ``outage`` hears (unless ``quiet``) of every failure, so an outage is logged once
    however many callers retry.
    """
    if isinstance(exc, _LOST):
        if on_lost is not None:
            on_lost()
        error = LayerUnavailable(f"redis at {label} is unavailable: {exc}")
    elif on_moved is not None and isinstance(exc, _REDIRECTS):
        on_moved()
        return LayerUnavailable(f"redis cluster topology changed at {label}: {exc}")
    else:
        error = LayerUnavailable(f"redis at {label} failed: {exc}")
    if outage is not None and not quiet:
        outage.failed(error)
    return error


@contextmanager
def _unavailable(
    label: str,
    on_moved: Callable[[], None] | None = None,
    on_lost: Callable[[], None] | None = None,
    outage: Outage | None = None,
    quiet: bool = False,
) -> Iterator[None]:
    """Turn the failures of the commands inside into LayerUnavailable (``_layer_error``);
    ``outage`` hears of every success too."""
    try:
        yield
    except _FAILED as exc:
        raise _layer_error(exc, label, on_moved, on_lost, outage, quiet) from exc
    if outage is not None:
        outage.answered()


def _glob_escape(text: str) -> str:
    """Escape Redis glob characters so SCAN MATCH treats ``text`` literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def shard_key(queue: str) -> str:
    """The name a queue is hashed by: a process queue (``process!``) by its process id."""
    return queue[:-1] if queue.endswith("!") else queue


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
            options[key] = boolean(value)
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


def _connect(url: str, socket_timeout: float, connect_timeout: float, max_connections: int) -> aioredis.Redis:
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
        # The shard's semaphore keeps commands in flight below this, so the pool never refuses.
        "max_connections": max_connections + 1,
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

_SEND = Script(scripts.SEND)
_POP = Script(scripts.POP)
# A queue entry as one RESP argument: its deadline, its target, a newline, its payload.
_ENTRY = b"$%d\r\n%b%b\n%b\r\n"


def _cluster_startup_nodes(url: str) -> list[tuple[str, int]]:
    """The ``host:port`` list of a ``redis+cluster://[:password@]h:p,h:p`` URL."""
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        nodes.append((name, int(port or 6379)))
    return nodes


class _Shard:
    """One Redis server (or Sentinel-managed master): its client, scripts, a label for
    errors, and a bound on the commands in flight to it (``max_connections``)."""

    def __init__(
        self,
        url: str,
        socket_timeout: float,
        connect_timeout: float,
        max_connections: int,
        on_moved: Callable[[], None] | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.url = url
        self.label = label(url)
        self.on_moved = on_moved
        self.outage = outage or Outage(f"redis at {self.label}")
        self.wait = socket_timeout
        self.max_connections = max_connections
        self.slots = asyncio.Semaphore(max_connections)
        self.client = _connect(url, socket_timeout, connect_timeout, max_connections)
        # Sends, pops and blocked reads: the layer's per-message commands, packed once.
        self.lane = Lane(self.client, socket_timeout)
        self.group_send = self.client.register_script(scripts.GROUP_SEND)
        self.group_members = self.client.register_script(scripts.GROUP_MEMBERS)
        self.heartbeat = self.client.register_script(scripts.HEARTBEAT)
        self.presence_write = self.client.register_script(presence_redis.WRITE)
        self.presence_sweep = self.client.register_script(presence_redis.SWEEP)
        self.presence_take = self.client.register_script(presence_redis.TAKE)
        self._dropping: asyncio.Task[None] | None = None

    async def _take_slot(self) -> None:
        """Wait for a free connection: at most ``socket_timeout`` seconds, then LayerUnavailable."""
        try:
            if self.slots.locked():
                await asyncio.wait_for(self.slots.acquire(), self.wait)
            else:
                # A free slot is taken at once: no timer and no task for wait_for.
                await self.slots.acquire()
        except TimeoutError:
            raise LayerUnavailable(
                f"no free connection to redis at {self.label} within {self.wait:.0f} s "
                f"({self.max_connections} commands in flight; raise max_connections)"
            ) from None

    @asynccontextmanager
    async def use(self, quiet: bool = False) -> AsyncIterator[None]:
        """Run a command on this shard: take a free connection and translate its errors
        (``quiet``: a failure is the caller's to report, not the start of an outage)."""
        await self._take_slot()
        try:
            with _unavailable(self.label, self.on_moved, self.drop_idle, self.outage, quiet):
                yield
        finally:
            self.slots.release()

    async def call(self, packed: bytes, script: Script | None = None) -> Any:
        """One packed command on the shard's lane, bounded and translated as ``use`` does,
        without the cost of its context managers (it is the path of every message)."""
        await self._take_slot()
        try:
            reply = await self.lane.call(packed, script)
        except _FAILED as exc:
            raise _layer_error(exc, self.label, self.on_moved, self.drop_idle, self.outage) from exc
        finally:
            self.slots.release()
        self.outage.answered()
        return reply

    def drop_idle(self) -> None:
        """Close the idle connections (in the background): they are likely broken too."""
        if self._dropping is None or self._dropping.done():
            self._dropping = asyncio.ensure_future(self._disconnect_idle())

    async def _disconnect_idle(self) -> None:
        await self.client.connection_pool.disconnect(inuse_connections=False)
        await self.lane.disconnect_idle()

    async def aclose(self) -> None:
        """Close the client and the lane's connections."""
        await self.lane.aclose()
        await self.client.aclose()


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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        local: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if max_connections < 2:
            raise ValueError("max_connections must be at least 2 (a blocked read holds one)")
        if isinstance(urls, str):
            urls = [urls]
        if block_timeout >= socket_timeout:
            raise ValueError("block_timeout must be shorter than socket_timeout")
        self.urls = list(urls)
        self.cluster = any(urlsplit(u).scheme.endswith("+cluster") for u in self.urls)
        if self.cluster and len(self.urls) > 1:
            raise ValueError("a Redis Cluster layer takes one redis+cluster:// URL listing its nodes")
        self.prefix = prefix + ":"
        self._prefix_bytes = self.prefix.encode()
        self._queue_prefix = self.prefix + "q:"
        self._group_prefix = self.prefix + "g:"
        self.block_timeout = block_timeout
        self._timeouts = (socket_timeout, connect_timeout, max_connections)
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
            self._shards = [_Shard(u, *self._timeouts, outage=self._outage(label(u))) for u in self.urls]
            self._ring = HashRing([s.label for s in self._shards])
        self._lua_patterns = [(scripts.glob_to_lua(p), c) for p, c in self.capacities.items()]
        self.local = local
        self._own_queue = self.client_id + "!"
        self._local_groups: dict[str, dict[str, float]] = {}
        self._batcher = SendBatcher(self._send_now)
        # What a blocked read popped after its caller left, for the next read of its queue
        # (and, in local mode, what this process sent itself).
        self._stash: dict[str, deque[tuple[float, str, Message]]] = {}
        self._blocked: dict[tuple[int, frozenset[bytes]], asyncio.Task[Any]] = {}
        self._arrival_waiters: list[asyncio.Future[None]] = []
        self._rotation = 0
        self.durable = RedisDurable(self, self.durable_settings)

    def _presence_store(self) -> presence_redis.RedisPresence:
        return presence_redis.RedisPresence(self, self.presence_interval)

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
            await shard.aclose()

    def _topology_changed(self) -> None:
        self._stale = True

    def _queue_key(self, queue: str) -> bytes:
        """The Redis key of a queue; the ``{tag}`` keeps a process's queues in one cluster slot."""
        return f"{self._queue_prefix}{{{shard_key(queue)}}}:{queue}".encode()

    def _is_local(self, queue: str) -> bool:
        """True when ``local`` is on and ``queue`` is this process's own inbox queue."""
        return self.local and queue == self._own_queue

    # -- send ------------------------------------------------------------------------

    async def _send_queues(self, items: Iterable[tuple[str, Message]]) -> list[LayerError | None]:
        """Sends made while a round trip is in flight go together in the next one."""
        return await self._batcher.send_many(list(items))

    async def _send_now(self, items: list[tuple[str, Message]]) -> list[LayerError | None]:
        await self._ready()
        results: list[LayerError | None] = []
        channels: list[str] = []
        # Per queue: the positions of its messages in ``items`` and their entries (in RESP).
        groups: dict[str, tuple[list[int], list[bytes]]] = {}
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
                results[index] = self._deliver_local(channel, payload, now)
                continue
            group = groups.get(queue)
            if group is None:
                group = groups[queue] = ([], [])
            group[0].append(index)
            name = channel.encode()
            group[1].append(_ENTRY % (14 + len(name) + len(payload), head, name, payload))
        if groups:
            by_shard: dict[int, list[str]] = {}
            for queue in groups:
                by_shard.setdefault(self._shard_of(queue), []).append(queue)
            fixed = bulk(b"%d" % int(now * 1000), b"%d" % int(self.expiry * 1000), self._prefix_bytes)
            shard_ids = list(by_shard)
            calls = [self._send_batch(i, self._send_command(by_shard[i], groups, fixed)) for i in shard_ids]
            replies = await _gather(calls)
            for shard_id, reply in zip(shard_ids, replies, strict=True):
                queues = by_shard[shard_id]
                if isinstance(reply, BaseException):
                    if not isinstance(reply, LayerError):
                        raise reply
                    for queue in queues:
                        for index in groups[queue][0]:
                            results[index] = reply
                    continue
                self.stats.drop("expired", reply[-1])
                for queue, pushed in zip(queues, reply, strict=False):
                    positions = groups[queue][0]
                    if pushed < 0:
                        for index in positions:
                            results[index] = self._gone(channels[index])
                    else:
                        for index in positions[pushed:]:
                            results[index] = self._full(channels[index])
        self._count_refusals(items, results)
        self.stats.sent(results)
        return results

    def _send_command(
        self, queues: list[str], groups: dict[str, tuple[list[int], list[bytes]]], fixed: bytes
    ) -> bytes:
        """The SEND script call for ``queues`` of one shard: per queue its key, capacity,
        process and entry count, then every entry."""
        per_queue = [
            bulk(
                b"%d" % self.capacity_for(queue),
                queue[:-1].encode() if queue.endswith("!") else b"",
                b"%d" % len(groups[queue][1]),
            )
            for queue in queues
        ]
        entries = [entry for queue in queues for entry in groups[queue][1]]
        keys = [self._queue_key(queue) for queue in queues]
        return _SEND.call(keys, [fixed, *per_queue, *entries], 3 + 3 * len(queues) + len(entries))

    async def _send_batch(self, shard_id: int, packed: bytes) -> list[int]:
        return await self._shard(shard_id).call(packed, _SEND)

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
        while True:
            raise_if_cancelled()
            arrival = loop.create_future()
            self._arrival_waiters.append(arrival)
            try:
                # What a blocked read brought is returned at once, without a second round
                # trip for what arrived behind it: the caller's next receive takes that.
                out = self._take_stash(queues, max_messages) or await self._pop_all(by_shard, max_messages)
                if out:
                    return out
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return []
                block = self.block_timeout if remaining is None else min(remaining, self.block_timeout)
                await self._block(by_shard, max(block, 0.01), arrival)
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
        entries = await self._shard(shard_id).call(_POP.call(keys, [bulk(b"%d" % count)], 1), _POP)
        return self._decode_all(entries)

    async def _block(
        self, by_shard: dict[int, list[bytes]], block: float, arrival: asyncio.Future[None]
    ) -> None:
        """Wait until a blocked read on these queues returns, something else is held for
        this process, or ``block`` seconds pass.

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
        await asyncio.wait([*tasks, arrival], timeout=block, return_when=asyncio.FIRST_COMPLETED)

    async def _blpop(self, shard_id: int, keys: list[bytes], block: float) -> list[tuple[str, Message]]:
        reply = await self._shard(shard_id).call(command(b"BLPOP", *keys, b"%.3f" % block))
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

    def _deliver_local(self, target: str, payload: bytes, now: float) -> LayerError | None:
        """Put a message for this process's own inbox straight into its stash (local mode)."""
        box = self._stash.get(self._own_queue)
        if box is None:
            box = self._stash[self._own_queue] = deque()
        if len(box) >= self.process_capacity:
            self._shed(box, now)
            if len(box) >= self.process_capacity:
                return self._full(target.partition(",")[0])
        box.append((now + self.expiry, target, self.unpack(payload)))
        self._wake_arrivals()
        return None

    def _shed(self, box: deque[tuple[float, str, Message]], now: float) -> None:
        expired = 0
        while box and box[0][0] <= now:
            box.popleft()
            expired += 1
        self.stats.drop("expired", expired)

    def _take_stash(self, queues: list[str], max_messages: int) -> list[tuple[str, Message]]:
        out: list[tuple[str, Message]] = []
        if not self._stash:
            return out
        now = time.time()
        expired = 0
        for queue in queues:
            box = self._stash.get(queue)
            while box and len(out) < max_messages:
                deadline, channel, message = box.popleft()
                if deadline > now:
                    out.append((channel, message))
                else:
                    expired += 1
            if box is not None and not box:
                del self._stash[queue]
        self.stats.drop("expired", expired)
        return out

    def _decode_all(self, entries: list[bytes]) -> list[tuple[str, Message]]:
        now_ms = int(time.time() * 1000)
        out = []
        for entry in entries:
            if int(entry[:13]) <= now_ms:
                self.stats.drop("expired", 1, "a queue read")
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
        async with shard.use():
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
        async with shard.use():
            async with shard.client.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {channel: int(time.time() * 1000)})
                pipe.pexpire(key, ttl)
                await pipe.execute()
        if tag is not None:
            index = self._shard(key_slot(group.encode()))
            async with index.use():
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
        async with shard.use():
            await shard.client.zrem(key, channel)

    def _group_targets(self, group: str, tags: list[str] | None) -> list[tuple["_Shard", bytes]]:
        """Every (client, member set) of a group: one per shard, or one per tag in a cluster."""
        if tags is None:
            return [(shard, self._group_key(group)) for shard in self._shards]
        return [(self._shard(key_slot(tag.encode())), self._group_key(group, tag)) for tag in tags]

    async def group_channels(self, group: str) -> list[str]:
        self._check_group(group)
        await self._ready()
        argv = [int((time.time() - self.group_expiry) * 1000), self.prefix]
        tags = await self._group_tags(group) if self.cluster else None

        async def members(shard: _Shard, key: bytes) -> list[bytes]:
            async with shard.use():
                return await shard.group_members(keys=[key], args=argv)

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
            self.prefix,
            b"%013d" % int((now + self.expiry) * 1000),
            payload,
            self.capacity,
            self.process_capacity,
            self.client_id if self.local else "",
        ]
        for pattern, cap in self._lua_patterns:
            argv += [pattern, cap]
        tags = await self._group_tags(group) if self.cluster else None

        async def send(shard: _Shard, key: bytes) -> GroupReach:
            async with shard.use():
                reached, full, lapsed, dead, shed = await shard.group_send(keys=[key], args=argv)
            self.stats.drop("expired", shed)
            return GroupReach(reached=reached, full=full, dead=dead, expired=lapsed)

        reach = self._group_send_local(group, payload, now)
        for part in await asyncio.gather(*(send(s, k) for s, k in self._group_targets(group, tags))):
            reach += part
        self.stats.reach(group, reach)
        return reach

    def _group_send_local(self, group: str, payload: bytes, now: float) -> GroupReach:
        """Local mode: one entry for this process's own members, without Redis (the
        script leaves them to the sender)."""
        members = self._local_groups.get(group)
        if not members:
            return GroupReach()
        cutoff = now - self.group_expiry
        for channel in [c for c, joined in members.items() if joined <= cutoff]:
            del members[channel]
        if not members:
            return GroupReach()
        if self._deliver_local(join_addresses(list(members)), payload, now) is None:
            return GroupReach(reached=len(members))
        return GroupReach(full=len(members))

    async def _announce(self, process: str, alive: bool) -> bool:
        await self._ready()
        shard = self._shard(self._shard_of(process + "!"))
        keys = [f"{self.prefix}live:{{{process}}}", f"{self.prefix}seen:{{{process}}}"]
        argv = [int(self.liveness_timeout * 1000), int(self.group_expiry * 1000), "1" if alive else "0"]
        async with shard.use():
            return bool(await shard.heartbeat(keys=keys, args=argv))

    async def liveness(self, processes: Sequence[str]) -> dict[str, float | None]:
        await self._ready()
        by_shard: dict[int, list[str]] = {}
        for process in dict.fromkeys(processes):
            by_shard.setdefault(self._shard_of(process + "!"), []).append(process)

        async def ttls(route: int, names: list[str]) -> list[int]:
            shard = self._shard(route)
            async with shard.use():
                pipe = shard.client.pipeline(transaction=False)
                for name in names:
                    pipe.pttl(f"{self.prefix}live:{{{name}}}")
                return await pipe.execute()

        out: dict[str, float | None] = {}
        replies = await asyncio.gather(*(ttls(r, names) for r, names in by_shard.items()))
        for names, reply in zip(by_shard.values(), replies, strict=True):
            for name, ttl in zip(names, reply, strict=True):
                left = int(ttl) / 1000
                out[name] = self.liveness_timeout - left if left > 0 else None
        return out

    # -- health ----------------------------------------------------------------------

    async def ping(self) -> None:
        await self._ready()

        async def one(shard: _Shard) -> None:
            async with shard.use(quiet=True):
                await shard.client.ping()
            shard.outage.answered()

        await asyncio.gather(*(one(shard) for shard in self._shards))

    async def _queue_lengths(self, channels: Sequence[str]) -> dict[str, int]:
        await self._ready()
        queues = {channel: queue_name(channel) for channel in channels}
        by_shard: dict[int, list[str]] = {}
        for queue in dict.fromkeys(queues.values()):
            by_shard.setdefault(self._shard_of(queue), []).append(queue)

        async def lengths(route: int, names: list[str]) -> dict[str, int]:
            shard = self._shard(route)
            async with shard.use():
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
            async with shard.use():
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
        self.durable.clear()

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
            await shard.aclose()
