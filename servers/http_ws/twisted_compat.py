"""The parts of Twisted's and Autobahn's private API the HTTP/WebSocket server relies on,
in one place, and the TCP transport built on them.

Twisted has no public way to give an accepted connection to another protocol (its ticket
3204), to ask which asyncio loop its reactor runs on, or to end a connection from outside
the reactor's write callback; the transport also reads the TCP connection's pending
buffers and builds a port from a listening descriptor. Autobahn says whether a socket
compresses only through an attribute. Each is named here for the versions ``SUPPORTED``
and ``AUTOBAHN_SUPPORTED`` say (and setup.cfg admits); ``tests/test_compat.py`` checks them
against the installed releases, so an upgrade that moves one fails there, not on a socket.
Autobahn's per-connection attributes that an open socket need not keep (the handshake's,
and those an idle socket holds at their usual value) are listed here for the same reason.

The transport (``Server``, with ``Port``, ``listen_tcp`` and ``adopt_tcp`` that make its
listening sockets) sends what one loop turn wrote at the end of that turn. Twisted's own
asks the loop to watch its socket for writability whenever something is written, and
stops watching once the buffer is empty: for a small HTTP response that is two
``epoll_ctl`` calls and one more wake-up of the loop. This one instead sends at the end of
the current loop turn (so a response's headers and body still go out in one ``send``), and
watches the socket, the usual way, only when the kernel did not take everything. What a
request means is decided elsewhere (``http.py``); this only decides when its bytes leave.
Its reads go to the reactor's own read callback without the legacy log context that the
reactor sets up around every read (``watch_reads``).
"""

import asyncio
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import tcp
from twisted.protocols.policies import ProtocolWrapper

# Twisted releases whose private API matches: >= 23.10, < 27.
SUPPORTED = ((23, 10), (27,))
# Autobahn releases whose private API matches: >= 23.6, < 27.
AUTOBAHN_SUPPORTED = ((23, 6), (27,))
# Attributes of an accepted TCP connection (``tcp.Server``) that ``Server`` below reads.
TRANSPORT_ATTRIBUTES = ("_aborting", "_tempDataBuffer", "dataBuffer", "protocol")
# Attributes of an Autobahn protocol read by ``websocket.py``.
SOCKET_ATTRIBUTES = ("_perMessageCompress", "send_queue", "_dataReceived", "failedByMe", "autoFragmentSize")
# What Autobahn keeps of the opening handshake for the life of a connection; only the
# handshake reads it, so an open socket lets it go (sets it to None).
HANDSHAKE_ATTRIBUTES = (
    "http_request_data",
    "http_response_data",
    "http_status_line",
    "http_headers",
    "http_request_params",
    "http_request_uri",
    "http_request_path",
    "http_request_host",
    "websocket_origin",
    "websocket_protocols",
    "websocket_extensions",
    "_wskey",
)
# What an open, idle Autobahn server socket holds in attributes it sets on every connection
# (in ``_connectionMade`` and the handshake), before anything reads them. As class attributes
# of the protocol class they let an open socket keep these out of its own ``__dict__``.
OPEN_SOCKET_DEFAULTS: dict[str, Any] = {
    "state": WebSocketProtocol.STATE_OPEN,
    "send_state": WebSocketProtocol.SEND_STATE_GROUND,
    "data": b"",
    "triggered": False,
    "inside_message": False,
    "wasMaxFramePayloadSizeExceeded": False,
    "wasMaxMessagePayloadSizeExceeded": False,
    "closedByMe": False,
    "failedByMe": False,
    "droppedByMe": False,
    "wasClean": False,
    "wasNotCleanReason": None,
    "wasServerConnectionDropTimeout": False,
    "wasOpenHandshakeTimeout": False,
    "wasCloseHandshakeTimeout": False,
    "wasServingFlashSocketPolicyFile": False,
    "localCloseCode": None,
    "localCloseReason": None,
    "remoteCloseCode": None,
    "remoteCloseReason": None,
    "openHandshakeTimeoutCall": None,
    "closeHandshakeTimeoutCall": None,
    "autoPingTimeoutCall": None,
    "autoPingPending": None,
    "autoPingPendingSent": None,
    "trackedTimings": None,
    "current_frame": None,
    "current_frame_masker": None,
    "control_frame_data": None,
    "_perMessageCompress": None,
    "websocket_version": 13,
    "websocket_protocol_in_use": None,
    **dict.fromkeys(HANDSHAKE_ATTRIBUTES),
}


def take_over(transport: Any, protocol: Any) -> None:
    """Route what ``transport`` receives to ``protocol`` from now on (a WebSocket taking
    over an HTTP connection); a wrapped transport (TLS, the per-address limit) keeps its
    wrapper. The caller then calls ``protocol.makeConnection(transport)``."""
    if isinstance(transport, ProtocolWrapper):
        transport.wrappedProtocol = protocol
    elif isinstance(getattr(transport, "protocol", None), ProtocolWrapper):
        transport.protocol.wrappedProtocol = protocol
    else:
        transport.protocol = protocol


def reactor_loop(reactor: Any) -> asyncio.AbstractEventLoop | None:
    """The asyncio loop an ``asyncioreactor`` runs on (None for any other reactor)."""
    return getattr(reactor, "_asyncioEventloop", None)


def is_aborting(connection: tcp.Connection) -> bool:
    """Whether ``abortConnection`` was called on the connection."""
    return connection._aborting


def has_pending_writes(connection: tcp.Connection) -> bool:
    """Whether bytes written to the connection are still waiting to go out."""
    return bool(connection.dataBuffer or connection._tempDataBuffer)


def drop(connection: tcp.Connection, why: Any) -> None:
    """End a connection whose write failed, as the reactor's own write callback does."""
    connection.reactor._disconnectSelectable(connection, why, False)


def watch_reads(selectable: Any) -> None:
    """What ``reactor.addReader(selectable)`` does on the asyncio reactor, with the reactor's
    own read callback (``_readOrWrite``: a failing ``doRead`` is logged and loses the
    connection) given to the loop directly instead of through ``log.callWithLogger``, which
    looks up a log prefix and pushes a legacy log context on every read. The reactor still
    lists the selectable among its readers (``removeReader``, ``removeAll``, ``getReaders``).
    Any other reactor: its own ``addReader``."""
    reactor = selectable.reactor
    loop = reactor_loop(reactor)
    if loop is None:
        reactor.addReader(selectable)
        return
    readers = reactor._readers
    if selectable in readers:
        return
    fd = selectable.fileno()
    loop.add_reader(fd, reactor._readOrWrite, selectable, True)
    readers[selectable] = fd


def port_from_descriptor(
    port_class: type[tcp.Port], reactor: Any, fd: int, family: int, factory: Any
) -> tcp.Port:
    """A ``port_class`` on an already listening socket (what ``adoptStreamPort`` builds)."""
    return port_class._fromListeningDescriptor(reactor, fd, family, factory)


class SendQueue(list):
    """Autobahn's send queue (``append``, ``popleft``, ``len``) on a list: an empty deque
    allocates a block of 64 slots (~600 bytes), an empty list nothing. It holds only what
    Autobahn queues for chopped or synchronous sends, so ``popleft`` stays short."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


def light_send_queue(sock: Any) -> None:
    """Give an Autobahn socket whose send queue is empty a ``SendQueue`` instead."""
    if not sock.send_queue:
        sock.send_queue = SendQueue()


def tcp_connection(transport: Any) -> tcp.Connection | None:
    """The TCP (or Unix) connection under a transport, through any ``ProtocolWrapper`` (TLS,
    the per-address limit); None for anything else."""
    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    return transport if isinstance(transport, tcp.Connection) else None


def forget_last_frame(sock: Any) -> None:
    """Let go of the unmasker of an Autobahn socket's last frame when no frame is being read
    (Autobahn makes a new one for each frame's header)."""
    if sock.current_frame is None:
        sock.current_frame_masker = None


def compresses(sock: Any) -> bool:
    """Whether an Autobahn socket negotiated per-message compression."""
    return sock._perMessageCompress is not None


# -- the TCP transport -----------------------------------------------------------------------


class Server(tcp.Server):
    """An accepted TCP connection whose writes are flushed at the end of the loop turn, and
    whose reads skip the reactor's per-read log context (``watch_reads``)."""

    _flush_pending = False
    _watching = False

    def startReading(self) -> None:
        watch_reads(self)

    def startWriting(self) -> None:
        """Flush at the end of this loop turn, unless the socket is already watched."""
        if self._flush_pending or self._watching:
            return
        self._flush_pending = True
        asyncio.get_running_loop().call_soon(self._flush)

    def stopWriting(self) -> None:
        """Stop watching for writability, if the socket was watched: Twisted's ``doWrite``
        calls this after each flush that empties the buffer, which is nearly every flush."""
        if self._watching:
            self._watching = False
            tcp.Server.stopWriting(self)

    def _flush(self) -> None:
        """Send the buffer; what the kernel did not take waits for the socket to be writable.

        Failures end the connection as they would from the reactor's own write callback."""
        self._flush_pending = False
        if not self.connected or is_aborting(self):
            return
        if self.fileno() == -1:
            return
        try:
            why: Any = self.doWrite()
        except Exception as exc:
            why = exc
        if why:
            drop(self, why)
        elif has_pending_writes(self):
            self._watching = True
            tcp.Server.startWriting(self)


class Port(tcp.Port):
    """A listening TCP port whose connections use ``Server``."""

    transport = Server


def listen_tcp(reactor: Any, port: int, factory: Any, backlog: int, interface: str) -> Port:
    """What ``reactor.listenTCP`` does, with ``Port``."""
    listening = Port(port, factory, backlog, interface, reactor)
    listening.startListening()
    return listening


def adopt_tcp(reactor: Any, fd: int, family: int, factory: Any) -> Port:
    """What ``reactor.adoptStreamPort`` does for a listening TCP socket, with ``Port``."""
    listening = port_from_descriptor(Port, reactor, fd, family, factory)
    listening.startListening()
    return listening
