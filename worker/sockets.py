"""ASGI 3 WebSockets in the worker: one app instance per socket, alive for the socket's life
in the worker process that took its ``websocket.connect``.

The accept names an address in this process's inbox; the server sends the socket's later
``websocket.receive`` and ``websocket.disconnect`` messages there (socket affinity), in
order, and they become the instance's ``receive()`` events. ``socket_events`` is the pure
part: ASGI 3 send events in, ``websocket.send`` messages out.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from switchroom.layers import BaseLayer, LayerError, ReceiverGone

from .asgi import connection_scope

log = logging.getLogger("switchroom.worker")

CLOSE_SERVICE_RESTART = 1012
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_ABNORMAL = 1006
# After the grace, an instance told of its socket's 1012 close gets this long to return.
LAST_WORDS = 2.0


class ClientDisconnected(OSError):
    """Raised by ``send`` once the socket has closed (ASGI: an ``OSError`` subclass)."""


def websocket_scope(message: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ASGI 3 ``websocket`` scope for an ASGI 1.0 ``websocket.connect`` message."""
    scope = connection_scope("websocket", message, state, "ws")
    scope["subprotocols"] = list(message.get("subprotocols") or [])
    scope["extensions"] = {"websocket.http.response": {}}
    return scope


class SocketEvents:
    """The state of one socket's handshake and the ``websocket.send`` messages each ASGI
    send event becomes (raises RuntimeError for an event the protocol does not allow)."""

    def __init__(self, worker_address: str) -> None:
        self.worker_address = worker_address
        self.accepted = False
        self.closed = False
        self.denial: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The message for one send event; None when it only changes state."""
        kind = event.get("type")
        if self.closed:
            raise RuntimeError(f"{kind!r} sent after the socket was closed")
        if self.denial is not None:
            return self._denial(kind, event)
        if kind == "websocket.accept":
            if self.accepted:
                raise RuntimeError("websocket.accept sent twice")
            self.accepted = True
            reply = {"accept": True, "worker": self.worker_address}
            if event.get("subprotocol") is not None:
                reply["subprotocol"] = event["subprotocol"]
            headers = [[bytes(k), bytes(v)] for k, v in event.get("headers") or []]
            if headers:
                reply["headers"] = headers
            return reply
        if kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send before websocket.accept")
            text, data = event.get("text"), event.get("bytes")
            if (text is None) == (data is None):
                raise RuntimeError("websocket.send needs exactly one of 'text' and 'bytes'")
            return {"text": text} if text is not None else {"bytes": bytes(data)}
        if kind == "websocket.close":
            self.closed = True
            if not self.accepted:
                return {"accept": False}
            reply: dict[str, Any] = {"close": int(event.get("code") or 1000)}
            if event.get("reason"):
                reply["reason"] = str(event["reason"])
            return reply
        if kind == "websocket.http.response.start":
            if self.accepted:
                raise RuntimeError("a denial response after websocket.accept")
            self.denial = {"status": int(event["status"]), "headers": event.get("headers") or [], "body": b""}
            return None
        raise RuntimeError(f"unexpected ASGI event {kind!r} on a WebSocket")

    def _denial(self, kind: str | None, event: dict[str, Any]) -> dict[str, Any] | None:
        if kind != "websocket.http.response.body":
            raise RuntimeError(f"{kind!r} during a denial response")
        assert self.denial is not None
        self.denial["body"] += bytes(event.get("body") or b"")
        if event.get("more_body"):
            return None
        self.closed = True
        denial = self.denial
        status = denial["status"] if 400 <= denial["status"] <= 599 else 403
        return {
            "accept": False,
            "status": status,
            "headers": [[bytes(k), bytes(v)] for k, v in denial["headers"]],
            "body": denial["body"],
        }


class Socket:
    """One socket's app instance: its receive queue, its send, its task."""

    def __init__(self, owner: "Sockets", message: dict[str, Any]) -> None:
        self.owner = owner
        self.layer = owner.layer
        self.reply_channel: str = message["reply_channel"]
        self.path = message["path"]
        self.events: deque[dict[str, Any]] = deque([{"type": "websocket.connect"}])
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected: int | None = None
        self.address = self.layer.inbox.address("websocket.worker", self.deliver)
        self.state = SocketEvents(self.address)
        self.scope = websocket_scope(message, owner.state())
        self.task: asyncio.Task[None] | None = None

    # -- from the server --------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        """A ``websocket.receive`` or ``websocket.disconnect`` message for this socket."""
        if self.disconnected is not None:
            return
        if message.get("text") is not None:
            self._push({"type": "websocket.receive", "text": message["text"]})
        elif message.get("bytes") is not None:
            self._push({"type": "websocket.receive", "bytes": message["bytes"]})
        else:
            self._disconnect(int(message.get("code") or CLOSE_ABNORMAL))

    def _push(self, event: dict[str, Any]) -> None:
        if len(self.events) >= self.owner.max_pending:
            log.warning(
                "WebSocket %s: the app left %d messages unread; closing with 1013",
                self.path,
                len(self.events),
            )
            self.layer.stats.drop("full", 1, self.address)
            self.owner.spawn(self.close_for(CLOSE_TRY_AGAIN_LATER, "the application is not keeping up"))
            return
        self.events.append(event)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _disconnect(self, code: int) -> None:
        self.disconnected = code
        self.state.closed = True
        self.events.append({"type": "websocket.disconnect", "code": code})
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def close_for(self, code: int, reason: str) -> None:
        """Close the socket from this side and tell the app it is gone."""
        if self.disconnected is not None:
            return
        self._disconnect(code)
        try:
            await self.layer.send(self.reply_channel, {"close": code, "reason": reason})
        except LayerError as exc:
            log.info("could not close WebSocket %s: %s", self.path, exc)

    # -- the app's callables ----------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        while not self.events:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        event = self.events.popleft()
        if event["type"] == "websocket.disconnect":
            # Later calls see the disconnect again rather than wait forever.
            self.events.append(event)
        return event

    async def send(self, event: dict[str, Any]) -> None:
        if self.disconnected is not None:
            raise ClientDisconnected(f"the WebSocket {self.path} has closed ({self.disconnected})")
        reply = self.state.feed(event)
        if reply is None:
            return
        try:
            await self.layer.send(self.reply_channel, reply)
        except ReceiverGone:
            self._disconnect(CLOSE_ABNORMAL)
            raise ClientDisconnected(f"the server of WebSocket {self.path} is gone") from None

    # -- lifetime ---------------------------------------------------------------------

    async def run(self, app: Callable[..., Awaitable[None]]) -> None:
        """Run the app for the socket's life; answer for it when it returns or fails."""
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            await self._failed(exc)
            return
        finally:
            self.owner.ended(self)
        if self.disconnected is not None or self.state.closed:
            return
        if not self.state.accepted:
            log.warning("WebSocket %s refused (403): the ASGI app returned without accepting", self.path)
            await self._answer({"accept": False})
        else:
            await self._answer({"close": 1000})

    async def _failed(self, exc: Exception) -> None:
        if self.disconnected is not None:
            log.info("the ASGI app failed after WebSocket %s closed: %r", self.path, exc)
            return
        if not self.state.accepted:
            log.warning(
                "WebSocket %s refused (403): the ASGI app does not take this websocket scope: %s: %s",
                self.path,
                type(exc).__name__,
                exc,
            )
            await self._answer({"accept": False})
            return
        log.error("the ASGI app failed on WebSocket %s", self.path, exc_info=exc)
        await self._answer({"close": CLOSE_INTERNAL_ERROR})

    async def _answer(self, reply: dict[str, Any]) -> None:
        try:
            await self.layer.send(self.reply_channel, reply)
        except LayerError as exc:
            log.info("could not answer for WebSocket %s: %s", self.path, exc)


class Sockets:
    """The sockets this worker process hosts for its ASGI 3 app."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        layer: BaseLayer,
        state: Callable[[], dict[str, Any] | None],
        max_pending: int = 100,
    ) -> None:
        self.app = app
        self.layer = layer
        self.state = state
        self.max_pending = max_pending
        self.open: dict[str, Socket] = {}
        self.stopping = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, message: dict[str, Any]) -> None:
        """Start an app instance for a ``websocket.connect`` message (refuse it when stopping)."""
        if self.stopping:
            log.warning("WebSocket %s refused (403): this worker is stopping", message["path"])
            await self.layer.send(message["reply_channel"], {"accept": False})
            return
        sock = Socket(self, message)
        self.open[sock.reply_channel] = sock
        sock.task = self.spawn(sock.run(self.app))

    def disconnected(self, message: dict[str, Any]) -> bool:
        """A shared-channel ``websocket.disconnect`` (the client left during the handshake)
        for one of these sockets; True if it was one."""
        sock = self.open.get(message.get("reply_channel") or "")
        if sock is None:
            return False
        sock.deliver({"code": message.get("code") or CLOSE_ABNORMAL})
        return True

    def spawn(self, work: Awaitable[None]) -> "asyncio.Task[None]":
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def ended(self, sock: Socket) -> None:
        self.open.pop(sock.reply_channel, None)
        self.layer.inbox.forget(sock.address)

    async def stop(self, grace: float) -> None:
        """Refuse new sockets; after ``grace`` close the open ones with 1012 (service
        restart) and give their instances ``LAST_WORDS`` seconds to return."""
        self.stopping = True
        tasks = [s.task for s in self.open.values() if s.task is not None]
        if tasks:
            log.info("stopping: %d WebSockets open; closing them with 1012 after %s s", len(tasks), grace)
            await asyncio.wait(tasks, timeout=grace)
        left = list(self.open.values())
        if left:
            log.info("closing %d WebSockets with 1012 (service restart)", len(left))
            await asyncio.gather(*(s.close_for(CLOSE_SERVICE_RESTART, "worker restarting") for s in left))
            pending = [s.task for s in left if s.task is not None]
            _, still = await asyncio.wait(pending, timeout=LAST_WORDS) if pending else (set(), set())
            for task in still:
                task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=LAST_WORDS)
