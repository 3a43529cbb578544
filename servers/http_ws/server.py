"""``HttpServer``: listening sockets, the process inbox that replies arrive in, group
fan-out to local sockets, and graceful shutdown, on the asyncio loop it is started from
(Twisted runs on that loop through its asyncio reactor)."""

import asyncio
import logging
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

from twisted.internet.error import CannotListenError

from switchroom.layers import BaseLayer, Message, ProcessWatch
from switchroom.shared import metrics
from switchroom.shared.messages import WEBSOCKET_CONNECT

from . import translate, twisted_compat
from .deadlines import Deadlines
from .noworker import NoWorkerCheck
from .settings import Settings

if TYPE_CHECKING:
    from .http import HttpConnection, HttpServices
    from .websocket import LayerSocket, SocketFactory, SocketServices

log = logging.getLogger("switchroom.http")


def install_reactor() -> Any:
    """Run Twisted on the running asyncio loop; returns the reactor.

    Call it from inside the loop before anything imports ``twisted.internet.reactor``.
    """
    loop = asyncio.get_running_loop()
    if "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        asyncioreactor.install(loop)
    from twisted.internet import reactor

    if twisted_compat.reactor_loop(reactor) is not loop:
        raise RuntimeError("Twisted's reactor is already installed and does not run on this asyncio loop")
    return reactor


class HttpServer:
    """The HTTP/WebSocket interface server, embeddable in any asyncio program."""

    def __init__(self, layer: BaseLayer, settings: Settings | None = None) -> None:
        self.layer = layer
        self.settings = settings or Settings()
        self.inbox = layer.inbox
        # Connections with a request waiting for its answer.
        self.in_flight: set[HttpConnection] = set()
        # Open sockets (and those still in their handshake) by reply channel.
        self.sockets: dict[str, LayerSocket] = {}
        self.connections: set[HttpConnection] = set()
        # The timeouts of requests and keep-alive connections.
        self.deadlines = Deadlines()
        self.stopping = False
        self.ports: list[Any] = []
        self.http_factory: Any = None
        self.ws_factory: Any = None
        try:
            self.watch = ProcessWatch(layer, self.worker_gone, silence=self.settings.worker_silence)
        except ValueError as exc:
            raise ValueError(f"--worker-silence: {exc}") from None
        self.no_worker = NoWorkerCheck(layer, WEBSOCKET_CONNECT, self.handshakes_waiting, self.refuse_waiting)

    def socket_services(self) -> "SocketServices":
        """What this server hands each WebSocket of its own."""
        from .websocket import SocketServices

        return SocketServices(self.settings, self.layer, self.inbox, self.sockets, self.watch, self.no_worker)

    def http_services(self, sockets: "SocketFactory") -> "HttpServices":
        """What this server hands each HTTP connection; ``sockets`` builds the WebSockets
        that upgraded connections are handed to."""
        from .http import HttpServices

        return HttpServices(
            settings=self.settings,
            layer=self.layer,
            inbox=self.inbox,
            deadlines=self.deadlines,
            in_flight=self.in_flight,
            connections=self.connections,
            sockets=sockets,
        )

    async def start(self) -> None:
        """Listen where the settings say and start reading replies."""
        reactor = install_reactor()
        from .http import HttpFactory
        from .websocket import SocketFactory

        self.ws_factory = SocketFactory(self.socket_services())
        self.http_factory = HttpFactory(self.http_services(self.ws_factory))
        self.inbox.fanout = self.fan_out
        await self.inbox.start()
        s = self.settings
        try:
            if s.fd is not None:
                if _is_unix(s.fd):
                    self.ports.append(reactor.adoptStreamPort(s.fd, socket.AF_UNIX, self.tcp_factory()))
                else:
                    self.ports.append(
                        twisted_compat.adopt_tcp(reactor, s.fd, socket.AF_INET, self.tcp_factory())
                    )
            elif s.unix_socket:
                self.ports.append(reactor.listenUNIX(s.unix_socket, self.http_factory))
            else:
                port = twisted_compat.listen_tcp(reactor, s.port, self.tcp_factory(), 2048, s.bind)
                self.ports.append(port)
        except CannotListenError as exc:
            await self.inbox.close()
            where = s.unix_socket or f"{s.bind}:{s.port}"
            error = exc.socketError
            text = f"cannot listen on {where}: {_reason(error)}"
            raise OSError(getattr(error, "errno", None), text) from None
        metrics.http_servers.add(self)
        for where in self.addresses():
            log.info("listening on %s", where)

    def tcp_factory(self) -> Any:
        """The HTTP factory, wrapped in the per-address limit when one is set."""
        limit = self.settings.max_connections_per_ip
        if not limit:
            return self.http_factory
        from .limits import PerClientLimit

        return PerClientLimit(self.http_factory, limit, self.settings.retry_after, self.settings.access_log)

    def addresses(self) -> list[str]:
        """Human-readable listening addresses (``http://host:port`` or the socket path)."""
        out = []
        for port in self.ports:
            host = port.getHost()
            if hasattr(host, "port"):
                out.append(f"http://{host.host}:{host.port}")
            else:
                out.append(f"unix:{getattr(host, 'name', self.settings.unix_socket)}")
        return out

    async def not_ready(self) -> str | None:
        """None while listening; otherwise why requests are not taken."""
        if self.stopping:
            return "stopping"
        return None if self.ports else "not listening"

    def served_channels(self) -> list[str]:
        """The queue the replies to this server arrive on: its inbox."""
        return [self.inbox.queue]

    @property
    def port(self) -> int:
        """The TCP port of the first listener (useful with ``port=0``)."""
        return self.ports[0].getHost().port

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, close sockets with 1001."""
        self.stopping = True
        for port in self.ports:
            await asyncio.ensure_future(port.stopListening().asFuture(asyncio.get_running_loop()))
        self.ports.clear()
        grace = self.settings.shutdown_grace
        if self.in_flight or self.sockets:
            log.info(
                "shutting down: %d requests in flight, %d sockets open",
                len(self.in_flight),
                len(self.sockets),
            )
        for sock in list(self.sockets.values()):
            sock.give_up(1001, "server shutting down")
        deadline = time.monotonic() + grace
        while (self.in_flight or self.sockets) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.in_flight):
            connection.unavailable("the server is shutting down", cause="stopping")
        for sock in list(self.sockets.values()):
            sock.dropConnection(abort=True)
        metrics.http_servers.discard(self)
        await self.watch.close()
        await self.no_worker.close()
        left = len(self.inbox.handlers)
        await self.inbox.close()
        log.info("stopped; %d reply channels left routed", left)

    def worker_gone(self, process: str) -> None:
        """Close with 1011 the sockets hosted by a worker process that stopped heartbeating."""
        for sock in list(self.sockets.values()):
            if sock.worker_process == process:
                sock.worker_lost()

    def handshakes_waiting(self) -> bool:
        """True while a WebSocket handshake waits for its worker's answer."""
        return any(sock.handshake is not None for sock in self.sockets.values())

    def refuse_waiting(self, since: float, why: str) -> None:
        """Refuse (503) the handshakes that were waiting at ``since`` (monotonic): no worker reads them."""
        for sock in list(self.sockets.values()):
            if sock.handshake is not None and sock.connect_started <= since:
                sock.no_worker(why)

    def fan_out(self, addresses: list[str], message: Message) -> list[str]:
        """One group message for many sockets of this process: parsed once, its frame
        encoded once and the same bytes written to each open socket. Returns the addresses
        left for their own handlers (handshakes, closes, requests, sockets that are gone)."""
        try:
            reply = translate.parse_socket_reply(message)
        except translate.BadReply:
            return addresses
        if not reply.is_plain_frame():
            return addresses
        payload = reply.text.encode("utf-8") if reply.text is not None else reply.data
        frame = None
        left = []
        sent = 0
        sockets = self.sockets
        for address in addresses:
            sock = sockets.get(address)
            if sock is None or not sock.takes_shared_frames():
                left.append(address)
                continue
            if frame is None:
                frame = self.ws_factory.prepareMessage(payload, isBinary=reply.text is None)
            sent += sock.send_shared(frame, len(payload))
        metrics.WS_FRAMES.sent += sent
        return left


def _reason(error: Any) -> str:
    """An OS error's text without its ``[Errno N]`` prefix (lower case, as the kernel's)."""
    text = getattr(error, "strerror", None) or str(error)
    return text[:1].lower() + text[1:]


def _is_unix(fd: int) -> bool:
    sock = socket.socket(fileno=fd)
    try:
        return sock.family == socket.AF_UNIX
    finally:
        sock.detach()
