"""The Twisted driver for plain HTTP: one ``http.request`` message per request, the reply
written back from the reply channel, and ``http.disconnect`` when the client leaves.

``HttpConnection`` is one connection's state and its I/O: bytes go through the pure
``wire.RequestReader`` (llhttp), the events that come out drive the layer and the timers,
and answers are encoded by ``wire``. It reaches the rest of the server only through the
``HttpServices`` it is handed. Requests asking for a WebSocket upgrade are handed,
connection and all, to Autobahn (``websocket.py``); everything message-shaped is decided
in ``translate.py``.
"""

import asyncio
import functools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import interfaces
from twisted.internet.protocol import Factory, Protocol

from switchroom.layers import BaseLayer, ChannelFull, LayerError, MessageTooLarge, streams
from switchroom.layers.inbox import Inbox
from switchroom.shared import metrics
from switchroom.shared.messages import HTTP_DISCONNECT, HTTP_REQUEST, HTTP_REQUEST_BODY, HTTP_RESPONSE

from . import translate, twisted_compat, wire
from .deadlines import Deadlines, Timeout
from .settings import Settings

if TYPE_CHECKING:
    from .websocket import SocketFactory

log = logging.getLogger("switchroom.http")
access_log = logging.getLogger("switchroom.http.access")

# Seconds a closing connection may take to let our last bytes out (a rejected request keeps
# reading and discarding meanwhile, a closed socket flushes its close frame) before it is dropped.
LINGER = 2.0
# Requests read ahead of the one being answered (pipelining) before reading pauses.
PIPELINE_DEPTH = 8


def abort_later(transport: Any) -> asyncio.TimerHandle:
    """Abort ``transport`` in ``LINGER`` seconds if it has not closed by then."""
    return asyncio.get_running_loop().call_later(LINGER, transport.abortConnection)


def linger_close(transport: Any) -> asyncio.TimerHandle | None:
    """Close our side only and keep discarding what the peer still sends for ``LINGER``
    seconds: closing outright would reset the connection and could destroy our last bytes
    in transit. A transport that cannot half-close is closed once its buffer is out."""
    half_close = getattr(transport, "loseWriteConnection", None)
    if half_close is None:
        transport.loseConnection()
        return None
    half_close()
    return abort_later(transport)


@dataclass
class HttpServices:
    """What a connection needs from its server: the settings, the layer and the process
    inbox replies come through, the shared timeout buckets, the registries the server's
    metrics and shutdown read, and the factory of WebSocket connections."""

    settings: Settings
    layer: BaseLayer
    inbox: Inbox
    deadlines: Deadlines
    # Connections with a request waiting for its answer (at most one each).
    in_flight: set["HttpConnection"]
    # Open HTTP connections (a connection handed to a WebSocket leaves).
    connections: set["HttpConnection"]
    sockets: "SocketFactory"


class Exchange:
    """One request on a connection: what was read of it, and how far its answer got."""

    __slots__ = (
        "head",
        "body",
        "complete",
        "refusal",
        "problem",
        "upgrade",
        "websocket",
        "reply_channel",
        "path_text",
        "query",
        "raw_path",
        "started_at",
        "response_started",
        "chunked",
        "has_body",
        "status",
        "sent",
        "finished",
    )

    def __init__(self) -> None:
        self.head: wire.Head | None = None
        self.body: list[bytes] = []
        self.complete = False
        # Answer this and close (the input cannot be read on).
        self.refusal: wire.Refused | None = None
        # Answer this instead of asking a worker (the connection stays usable).
        self.problem: translate.BadRequest | None = None
        # What followed an upgrade request's head (the WebSocket's first bytes).
        self.upgrade: bytes | None = None
        # Whether the request asks for a WebSocket upgrade.
        self.websocket = False
        self.reply_channel: str | None = None
        self.path_text = ""
        self.query = b""
        self.raw_path: bytes | None = None
        self.started_at = time.monotonic()
        self.response_started = False
        self.chunked = False
        self.has_body = True
        self.status = 0
        self.sent = 0
        self.finished = False


class HttpConnection(Protocol):
    """One HTTP/1.1 connection: its requests are answered one at a time, in order."""

    def __init__(self, services: HttpServices) -> None:
        self.services = services
        settings = services.settings
        self.reader = wire.RequestReader(
            settings.max_header_count, settings.max_header_bytes, settings.max_body_size
        )
        # Requests in order: the first is answered (once complete), the others wait.
        self.line: deque[Exchange] = deque()
        # The one timeout the connection's state calls for: before its first request, while
        # the first request of the line is read, while its answer is awaited, or while idle.
        self.timeout = Timeout(services.deadlines)
        self.client: list[Any] | None = None
        self.server: list[Any] | None = None
        self.scheme = "http"
        self.paused = False
        self.gone = False
        self.closing = False

    # -- connection ------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Note the addresses once, and drop the connection if no request starts in time."""
        transport = self.transport
        peer, host = transport.getPeer(), transport.getHost()
        self.client = translate.peer_address(getattr(peer, "host", None), getattr(peer, "port", None))
        self.server = translate.peer_address(getattr(host, "host", None), getattr(host, "port", None))
        if interfaces.ISSLTransport(transport, None) is not None:
            self.scheme = "https"
        self.services.connections.add(self)
        self.timeout.set(self.services.settings.read_timeout, self.never_started)

    def never_started(self) -> None:
        """No request began within ``read_timeout`` of connecting: drop the connection."""
        if self.transport is not None:
            self.transport.abortConnection()

    def idle_timed_out(self) -> None:
        """A keep-alive connection stayed idle for ``keepalive_timeout``: close it."""
        if self.transport is not None and not self.line:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        last = self.line[-1] if self.line else None
        if last is not None and last.upgrade is not None:
            last.upgrade += data
            return
        line = self.line
        for event in self.reader.feed(data):
            self.on_event(event)
            if self.closing:
                return
        if line and not line[0].complete and not self.timeout.active():
            # The first request of the line began in these bytes and is not all in: its
            # read timeout starts now (a request that arrives whole never arms one).
            self.timeout.set(self.services.settings.read_timeout, self.read_timed_out)

    def on_event(self, event: wire.Event) -> None:
        """Carry out one event of the reader."""
        line = self.line
        kind = type(event)
        if kind is wire.Begin:
            line.append(Exchange())
            if len(line) == 1:
                self.timeout.clear()
            elif len(line) > PIPELINE_DEPTH and not self.paused:
                self.paused = True
                self.transport.pauseProducing()
        elif kind is wire.Head:
            self.on_head(line[-1], event)
        elif kind is wire.End:
            exchange = line[-1]
            exchange.complete = True
            if exchange is line[0]:
                self.serve()
        elif kind is wire.Body:
            line[-1].body.append(event.data)
        elif kind is wire.Upgrade:
            line[-1].upgrade = event.rest
        elif kind is wire.Refused:
            if not line or line[-1].complete:
                line.append(Exchange())
            line[-1].refusal = event
            if len(line) == 1:
                self.serve()

    def on_head(self, exchange: Exchange, head: wire.Head) -> None:
        """Check a request's head; what is wrong with it is answered once its turn comes."""
        exchange.head = head
        settings = self.services.settings
        try:
            translate.check_headers(head.headers, settings.max_header_count, settings.max_header_bytes)
            if settings.allowed_hosts and not translate.host_allowed(
                translate.header(head.headers, b"host"), settings.allowed_hosts
            ):
                raise translate.BadRequest(400, "host not allowed")
            exchange.websocket = is_websocket(head.headers)
            if not exchange.websocket:
                exchange.path_text, exchange.query, exchange.raw_path = translate.target_parts(head.target)
        except translate.BadRequest as exc:
            exchange.problem = exc
        if head.expect_continue and exchange is self.line[0] and exchange.problem is None:
            self.transport.write(wire.CONTINUE)

    def read_timed_out(self) -> None:
        """The client is sending its request too slowly (or not at all): 408 and close."""
        if self.line and not self.line[0].complete:
            self.reader.done = True
            self.line[0].refusal = wire.Refused(408, "the request did not arrive in time")
            self.serve()

    # -- serving ---------------------------------------------------------------------

    def serve(self) -> None:
        """Start on the first request of the line, if all of it is in."""
        exchange = self.line[0]
        if exchange.refusal is not None:
            self.refuse(exchange, exchange.refusal)
            return
        if not exchange.complete:
            if exchange.head is not None and exchange.head.expect_continue and exchange.problem is None:
                self.transport.write(wire.CONTINUE)
            self.timeout.set(self.services.settings.read_timeout, self.read_timed_out)
            return
        head = exchange.head
        if exchange.problem is not None:
            self.answer(exchange.problem.status, exchange.problem.reason)
            return
        client, scheme = self.client_and_scheme(head.headers)
        if exchange.websocket:
            self.hand_to_websocket(exchange, client, scheme)
            return
        services = self.services
        exchange.reply_channel = services.inbox.address(HTTP_RESPONSE, self.on_reply)
        services.in_flight.add(self)
        asyncio.get_running_loop().create_task(self.send_request(exchange, client, scheme))
        self.arm_reply_timer()

    def client_and_scheme(self, headers: translate.Headers) -> tuple[list[Any] | None, str]:
        client = None if self.client is None else [*self.client]
        if self.services.settings.proxy_headers:
            return translate.behind_proxy(headers, client, self.scheme)
        return client, self.scheme

    def hand_to_websocket(self, exchange: Exchange, client: list[Any] | None, scheme: str) -> None:
        """Give the connection to Autobahn, with what it needs to build ``websocket.connect``."""
        head = exchange.head
        self.timeout.cancel()
        self.services.connections.discard(self)
        transport, self.transport = self.transport, None
        self.closing = True
        sock = self.services.sockets.buildProtocol(transport.getPeer())
        sock.info = {
            "target": head.target,
            "headers": head.headers,
            "client": client,
            "server": None if self.server is None else [*self.server],
            "scheme": "wss" if scheme == "https" else "ws",
        }
        twisted_compat.take_over(transport, sock)
        if self.paused:
            transport.resumeProducing()
        sock.makeConnection(transport)
        raw = [b"%s %s HTTP/%s\r\n" % (head.method, head.target, head.version.encode())]
        raw.extend(b"%s: %s\r\n" % (name, value) for name, value in head.headers)
        raw.append(b"\r\n")
        sock.dataReceived(b"".join(raw) + (exchange.upgrade or b""))

    async def send_request(self, exchange: Exchange, client: list[Any] | None, scheme: str) -> None:
        """Put the request (and any further body chunks) on the layer; 503 if it is full."""
        services = self.services
        layer = services.layer
        head = exchange.head
        body = exchange.body[0] if len(exchange.body) == 1 else b"".join(exchange.body)
        exchange.body = []
        parts = streams.pieces(body, layer.chunk_size)
        body_channel = await layer.new_channel(HTTP_REQUEST_BODY + "?") if len(parts) > 1 else None
        try:
            message = translate.request_message(
                reply_channel=exchange.reply_channel,
                method=head.method,
                target=head.target,
                parts=(exchange.path_text, exchange.query, exchange.raw_path),
                http_version=head.version,
                headers=head.headers,
                scheme=scheme,
                client=client,
                server=None if self.server is None else [*self.server],
                root_path=services.settings.root_path,
                body=parts[0],
                body_channel=body_channel,
            )
            await layer.send(HTTP_REQUEST, message)
            if body_channel is not None:
                # The worker reads the rest as it comes; the writer waits while it catches up.
                await streams.write(
                    layer,
                    body_channel,
                    parts[1:],
                    services.settings.request_timeout,
                    give_up=lambda: exchange.finished or self.gone,
                    closed=False,
                )
        except ChannelFull:
            self.unavailable("the http.request channel is full", cause="full", exchange=exchange)
        except MessageTooLarge:
            if self.line and self.line[0] is exchange and not exchange.response_started:
                self.answer(431, "request headers too large for the layer")
        except LayerError as exc:
            self.unavailable("the channel layer failed", detail=str(exc), cause="layer", exchange=exchange)

    # -- answering -------------------------------------------------------------------

    def arm_reply_timer(self) -> None:
        """Wait ``request_timeout`` for the worker's next reply message."""
        self.timeout.set(self.services.settings.request_timeout, self.reply_timed_out)

    def reply_timed_out(self) -> None:
        if self.gone or not self.line:
            return
        exchange = self.line[0]
        if exchange.response_started:
            log.warning(
                "%s %s: the response stalled; closing the connection",
                self.method(exchange),
                exchange.path_text,
            )
            self.done(exchange)
            self.transport.abortConnection()
        else:
            self.unavailable("no worker answered in time", cause="timeout")

    def on_reply(self, message: dict[str, Any]) -> None:
        """Write one reply message from the worker."""
        if self.gone or not self.line or self.line[0].reply_channel is None:
            return
        exchange = self.line[0]
        try:
            part = translate.parse_response(message, exchange.response_started)
        except translate.BadReply as exc:
            log.error("bad reply to %s %s: %s", self.method(exchange), exchange.path_text, exc)
            if exchange.response_started:
                self.done(exchange)
                self.transport.abortConnection()
            else:
                self.answer(502, "the application sent an invalid response")
            return
        if isinstance(part, translate.ResponseStart):
            self.start_response(exchange, part.status, part.headers, part.content, part.more)
        else:
            data = self.body_bytes(exchange, part.content, part.more)
            if data:
                self.transport.write(data)
        if part.more:
            self.arm_reply_timer()
        else:
            self.finish()

    def start_response(
        self, exchange: Exchange, status: int, headers: list[tuple[bytes, bytes]], content: bytes, more: bool
    ) -> None:
        """Write the status line and headers, with the first part of the body."""
        head = exchange.head
        keep_alive = head is not None and head.keep_alive
        data, exchange.chunked, exchange.has_body = wire.response_head(
            head.version if head is not None else "1.1",
            status,
            headers,
            head=head is not None and head.method == b"HEAD",
            keep_alive=keep_alive,
        )
        exchange.response_started = True
        exchange.status = status
        self.transport.write(data + self.body_bytes(exchange, content, more))

    @staticmethod
    def body_bytes(exchange: Exchange, content: bytes, more: bool) -> bytes:
        """A part of the response body as it goes on the wire (chunked or not, or nothing)."""
        if not exchange.has_body:
            return b""
        exchange.sent += len(content)
        if not exchange.chunked:
            return content
        if more:
            return wire.chunk(content) if content else b""
        return wire.chunk(content) + wire.LAST_CHUNK if content else wire.LAST_CHUNK

    def unavailable(
        self, why: str, detail: str = "", cause: str = "layer", exchange: Exchange | None = None
    ) -> None:
        """503 with Retry-After: the layer or the workers cannot take this request now.

        ``detail`` (such as which Redis failed, and how) goes to the log only: clients
        learn nothing about the servers behind this one. ``cause`` labels the metric.
        ``exchange`` is the request meant, when the answer may come after it ended.
        """
        if self.gone or not self.line:
            return
        current = self.line[0]
        if (exchange is not None and exchange is not current) or current.response_started:
            return
        metrics.HTTP_UNAVAILABLE.labels(cause).inc()
        logged = f"{why}: {detail}" if detail else why
        log.warning("503 %s %s: %s", self.method(current), current.path_text, logged)
        retry = (b"retry-after", str(self.services.settings.retry_after).encode())
        self.answer(503, "Service Unavailable: " + why, retry)

    def answer(self, status: int, text: str, *extra: tuple[bytes, bytes]) -> None:
        """A short plain-text answer from the server itself to the first request."""
        exchange = self.line[0]
        self.done(exchange)
        body = text.encode("utf-8") + b"\n"
        headers = [
            *extra,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        self.start_response(exchange, status, headers, body, False)
        self.finish()

    def refuse(self, exchange: Exchange, refusal: wire.Refused) -> None:
        """Answer input that cannot be read on, and close the connection."""
        self.timeout.clear()
        self.closing = True
        self.reader.done = True
        transport = self.transport
        if transport is None or self.gone:
            return
        body = refusal.reason.encode() + b"\n"
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (refusal.status, wire.reason_phrase(refusal.status), len(body), body)
        )
        if self.paused:
            transport.resumeProducing()
        linger_close(transport)
        metrics.HTTP_REQUESTS.labels(str(refusal.status)).inc()
        access_log.info("%s - %d %s", self.client_text(), refusal.status, refusal.reason)

    def finish(self) -> None:
        """The first request is answered: log it, then start on the next or wait for one."""
        exchange = self.line.popleft()
        exchange.finished = True
        self.done(exchange)
        self.log(exchange)
        head = exchange.head
        if head is None or not head.keep_alive or self.reader.done and not self.line:
            self.closing = True
            self.transport.loseConnection()
            return
        if self.paused and len(self.line) <= PIPELINE_DEPTH:
            self.paused = False
            self.transport.resumeProducing()
        if self.line:
            self.serve()
        else:
            self.timeout.set(self.services.settings.keepalive_timeout, self.idle_timed_out)

    def done(self, exchange: Exchange) -> None:
        """Forget the request's reply channel and timeout."""
        self.timeout.clear()
        if exchange.reply_channel is not None:
            self.services.inbox.forget(exchange.reply_channel)
        self.services.in_flight.discard(self)

    def connectionLost(self, reason: Any = None) -> None:
        """Tell the worker when the client leaves before the response is complete."""
        self.gone = True
        self.services.connections.discard(self)
        self.timeout.cancel()
        if not self.line:
            return
        exchange = self.line[0]
        pending = self in self.services.in_flight and exchange.reply_channel is not None
        self.done(exchange)
        if pending:
            metrics.HTTP_CLIENT_GONE.inc()
            asyncio.get_running_loop().create_task(self.send_disconnect(exchange))

    async def send_disconnect(self, exchange: Exchange) -> None:
        try:
            await self.services.layer.send(
                HTTP_DISCONNECT, translate.disconnect_message(exchange.reply_channel, exchange.path_text)
            )
        except LayerError as exc:
            log.info("could not send http.disconnect for %s: %s", exchange.path_text, exc)

    # -- logging ---------------------------------------------------------------------

    @staticmethod
    def method(exchange: Exchange) -> str:
        return exchange.head.method.decode("latin-1") if exchange.head is not None else "-"

    def client_text(self) -> str:
        client = self.client
        return f"{client[0]}:{client[1]}" if client else "unix"

    def log(self, exchange: Exchange) -> None:
        """Count a finished request, and write its access-log line."""
        took = time.monotonic() - exchange.started_at
        _responses(exchange.status).inc()
        metrics.HTTP_DURATION.observe(took)
        if not self.services.settings.access_log or not access_log.isEnabledFor(logging.INFO):
            return
        head = exchange.head
        access_log.info(
            '%s "%s %s HTTP/%s" %d %d %.1fms',
            self.client_text(),
            self.method(exchange),
            head.target.decode("latin-1") if head is not None else "-",
            head.version if head is not None else "-",
            exchange.status,
            exchange.sent,
            took * 1000,
        )


def is_websocket(headers: translate.Headers) -> bool:
    """Whether a request asks for a WebSocket upgrade."""
    upgrade = translate.header(headers, b"upgrade")
    return upgrade is not None and upgrade.lower() == b"websocket"


@functools.cache
def _responses(code: int) -> Any:
    """The response counter of one status code (looked up once, not per request)."""
    return metrics.HTTP_REQUESTS.labels(str(code))


class HttpFactory(Factory):
    """Builds an ``HttpConnection`` per accepted connection, handing it the services."""

    noisy = False

    def __init__(self, services: HttpServices) -> None:
        self.services = services

    def buildProtocol(self, addr: Any) -> HttpConnection:
        connection = HttpConnection(self.services)
        connection.factory = self
        return connection
