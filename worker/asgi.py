"""The ASGI 3 bridge: one ``http.request`` message becomes one call of an ASGI 3 app,
and the app's ``http.response.*`` events become ASGI 1.0 response messages; plus lifespan."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from switchroom.layers import BaseLayer, streams

from .context import http_response

log = logging.getLogger("switchroom.worker")

ASGI = {"version": "3.0", "spec_version": "2.3"}


def connection_scope(
    kind: str, message: dict[str, Any], state: dict[str, Any] | None, default_scheme: str
) -> dict[str, Any]:
    """The fields an ASGI 3 ``http`` and ``websocket`` scope share, from the ASGI 1.0
    ``http.request`` or ``websocket.connect`` message that opens it."""
    path = message["path"]
    scope = {
        "type": kind,
        "asgi": dict(ASGI),
        "http_version": message.get("http_version") or "1.1",
        "scheme": message.get("scheme") or default_scheme,
        "path": path,
        "raw_path": message.get("raw_path") or quote(path, safe="/:@!$&'()*+,;=-._~").encode("ascii"),
        "query_string": message.get("query_string") or b"",
        "root_path": message.get("root_path") or "",
        "headers": [(bytes(k), bytes(v)) for k, v in message.get("headers") or []],
        "client": tuple(message["client"]) if message.get("client") else None,
        "server": tuple(message["server"]) if message.get("server") else None,
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


def http_scope(message: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ASGI 3 HTTP scope for an ASGI 1.0 ``http.request`` message."""
    scope = connection_scope("http", message, state, "http")
    scope["method"] = message["method"].upper()
    return scope


class ResponseWriter:
    """Turns ``http.response.start`` / ``http.response.body`` events into response messages."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.start: dict[str, Any] | None = None
        self.sent_head = False
        self.finished = False

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages to send for one ASGI send event (raises on an out-of-order event)."""
        kind = event.get("type")
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("http.response.start sent twice")
            self.start = event
            return []
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI event {kind!r}")
        if self.start is None:
            raise RuntimeError("http.response.body before http.response.start")
        if self.finished:
            raise RuntimeError("http.response.body after the response finished")
        more = bool(event.get("more_body", False))
        self.finished = not more
        pieces = http_response(self.start.get("status", 200), event.get("body", b""), [], self.chunk_size)
        pieces[-1]["more_content"] = more
        if not self.sent_head:
            self.sent_head = True
            pieces[0]["headers"] = [[bytes(k), bytes(v)] for k, v in self.start.get("headers", [])]
            return pieces
        first = {"content": pieces[0]["content"], "more_content": pieces[0]["more_content"]}
        return [first, *pieces[1:]]


class BodyReader:
    """The ASGI ``receive`` callable: the request body (inline and chunked), then disconnect."""

    def __init__(
        self, layer: BaseLayer, message: dict[str, Any], disconnected: asyncio.Event, timeout: float
    ):
        self.body: bytes = message.get("body") or b""
        self.channel: str | None = message.get("body_channel")
        self.chunks = streams.read(layer, self.channel, timeout) if self.channel else None
        self.disconnected = disconnected
        self.sent_first = False
        self.done = False

    async def __call__(self) -> dict[str, Any]:
        if not self.sent_first:
            self.sent_first = True
            self.done = self.channel is None
            return {"type": "http.request", "body": self.body, "more_body": not self.done}
        if not self.done:
            return await self._chunk()
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def _chunk(self) -> dict[str, Any]:
        chunk = await anext(self.chunks)
        if chunk.get("closed"):
            self.done = True
            self.disconnected.set()
            return {"type": "http.disconnect"}
        self.done = not chunk.get("more_content", False)
        return {"type": "http.request", "body": chunk.get("content") or b"", "more_body": not self.done}


async def call_http(
    app: Callable[..., Awaitable[None]],
    layer: BaseLayer,
    message: dict[str, Any],
    send_response: Callable[[list[dict[str, Any]]], Awaitable[None]],
    disconnected: asyncio.Event,
    state: dict[str, Any] | None,
    body_timeout: float,
) -> None:
    """Run the app once for ``message``; finishes a response the app left open."""
    writer = ResponseWriter(layer.chunk_size)

    async def send(event: dict[str, Any]) -> None:
        if disconnected.is_set():
            return
        messages = writer.feed(event)
        if messages:
            await send_response(messages)

    receive = BodyReader(layer, message, disconnected, body_timeout)
    await app(http_scope(message, state), receive, send)
    if writer.sent_head and not writer.finished:
        await send_response([{"content": b"", "more_content": False}])
    elif writer.start is None and not disconnected.is_set():
        raise RuntimeError("the ASGI app returned without sending a response")
    elif not writer.sent_head and not disconnected.is_set():
        await send({"type": "http.response.body", "body": b""})


class Lifespan:
    """Runs an app's lifespan protocol; apps that do not support it are left alone."""

    def __init__(self, app: Callable[..., Awaitable[None]], timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self.supported = False
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI), "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except Exception as exc:
            await self._outbox.put({"type": "lifespan.unsupported", "message": repr(exc)})
        else:
            await self._outbox.put({"type": "lifespan.unsupported", "message": "the app returned"})

    async def startup(self) -> None:
        """Send ``lifespan.startup``; raises if the app reports failure."""
        self._task = asyncio.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        event = await asyncio.wait_for(self._outbox.get(), self.timeout)
        if event["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"ASGI lifespan startup failed: {event.get('message', '')}")
        self.supported = event["type"] == "lifespan.startup.complete"
        if not self.supported:
            log.info("the ASGI app does not support lifespan (%s)", event.get("message", ""))

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app to finish it."""
        if not self.supported or self._task is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            event = await asyncio.wait_for(self._outbox.get(), self.timeout)
        except TimeoutError:
            log.warning("the ASGI app did not finish lifespan shutdown within %s s", self.timeout)
            self._task.cancel()
            return
        if event["type"] == "lifespan.shutdown.failed":
            log.error("ASGI lifespan shutdown failed: %s", event.get("message", ""))
        await asyncio.wait([self._task], timeout=self.timeout)
