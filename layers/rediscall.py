"""The Redis layer's hot-path commands, packed once and sent on connections of its own.

Every send batch and every read is one script call (or one ``BLPOP``). redis-py's generic
command path (keyword options, a retry wrapper, pool bookkeeping and metrics, an encoder
call per argument, response callbacks) costs more than the layer's own work per call,
and the layer uses none of it: it never retries, and its arguments are already bytes. A
``Lane`` keeps a few connections made by the client's own pool (so TLS, passwords, Unix
sockets and Sentinel's master lookup are the client's), writes a command the caller
packed in one piece, and reads the reply with the connection's parser (hiredis).

A call that fails or is cancelled mid-way closes its connection (which reconnects on its
next use), so no connection is ever reused with an unread reply behind it.

It reaches into redis-py's connections (``_writer``, ``_parser``, ``next_health_check``)
for the versions ``SUPPORTED`` says (and setup.cfg admits); ``tests/test_compat.py`` checks
that they are there.
"""

import asyncio
import hashlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# The redis-py releases whose connection internals this module uses: [first, past the last).
SUPPORTED = ((5, 0), (9,))


def _from_replica(error: ResponseError) -> bool:
    """True for a replica's refusal to write, also as a script's error (Redis < 7 wraps
    it: ``Error running script ... -READONLY ...``)."""
    return isinstance(error, ReadOnlyError) or "-READONLY " in str(error)


def bulk(*args: bytes) -> bytes:
    """``args`` as RESP bulk strings, one after the other."""
    return b"".join(b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args)


def command(*args: bytes) -> bytes:
    """A whole RESP command: its argument count, then each argument."""
    return b"*%d\r\n%b" % (len(args), bulk(*args))


class Script:
    """A Lua script called by its SHA (pre-encoded); ``load`` is the command that loads it."""

    def __init__(self, body: str) -> None:
        self.load = command(b"SCRIPT", b"LOAD", body.encode())
        self.sha = hashlib.sha1(body.encode()).hexdigest().encode()

    def call(self, keys: list[bytes], argv: list[bytes], argc: int) -> bytes:
        """EVALSHA of this script with ``keys``, then ``argv``: RESP pieces holding ``argc``
        arguments (so a caller formats each message's arguments in one go)."""
        head = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n%b" % (
            3 + len(keys) + argc,
            self.sha,
            bulk(b"%d" % len(keys)),
        )
        return b"".join((head, bulk(*keys), *argv))


class Lane:
    """Connections to one Redis node for the layer's own packed commands.

    At most as many connections as calls in flight at once (the shard bounds those); idle
    ones wait in a stack, most recently used first.
    """

    def __init__(self, client: aioredis.Redis, timeout: float) -> None:
        self.pool = client.connection_pool
        self.timeout = timeout
        self.idle: list[AbstractConnection] = []
        self.closed = False

    async def call(self, packed: bytes, script: Script | None = None) -> Any:
        """Send ``packed`` and return its reply; an error reply is raised.

        A script Redis does not know (after a restart, or on a new node) is loaded and the
        call made again, once. The reply must come within ``timeout`` seconds.
        """
        conn = self.idle.pop() if self.idle else self.pool.make_connection()
        loop = asyncio.get_running_loop()
        try:
            if not conn.is_connected:
                await conn.connect()
            elif conn.health_check_interval and loop.time() > conn.next_health_check:
                await self._check(conn)
            reply = await self._round_trip(conn, packed)
            if script is not None and isinstance(reply, NoScriptError):
                await self._round_trip(conn, script.load)
                reply = await self._round_trip(conn, packed)
        except BaseException:
            await conn.disconnect(nowait=True)
            await self._release(conn)
            raise
        if conn.health_check_interval:
            conn.next_health_check = loop.time() + conn.health_check_interval
        if isinstance(reply, ResponseError) and _from_replica(reply):
            # A master demoted to replica (a Sentinel failover): connect afresh, which asks
            # the sentinels for the new master.
            await conn.disconnect(nowait=True)
            await self._release(conn)
            raise RedisConnectionError(f"redis answered as a replica: {reply}")
        if self.closed:
            await conn.disconnect(nowait=True)
        else:
            self.idle.append(conn)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    @staticmethod
    async def _check(conn: AbstractConnection) -> None:
        """A connection idle for a while is pinged first; one that a Redis restart broke is
        replaced by a new one (nothing was sent on it yet), so the call still goes out."""
        try:
            await conn.check_health()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await conn.disconnect(nowait=True)
            await conn.connect()

    async def _round_trip(self, conn: AbstractConnection, packed: bytes) -> Any:
        """Write one command and read its reply (an error reply is returned, not raised)."""
        writer = conn._writer
        if writer is None:
            raise RedisConnectionError("connection closed")
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(packed)
                await writer.drain()
                return await conn._parser.read_response()
        except TimeoutError:
            raise RedisTimeoutError(f"no reply within {self.timeout:g} s") from None
        except OSError as exc:
            raise RedisConnectionError(f"connection lost: {exc}") from exc

    async def _release(self, conn: AbstractConnection) -> None:
        """Keep ``conn`` for the next call, or close it if the lane has closed meanwhile."""
        if self.closed:
            await conn.disconnect(nowait=True)
        else:
            self.idle.append(conn)

    async def disconnect_idle(self) -> None:
        """Close the idle connections (each reconnects on its next use)."""
        for conn in list(self.idle):
            await conn.disconnect(nowait=True)

    async def aclose(self) -> None:
        """Close every idle connection; a busy one closes when its call ends."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.disconnect()
