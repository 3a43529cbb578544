"""The Twisted driver for plain HTTP: one ``http.request`` message per request, the reply
written back from the reply channel, and ``http.disconnect`` when the client leaves.

Requests asking for a WebSocket upgrade are handed, connection and all, to Autobahn
(``websocket.py``). Everything protocol-shaped is decided in ``translate.py``.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autobahn.twisted.resource import WebSocketResource
from twisted.web import http

from switchroom.layers import ChannelFull, LayerError, MessageTooLarge, streams
from switchroom.shared import metrics
from switchroom.shared.messages import HTTP_DISCONNECT, HTTP_REQUEST, HTTP_REQUEST_BODY, HTTP_RESPONSE

from . import translate
from .deadlines import Deadline

if TYPE_CHECKING:
    from .server import HttpServer

log = logging.getLogger("switchroom.http")
access_log = logging.getLogger("switchroom.http.access")

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
# Seconds a closing connection may take to let our last bytes out (a rejected request keeps
# reading and discarding meanwhile, a closed socket flushes its close frame) before it is dropped.
LINGER = 2.0
# Twisted's own ceilings (answered with 400) sit above ours so clients see 431 first.
TWISTED_HEADER_FACTOR = 2


class LayerRequest(http.Request):
    """One HTTP request: sent to the layer whole, answered from its reply channel."""

    defaultContentType = None
    server: "HttpServer"

    def __init__(self, channel: http.HTTPChannel, queued: Any = None) -> None:
        super().__init__(channel)
        channel.request_seen = True
        # A request line arrived: the connection's start check has nothing left to do, and
        # cancelled now it does not keep the channel alive after a WebSocket handoff.
        channel.start_check.cancel()
        self.server = channel.factory.server
        self.reply_channel: str | None = None
        self.path_text = ""
        self.query = b""
        self.started_at = time.monotonic()
        self.response_started = False
        self.rejected = False
        self.received = 0
        self.timer: Deadline | None = None
        self.read_timer: Deadline | None = self.server.deadlines.call_later(
            self.server.settings.read_timeout, self.read_timed_out
        )

    # -- reading ---------------------------------------------------------------------

    def gotLength(self, length: int | None) -> None:
        """Refuse a declared body over the limit before reading any of it."""
        super().gotLength(length)
        if length is not None and length > self.server.settings.max_body_size:
            self.reject_early(413, f"body of {length} bytes is over the limit")

    def handleContentChunk(self, data: bytes) -> None:
        """Count a chunked body as it arrives, and stop it at the limit."""
        if self.rejected:
            return
        self.received += len(data)
        if self.received > self.server.settings.max_body_size:
            self.reject_early(413, "body over the limit")
            return
        super().handleContentChunk(data)

    def read_timed_out(self) -> None:
        """The client is sending its request too slowly (or not at all): 408 and close."""
        self.read_timer = None
        if not self.rejected:
            self.reject_early(408, "the request did not arrive in time")

    def reject_early(self, status: int, why: str) -> None:
        """Answer before the request is complete, and close the connection."""
        self.stop_read_timer()
        self.rejected = True
        body = why.encode() + b"\n"
        transport = self.channel.transport
        if transport is None:
            return
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, REASONS.get(status, b"Error"), len(body), body)
        )
        # Close our side only and keep discarding what the client still sends for a moment:
        # closing outright would reset the connection and could destroy the answer in transit.
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
            asyncio.get_running_loop().call_later(LINGER, transport.abortConnection)
        else:
            transport.loseConnection()
        metrics.HTTP_REQUESTS.labels(str(status)).inc()
        access_log.info("%s - %d %s", self.client_text(), status, why)

    def stop_read_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def process(self) -> None:
        """All of the request is in: check it, then hand it to the layer or to Autobahn."""
        self.stop_read_timer()
        if self.rejected:
            return
        settings = self.server.settings
        headers = [
            [name.lower(), value]
            for name, values in self.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        try:
            translate.check_headers(headers, settings.max_header_count, settings.max_header_bytes)
            if not translate.host_allowed(translate.header(headers, b"host"), settings.allowed_hosts):
                raise translate.BadRequest(400, "host not allowed")
            client, scheme = self.client_and_scheme(headers)
            if self.is_websocket(headers):
                self.hand_to_websocket(headers, client, scheme)
                return
            self.path_text, self.query = translate.split_target(self.uri)
        except translate.BadRequest as exc:
            self.answer(exc.status, exc.reason)
            return
        self.reply_channel = self.server.inbox.address(HTTP_RESPONSE, self.on_reply)
        self.server.in_flight.add(self)
        asyncio.get_running_loop().create_task(self.send_request(headers, client, scheme))
        self.arm_timer()

    def connection(self) -> tuple[list[Any] | None, list[Any] | None, str]:
        """The client's and the server's addresses and the scheme: read once per connection."""
        channel = self.channel
        known = channel.addresses
        if known is None:
            transport = channel.transport
            peer, host = transport.getPeer(), transport.getHost()
            known = channel.addresses = (
                translate.peer_address(getattr(peer, "host", None), getattr(peer, "port", None)),
                translate.peer_address(getattr(host, "host", None), getattr(host, "port", None)),
                "https" if self.isSecure() else "http",
            )
        return known

    def client_and_scheme(self, headers: translate.Headers) -> tuple[list[Any] | None, str]:
        client, _, scheme = self.connection()
        client = None if client is None else [*client]
        if self.server.settings.proxy_headers:
            client, scheme = translate.behind_proxy(headers, client, scheme)
        return client, scheme

    def server_address(self) -> list[Any] | None:
        server = self.connection()[1]
        return None if server is None else [*server]

    @staticmethod
    def is_websocket(headers: translate.Headers) -> bool:
        upgrade = translate.header(headers, b"upgrade")
        return upgrade is not None and upgrade.lower() == b"websocket"

    def hand_to_websocket(self, headers: translate.Headers, client: list[Any] | None, scheme: str) -> None:
        """Give the connection to Autobahn, with what it needs to build ``websocket.connect``."""
        self.channel.setTimeout(None)
        self.server.connections.discard(self.channel)
        factory = self.server.ws_factory
        factory.handoff = {
            "target": self.uri,
            "headers": headers,
            "client": client,
            "server": self.server_address(),
            "scheme": "wss" if scheme == "https" else "ws",
        }
        try:
            WebSocketResource(factory).render(self)
        finally:
            factory.handoff = None

    async def send_request(self, headers: translate.Headers, client: list[Any] | None, scheme: str) -> None:
        """Put the request (and any further body chunks) on the layer; 503 if it is full."""
        server = self.server
        layer = server.layer
        self.content.seek(0)
        body = self.content.read()
        parts = streams.pieces(body, layer.chunk_size)
        body_channel = await layer.new_channel(HTTP_REQUEST_BODY + "?") if len(parts) > 1 else None
        try:
            message = translate.request_message(
                reply_channel=self.reply_channel,
                method=self.method,
                target=self.uri,
                path_and_query=(self.path_text, self.query),
                http_version=self.clientproto.decode("latin-1").partition("/")[2] or "1.0",
                headers=headers,
                scheme=scheme,
                client=client,
                server=self.server_address(),
                root_path=server.settings.root_path,
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
                    server.settings.request_timeout,
                    give_up=lambda: self.finished or self._disconnected,
                    closed=False,
                )
        except ChannelFull:
            self.unavailable("the http.request channel is full", cause="full")
        except MessageTooLarge:
            self.answer(431, "request headers too large for the layer")
        except LayerError as exc:
            self.unavailable("the channel layer failed", detail=str(exc), cause="layer")

    # -- answering -------------------------------------------------------------------

    def arm_timer(self) -> None:
        timeout = self.server.settings.request_timeout
        if self.timer is not None:
            self.timer.reset(timeout)
        else:
            self.timer = self.server.deadlines.call_later(timeout, self.timed_out)

    def timed_out(self) -> None:
        self.timer = None
        if self.response_started:
            log.warning("%s %s: the response stalled; closing the connection", self.method, self.path_text)
            self.done()
            self.channel.transport.abortConnection()
        else:
            self.unavailable("no worker answered in time", cause="timeout")

    def on_reply(self, message: dict[str, Any]) -> None:
        """Write one reply message from the worker."""
        if self.finished or self._disconnected:
            self.done()
            return
        try:
            part = translate.parse_response(message, self.response_started)
        except translate.BadReply as exc:
            log.error("bad reply to %s %s: %s", self.method.decode(), self.path_text, exc)
            if self.response_started:
                self.done()
                self.channel.transport.abortConnection()
            else:
                self.answer(502, "the application sent an invalid response")
            return
        if isinstance(part, translate.ResponseStart):
            self.response_started = True
            self.setResponseCode(part.status)
            raw = self.responseHeaders
            for name, value in part.headers:
                raw.addRawHeader(name, value)
        if part.content:
            self.write(part.content)
        if part.more:
            self.arm_timer()
            return
        self.done()
        self.finish()

    def unavailable(self, why: str, detail: str = "", cause: str = "layer") -> None:
        """503 with Retry-After: the layer or the workers cannot take this request now.

        ``detail`` (such as which Redis failed, and how) goes to the log only: clients
        learn nothing about the servers behind this one. ``cause`` labels the metric.
        """
        if self.response_started or self.finished or self._disconnected:
            return
        metrics.HTTP_UNAVAILABLE.labels(cause).inc()
        logged = f"{why}: {detail}" if detail else why
        log.warning("503 %s %s: %s", self.method.decode(), self.path_text, logged)
        self.setHeader(b"retry-after", str(self.server.settings.retry_after).encode())
        self.answer(503, "Service Unavailable: " + why)

    def answer(self, status: int, text: str) -> None:
        """A short plain-text answer from the server itself."""
        self.done()
        if self.finished or self._disconnected:
            return
        body = text.encode("utf-8") + b"\n"
        self.setResponseCode(status)
        self.setHeader(b"content-type", b"text/plain; charset=utf-8")
        self.setHeader(b"content-length", str(len(body)).encode())
        self.write(body)
        self.finish()

    def done(self) -> None:
        """Forget the reply channel and the timer."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.reply_channel is not None:
            self.server.inbox.forget(self.reply_channel)
        self.server.in_flight.discard(self)

    def connectionLost(self, reason: Any) -> None:
        """Tell the worker when the client leaves before the response is complete."""
        pending = self.reply_channel is not None and not self.finished and self in self.server.in_flight
        self.stop_read_timer()
        super().connectionLost(reason)
        self.done()
        if pending:
            metrics.HTTP_CLIENT_GONE.inc()
            asyncio.get_running_loop().create_task(self.send_disconnect())

    async def send_disconnect(self) -> None:
        try:
            await self.server.layer.send(
                HTTP_DISCONNECT, translate.disconnect_message(self.reply_channel, self.path_text)
            )
        except LayerError as exc:
            log.info("could not send http.disconnect for %s: %s", self.path_text, exc)

    def client_text(self) -> str:
        transport = self.channel.transport if self.channel is not None else None
        peer = transport.getPeer() if transport is not None else None
        host = getattr(peer, "host", None)
        return f"{host}:{getattr(peer, 'port', '')}" if host else "unix"


@functools.cache
def _responses(code: int) -> Any:
    """The response counter of one status code (looked up once, not per request)."""
    return metrics.HTTP_REQUESTS.labels(str(code))


def check_persistence(request: http.Request, version: bytes) -> bool:
    """Whether the connection stays open after this request: HTTP/1.1 unless a Connection
    header lists ``close``. Twisted reads only the first Connection header, split on spaces,
    so ``Connection: foo`` then ``Connection: close`` (or ``close,foo``) kept it open."""
    if version != b"HTTP/1.1":
        return False
    values = request.requestHeaders.getRawHeaders(b"connection", [])
    if any(token.strip().lower() == b"close" for value in values for token in value.split(b",")):
        request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return False
    return True


class HttpFactory(http.HTTPFactory):
    """Builds HTTP channels whose requests are ``LayerRequest``s, with our limits."""

    def __init__(self, server: "HttpServer") -> None:
        super().__init__(timeout=server.settings.keepalive_timeout)
        self.server = server

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = LayerRequest
        settings = self.server.settings
        channel = protocol._channel
        channel.maxHeaders = settings.max_header_count * TWISTED_HEADER_FACTOR
        channel.totalHeadersSize = settings.max_header_bytes * TWISTED_HEADER_FACTOR
        channel.checkPersistence = check_persistence
        channel.addresses = None
        # The keep-alive timeout (Twisted's TimeoutMixin) goes in the server's buckets too.
        channel.callLater = self.server.deadlines.call_later
        channel.connectionLost = functools.partial(self.connection_lost, channel, channel.connectionLost)
        self.server.connections.add(channel)
        check = functools.partial(self.check_started, channel)
        channel.start_check = self.server.deadlines.call_later(settings.read_timeout, check)
        return protocol

    def connection_lost(self, channel: http.HTTPChannel, lost: Callable[[Any], None], reason: Any) -> None:
        """Forget a closed connection (one handed to a WebSocket is forgotten at the handoff)."""
        self.server.connections.discard(channel)
        lost(reason)

    @staticmethod
    def check_started(channel: http.HTTPChannel) -> None:
        """Drop a connection that has not completed even a request line in ``read_timeout``."""
        if channel.transport is not None and not getattr(channel, "request_seen", False):
            channel.transport.abortConnection()

    def log(self, request: LayerRequest) -> None:
        """Count each finished request, and write its access-log line."""
        took = time.monotonic() - request.started_at
        _responses(request.code).inc()
        metrics.HTTP_DURATION.observe(took)
        if not self.server.settings.access_log or not access_log.isEnabledFor(logging.INFO):
            return
        access_log.info(
            '%s "%s %s %s" %d %d %.1fms',
            request.client_text(),
            request.method.decode("latin-1"),
            request.uri.decode("latin-1"),
            request.clientproto.decode("latin-1"),
            request.code,
            request.sentLength,
            took * 1000,
        )
