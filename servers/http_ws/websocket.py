"""The Autobahn driver for WebSocket: the handshake waits for the worker's accept, client
messages go out as ``websocket.receive`` in order, and the reply channel's frames come back.

Connections arrive from ``http.py`` already parsed once; their ``info`` dict, set at the
handoff, gives the raw target, headers (order and duplicates kept), client and scheme.
"""

import asyncio
import logging
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred

from switchroom.layers import ChannelFull, LayerError, ReceiverGone
from switchroom.layers.batching import Results
from switchroom.shared import metrics
from switchroom.shared.messages import (
    WEBSOCKET_CONNECT,
    WEBSOCKET_DISCONNECT,
    WEBSOCKET_RECEIVE,
    WEBSOCKET_SEND,
)

from . import translate, twisted_compat
from .http import abort_later

if TYPE_CHECKING:
    from switchroom.layers import BaseLayer, Inbox, ProcessWatch

    from .noworker import NoWorkerCheck
    from .settings import Settings

log = logging.getLogger("switchroom.http")
access_log = logging.getLogger("switchroom.http.access")

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_ABNORMAL = 1006
# The handshake outcome (a metric label) of each reason to give up on a socket.
HANDSHAKE_OUTCOMES = {
    "busy": "busy",
    "layer": "busy",
    "bad_reply": "failed",
    "stopping": "stopping",
    "worker_gone": "failed",
}
# Values ``shed_defaults`` compares by equality (others by identity with the class's).
SCALARS = (type(None), bool, int, float, str, bytes)
_ABSENT = object()
# Before the handoff fills it in: the raw target, headers, client, server and scheme.
NO_INFO: Mapping[str, Any] = types.MappingProxyType({})


@dataclass
class SocketServices:
    """What a socket needs from its server: the settings, the layer and the process inbox its
    frames come through, the registry of open sockets (which the server's fan-out, metrics
    and shutdown read), the watch on the worker processes that took sockets and the check
    that refuses handshakes at once when no worker reads them."""

    settings: "Settings"
    layer: "BaseLayer"
    inbox: "Inbox"
    sockets: dict[str, "LayerSocket"]
    watch: "ProcessWatch"
    no_worker: "NoWorkerCheck"


class LayerSocket(WebSocketServerProtocol):
    """One WebSocket connection bridged to the layer.

    Immutable defaults are class attributes, so a connection's ``__dict__`` holds only what
    differs from them; once open, ``shed_defaults`` rebuilds it without the rest (see there).
    """

    factory: "SocketFactory"

    reply_channel: str | None = None
    # After an accept that names a worker address, the socket's later messages go there.
    worker: str | None = None
    worker_process: str | None = None
    denial: translate.SocketReply | None = None
    # The client left while the handshake waited: an accept may still come (see late_reply).
    left_waiting = False
    close_code = CLOSE_ABNORMAL
    late_timer: asyncio.TimerHandle | None = None
    path_text = ""
    # How the access log names the client ("host:port", or "unix").
    client_name = "unix"
    order = 0
    handshake: Deferred | None = None
    # The subprotocols the client offered, and frames that came with the accept (handshake only).
    offered: tuple[str, ...] = ()
    after_open: list[translate.SocketReply] | tuple[()] = ()
    outbox: list[tuple[str, dict[str, Any]]] | tuple[()] = ()
    # A batch of this socket's is with ``Outboxes`` (sent, or waiting to be).
    sending = False
    timer: asyncio.TimerHandle | None = None
    opened_at = 0.0
    connect_started = 0.0
    socket_open = False
    closed = False
    write_paused = False
    backlog = 0
    info: Mapping[str, Any] = NO_INFO

    # -- handshake -------------------------------------------------------------------

    def onConnect(self, request: Any) -> Deferred:
        """Send ``websocket.connect``; the handshake completes when the worker answers."""
        services = self.factory.services
        settings = services.settings
        client = self.info.get("client")
        if client:
            self.client_name = f"{client[0]}:{client[1]}"
        origin = translate.header(self.info.get("headers", []), b"origin")
        if not translate.origin_allowed(origin and origin.decode("latin-1"), settings.allowed_origins):
            access_log.info(
                "%s WebSocket %s refused: origin %r not allowed", self.client_text(), request.path, origin
            )
            metrics.WS_HANDSHAKES.labels("refused").inc()
            raise ConnectionDeny(403, "origin not allowed")
        self.offered = tuple(request.protocols)
        self.reply_channel = services.inbox.address(WEBSOCKET_SEND, self.on_reply)
        try:
            message = translate.connect_message(
                reply_channel=self.reply_channel,
                target=self.info.get("target", request.path.encode()),
                headers=self.info.get("headers", []),
                scheme=self.info.get("scheme", "ws"),
                client=self.info.get("client"),
                server=self.info.get("server"),
                subprotocols=list(self.offered),
                root_path=settings.root_path,
            )
        except translate.BadRequest as exc:
            self.forget()
            metrics.WS_HANDSHAKES.labels("refused").inc()
            raise ConnectionDeny(exc.status, exc.reason) from None
        self.path_text = message["path"]
        # The headers live on in the message, not in each socket.
        self.info = NO_INFO
        self.after_open = []
        services.sockets[self.reply_channel] = self
        self.connect_started = time.monotonic()
        self.handshake = Deferred()
        self.queue(WEBSOCKET_CONNECT, message)
        self.timer = asyncio.get_running_loop().call_later(settings.connect_timeout, self.connect_timed_out)
        services.no_worker.waiting()
        return self.handshake

    def connect_timed_out(self) -> None:
        self.timer = None
        log.warning("WebSocket %s: no worker accepted within the connect timeout", self.path_text)
        metrics.WS_HANDSHAKES.labels("timeout").inc()
        self.deny(503, "no worker accepted the connection in time")

    def no_worker(self, why: str) -> None:
        """Refuse a waiting handshake at once (503): nothing reads ``websocket.connect``."""
        log.warning("WebSocket %s refused (503): %s", self.path_text, why)
        metrics.WS_HANDSHAKES.labels("timeout").inc()
        self.deny(503, "no worker is running")

    def deny(self, status: int, reason: str) -> None:
        """Refuse a handshake still waiting for its answer."""
        handshake, self.handshake = self.handshake, None
        if handshake is not None:
            self.cancel_timer()
            handshake.errback(ConnectionDeny(status, reason))

    def onOpen(self) -> None:
        """The handshake went through: carry out frames that came with the accept."""
        # The HTTP channel that handed the connection over is still registered as producer.
        self.transport.unregisterProducer()
        self.transport.registerProducer(self, True)
        self.socket_open = True
        self.opened_at = time.monotonic()
        metrics.WS_HANDSHAKES.labels("accepted").inc()
        metrics.WS_CONNECT_DURATION.observe(self.opened_at - self.connect_started)
        access_log.info("%s WebSocket %s open", self.client_text(), self.path_text)
        pending, self.after_open = self.after_open, ()
        self.let_go_of_handshake()
        for reply in pending:
            self.carry_out(reply)

    def let_go_of_handshake(self) -> None:
        """Drop what only the handshake needed, and keep in the socket's own ``__dict__``
        only what differs from its class's defaults (see ``shed_defaults``)."""
        for name in twisted_compat.HANDSHAKE_ATTRIBUTES:
            setattr(self, name, None)
        self.offered = ()
        self.connect_started = 0.0
        twisted_compat.light_send_queue(self)
        shed_defaults(self)
        shed_defaults(twisted_compat.tcp_connection(self.transport))

    def onAutoPong(
        self, ping_sent: int, ping_seq: int, pong_received: int, pong_rtt: int, payload: bytes
    ) -> None:
        """A keepalive round trip put Autobahn's ping and frame state back into the socket's
        dict: once the pong's frame is done, shed it again, so an idle socket stays small."""
        asyncio.get_running_loop().call_soon(self.settle)

    def settle(self) -> None:
        if self.state == self.STATE_OPEN:
            twisted_compat.forget_last_frame(self)
            shed_defaults(self)
            shed_defaults(twisted_compat.tcp_connection(self.transport))

    # -- client to worker ------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Bytes from the client, straight to Autobahn's frame parser: its own ``dataReceived``
        formats the arguments of a debug line on every read, logged or not."""
        self._dataReceived(data)

    def onMessageEnd(self) -> None:
        """A whole message arrived (UTF-8 and size checked frame by frame): to ``onMessage``.
        Autobahn's own also fires a "message" event for observers (a future and callbacks
        per message); a LayerSocket has none."""
        if not self.failedByMe:
            self.onMessage(b"".join(self.message_data), self.message_is_binary)
        self.message_data = None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Forward one client message as ``websocket.receive``, keeping the socket's order."""
        if self.reply_channel is None:
            return
        metrics.WS_FRAMES.received += 1
        self.order += 1
        self.queue(
            self.worker or WEBSOCKET_RECEIVE,
            translate.receive_message(self.reply_channel, self.path_text, payload, isBinary, self.order),
        )

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """Tell the worker the socket is gone (also when it closed during the handshake)."""
        self.cancel_timer()
        self.leave()
        if self.handshake is not None:
            self.handshake = None
            self.left_waiting = True
        self.close_code = code or CLOSE_ABNORMAL
        if self.reply_channel is None:
            return
        self.order += 1
        self.queue(
            self.worker or WEBSOCKET_DISCONNECT,
            translate.socket_disconnect_message(
                self.reply_channel, self.path_text, code or CLOSE_ABNORMAL, self.order
            ),
        )
        if self.socket_open:
            took = time.monotonic() - self.opened_at
            access_log.info(
                "%s WebSocket %s closed %s after %.1fs",
                self.client_text(),
                self.path_text,
                code or CLOSE_ABNORMAL,
                took,
            )

    def queue(self, channel: str, message: dict[str, Any]) -> None:
        """Send in order: the server's ``Outboxes`` takes each socket's waiting messages as
        one batch, the next only once the last one's results are in."""
        outbox = self.outbox
        if not outbox:
            outbox = self.outbox = []
        outbox.append((channel, message))
        if len(outbox) > self.factory.services.layer.capacity_for(channel):
            self.outbox = ()
            self.give_up(CLOSE_TRY_AGAIN_LATER, "the workers are not keeping up", "busy")
            return
        if not self.sending:
            self.sending = True
            self.factory.outboxes.wake(self)

    def sent(self, batch: list[tuple[str, dict[str, Any]]], results: "Results") -> bool:
        """The layer's results for a batch of this socket's; True if more is waiting to go."""
        for (channel, _), error in zip(batch, results, strict=True):
            if error is not None:
                self.send_failed(channel, error)
                break
        if self.outbox:
            return True
        self.stop_sending()
        return False

    def stop_sending(self) -> None:
        """Nothing of this socket's is with ``Outboxes`` any more; a closed socket is forgotten."""
        self.sending = False
        if self.closed:
            self.forget()

    def send_failed(self, channel: str, error: LayerError) -> None:
        self.outbox = ()
        if self.closed or channel == WEBSOCKET_DISCONNECT:
            log.info("could not send websocket.disconnect for %s: %s", self.path_text, error)
            return
        if isinstance(error, ReceiverGone):
            self.worker_lost()
            return
        full = isinstance(error, ChannelFull)
        state = "is full" if full else "failed"
        log.warning("WebSocket %s: %s %s: %s", self.path_text, channel, state, error)
        if full:
            self.give_up(CLOSE_TRY_AGAIN_LATER, "server busy, try again later", "busy")
        else:
            self.give_up(CLOSE_INTERNAL_ERROR, "channel layer unavailable", "layer")

    def give_up(self, code: int, reason: str, cause: str = "stopping") -> None:
        """Refuse the handshake (503) or close an open socket with ``code``; ``cause`` labels the metric."""
        if self.handshake is not None:
            metrics.WS_HANDSHAKES.labels(HANDSHAKE_OUTCOMES.get(cause, cause)).inc()
            self.deny(503, reason)
        else:
            metrics.WS_CLOSED_BY_SERVER.labels(cause).inc()
            self.close_with(code, reason)

    # -- worker to client ------------------------------------------------------------

    def on_reply(self, message: dict[str, Any]) -> None:
        """Carry out one ``websocket.send`` message from the worker."""
        if self.left_waiting:
            self.late_reply(message)
            return
        if self.socket_open:
            frame = translate.plain_frame(message)
            if frame is not None:
                if self.state == self.STATE_OPEN:
                    self.send_frame(*frame)
                return
        try:
            reply = translate.parse_socket_reply(message)
            if self.handshake is not None:
                self.answer_handshake(reply)
                return
        except translate.BadReply as exc:
            log.error("bad reply to WebSocket %s: %s", self.path_text, exc)
            self.give_up(CLOSE_INTERNAL_ERROR, "the application sent an invalid message", "bad_reply")
            return
        if self.socket_open:
            self.carry_out(reply)
        else:
            self.after_open.append(reply)

    def answer_handshake(self, reply: translate.SocketReply) -> None:
        if reply.accept is False or (reply.accept is None and reply.close is not None):
            access_log.info("%s WebSocket %s rejected", self.client_text(), self.path_text)
            metrics.WS_HANDSHAKES.labels("rejected").inc()
            if reply.status is not None:
                self.denial = reply
            self.deny(reply.status or 403, "rejected by the application")
            return
        if reply.accept is None:
            return
        if reply.worker is not None:
            self.worker = reply.worker
            self.worker_process = self.factory.services.watch.watch(reply.worker)
        subprotocol = translate.choose_subprotocol(self.offered, reply.subprotocol)
        handshake, self.handshake = self.handshake, None
        self.cancel_timer()
        if reply.text is not None or reply.data is not None or reply.close is not None:
            self.after_open.append(reply)
        handshake.callback((subprotocol, _header_dict(reply.headers)) if reply.headers else subprotocol)

    def carry_out(self, reply: translate.SocketReply) -> None:
        """Send a reply's frame and close; nothing once the socket is closing, when the
        protocol allows no more data frames (a reply may still be on its way then)."""
        if self.state != self.STATE_OPEN:
            return
        payload = reply.text.encode("utf-8") if reply.text is not None else reply.data
        if payload is not None and not self.send_frame(payload, reply.text is None):
            return
        if reply.close is not None:
            self.close_with(reply.close, reply.reason or "")

    def send_frame(self, payload: bytes, is_binary: bool) -> bool:
        """Send one data message to an open socket; False if the client stopped reading and
        the socket was dropped instead. A plain one (unfragmented, uncompressed, within the
        size limit, nothing queued before it) goes straight to the transport as one frame,
        as Autobahn would encode it; anything else through Autobahn's ``sendMessage``."""
        size = len(payload)
        if not self.room_for(size):
            return False
        metrics.WS_FRAMES.sent += 1
        if (
            self.send_queue
            or twisted_compat.compresses(self)
            or 0 < self.autoFragmentSize < size
            or 0 < self.maxMessagePayloadSize < size
        ):
            self.sendMessage(payload, isBinary=is_binary)
        else:
            self.transport.write(frame_head(size, is_binary) + payload)
        return True

    def takes_shared_frames(self) -> bool:
        """True once the socket is open and has nothing of its own waiting to go first."""
        return self.socket_open and self.state == self.STATE_OPEN

    def send_shared(self, frame: Any, size: int) -> bool:
        """Write a frame encoded once for many sockets (a group message): its bytes go
        straight to the transport unless Autobahn has frames queued or compresses.
        False if the client stopped reading and the socket was dropped instead."""
        if not self.room_for(size):
            return False
        if self.send_queue or twisted_compat.compresses(self):
            self.sendPreparedMessage(frame)
        else:
            self.transport.write(frame.payloadHybi)
        return True

    def room_for(self, size: int) -> bool:
        """Count ``size`` more bytes towards a client that stopped reading; past
        ``max_send_buffer`` the connection is dropped and False returned."""
        if not self.write_paused:
            return True
        self.backlog += size
        if self.backlog <= self.factory.services.settings.max_send_buffer:
            return True
        log.warning(
            "WebSocket %s: the client stopped reading; dropped with %d bytes queued",
            self.path_text,
            self.backlog,
        )
        metrics.WS_CLOSED_BY_SERVER.labels("slow_client").inc()
        self.dropConnection(abort=True)
        return False

    def worker_lost(self) -> None:
        """The worker process hosting this socket is gone: close with 1011 (or 503 in the handshake)."""
        log.warning("WebSocket %s: its worker %s is gone", self.path_text, self.worker_process or self.worker)
        self.unwatch()
        self.give_up(CLOSE_INTERNAL_ERROR, "the worker serving this socket is gone", "worker_gone")

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        """Refuse the handshake; with the app's denial response when it sent one."""
        denial, self.denial = self.denial, None
        if denial is None or self.state != self.STATE_CONNECTING:
            super().failHandshake(reason, code, responseHeaders)
            return
        body = denial.body or b""
        status = translate.status_line(denial.status or 403)
        own = (b"content-length", b"connection")
        head = [status]
        head += [k + b": " + v for k, v in denial.headers or [] if k.lower() not in own]
        head += [b"content-length: " + str(len(body)).encode(), b"connection: close"]
        self.wasNotCleanReason = reason
        self.sendData(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.dropConnection(abort=False)

    def close_with(self, code: int, reason: str) -> None:
        """Close an open socket with any code a server may send (Autobahn's sendClose allows fewer)."""
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)
        elif self.state in (self.STATE_CONNECTING, self.STATE_PROXY_CONNECTING):
            self.dropConnection(abort=True)

    # -- flow control: Twisted pauses us when the client stops reading ----------------

    def pauseProducing(self) -> None:
        self.write_paused = True

    def resumeProducing(self) -> None:
        self.write_paused = False
        self.backlog = 0

    def stopProducing(self) -> None:
        self.write_paused = False

    # -- bookkeeping -----------------------------------------------------------------

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def late_reply(self, message: Any) -> None:
        """An answer to a handshake the client already left: a worker that accepted it and
        hosts the socket (``worker``) is told of the disconnect, which it could not get on
        the shared channel once another worker took that."""
        worker = message.get("worker") if isinstance(message, dict) else None
        if message.get("accept") and isinstance(worker, str) and "!" in worker:
            self.order += 1
            disconnect = translate.socket_disconnect_message(
                self.reply_channel, self.path_text, self.close_code, self.order
            )
            asyncio.ensure_future(self.tell_late_worker(worker, disconnect))
        self.forget_now()

    async def tell_late_worker(self, worker: str, message: dict[str, Any]) -> None:
        try:
            await self.factory.services.layer.send(worker, message)
        except LayerError as exc:
            log.info("could not tell %s that WebSocket %s left: %s", worker, self.path_text, exc)

    def forget(self) -> None:
        """Stop routing the reply channel; after a client left mid-handshake, only once the
        connect timeout has passed (the worker's answer may still be on its way)."""
        if self.reply_channel is None or self.late_timer is not None:
            return
        if self.left_waiting:
            timeout = self.factory.services.settings.connect_timeout
            self.late_timer = asyncio.get_running_loop().call_later(timeout, self.forget_now)
            return
        self.forget_now()

    def forget_now(self) -> None:
        if self.late_timer is not None:
            self.late_timer.cancel()
        self.late_timer = None
        self.left_waiting = False
        if self.reply_channel is not None:
            self.factory.services.inbox.forget(self.reply_channel)

    def leave(self) -> None:
        """No longer one of the server's sockets (it closed, or its handshake failed)."""
        if self.reply_channel is not None:
            self.factory.services.sockets.pop(self.reply_channel, None)
        self.unwatch()

    def unwatch(self) -> None:
        process, self.worker_process = self.worker_process, None
        if process is not None:
            self.factory.services.watch.unwatch(process)

    def dropConnection(self, abort: bool = False) -> None:
        """Once the close handshake is done, close gracefully so our close frame gets out.

        Autobahn aborts the connection as soon as the peer's close frame arrives. When a bad
        frame and the client's close arrive in one read, our close frame (1002, 1007, 1009…)
        is still in the transport's buffer, and the abort would reset the connection and
        destroy it. A timer still aborts a peer that stops reading.
        """
        if abort and self.wasClean and self.transport is not None:
            transport = self.transport
            super().dropConnection(abort=False)
            abort_later(transport)
            return
        super().dropConnection(abort=abort)

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self.closed = True
        self.cancel_timer()
        self.leave()
        if not self.sending:
            self.forget()

    def client_text(self) -> str:
        return self.client_name


def shed_defaults(obj: object | None) -> None:
    """Rebuild an object's ``__dict__`` without the attributes that equal its class's.

    Autobahn sets some 80 attributes on every connection, more names than CPython shares one
    key table for, so each socket has a full dict of its own (1.6 KB). Most hold the same
    value on every open socket, which the class carries (``OPEN_SOCKET_DEFAULTS``): they
    read the same from there, and one set again later goes back into the instance's dict.
    Twisted's TCP connection likewise keeps class defaults (an empty buffer, flags) in its
    own dict; its code deletes only attributes of its own (the socket, the protocol). Dicts
    never shrink, hence the rebuild. Nothing for None.
    """
    if obj is None:
        return
    cls = type(obj)
    kept: dict[str, Any] = {}
    for name, value in vars(obj).items():
        default = getattr(cls, name, _ABSENT)
        if default is value or (type(value) in SCALARS and type(default) is type(value) and default == value):
            continue
        kept[name] = value
    obj.__dict__ = kept


def frame_head(size: int, is_binary: bool) -> bytes:
    """The head of an unmasked, final, uncompressed server data frame of ``size`` bytes
    (RFC 6455 5.2): FIN and the opcode, then the length in 7, 7+16 or 7+64 bits."""
    first = 0x82 if is_binary else 0x81
    if size < 126:
        return bytes((first, size))
    if size < 0x10000:
        return bytes((first, 126)) + size.to_bytes(2, "big")
    return bytes((first, 127)) + size.to_bytes(8, "big")


def _header_dict(pairs: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """Extra handshake response headers in the form Autobahn takes (repeats kept)."""
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return headers


class Outboxes:
    """Sends the outboxes of a server's sockets to the layer: one task for them all rather
    than one per socket. Each round takes every waiting socket's messages (in order) into
    one ``send_many``; a socket's next batch goes in a later round, after its results."""

    def __init__(self, layer: "BaseLayer") -> None:
        self.layer = layer
        self.waiting: list[LayerSocket] = []
        self.task: asyncio.Task[None] | None = None

    def wake(self, sock: LayerSocket) -> None:
        """``sock`` has messages to send (and no batch with us already)."""
        self.waiting.append(sock)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        taken: list[tuple[LayerSocket, list[tuple[str, dict[str, Any]]]]] = []
        try:
            while self.waiting:
                socks, self.waiting = self.waiting, []
                taken = []
                items: list[tuple[str, dict[str, Any]]] = []
                for sock in socks:
                    batch, sock.outbox = sock.outbox, ()
                    taken.append((sock, batch))
                    items += batch
                try:
                    results = await self.layer.send_many(items)
                except LayerError as exc:
                    results = [exc] * len(items)
                start = 0
                for sock, batch in taken:
                    end = start + len(batch)
                    if sock.sent(batch, results[start:end]):
                        self.waiting.append(sock)
                    start = end
                taken = []
        finally:
            self.task = None
            # Not a layer error (the loop is stopping, or a bug): no socket waits for ever.
            for sock, _ in taken:
                sock.stop_sending()
            waiting, self.waiting = self.waiting, []
            for sock in waiting:
                sock.stop_sending()


class SocketFactory(WebSocketServerFactory):
    """Builds ``LayerSocket``s with the server's limits and keepalive settings."""

    protocol = LayerSocket

    def __init__(self, services: SocketServices) -> None:
        super().__init__()
        self.services = services
        self.outboxes = Outboxes(services.layer)
        settings = services.settings
        self.setProtocolOptions(
            maxFramePayloadSize=settings.max_frame_size,
            maxMessagePayloadSize=settings.max_ws_message_size,
            autoPingInterval=settings.ping_interval,
            autoPingTimeout=settings.ping_timeout,
            openHandshakeTimeout=settings.connect_timeout + 5,
            closeHandshakeTimeout=5,
            maxConnections=settings.max_connections,
            failByDrop=False,
        )
        # The options as class attributes of this factory's own protocol class: Autobahn copies
        # an option into each connection only when the protocol does not have it already.
        # (Function-valued options stay plain functions, not methods.) With them, what an open
        # socket shares with every other (see ``shed_defaults``).
        options = {name: getattr(self, name) for name in LayerSocket.CONFIG_ATTRS}
        for name, value in options.items():
            if isinstance(value, types.FunctionType):
                options[name] = staticmethod(value)
        options.update(twisted_compat.OPEN_SOCKET_DEFAULTS, factory=self)
        self.protocol = type("LayerSocket", (LayerSocket,), options)
