"""The parts of Twisted's and Autobahn's private API the HTTP/WebSocket server relies on,
in one place.

Twisted has no public way to give an accepted connection to another protocol (its ticket
3204), to ask which asyncio loop its reactor runs on, or to end a connection from outside
the reactor's write callback; ``transport.py`` also reads the TCP transport's pending
buffers and builds a port from a listening descriptor. Autobahn says whether a socket
compresses only through an attribute. Each is named here for the versions ``SUPPORTED``
and ``AUTOBAHN_SUPPORTED`` say (and setup.cfg admits); ``tests/test_compat.py`` checks them
against the installed releases, so an upgrade that moves one fails there, not on a socket.
"""

import asyncio
from typing import Any

from twisted.internet import tcp
from twisted.protocols.policies import ProtocolWrapper

# Twisted releases whose private API matches: >= 23.10, < 27.
SUPPORTED = ((23, 10), (27,))
# Autobahn releases whose private API matches: >= 23.6, < 27.
AUTOBAHN_SUPPORTED = ((23, 6), (27,))
# Attributes of an accepted TCP connection (``tcp.Server``) that ``transport.py`` reads.
TRANSPORT_ATTRIBUTES = ("_aborting", "_tempDataBuffer", "dataBuffer", "protocol")
# Attributes of an Autobahn protocol read by ``websocket.py``.
SOCKET_ATTRIBUTES = ("_perMessageCompress", "send_queue")


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


def port_from_descriptor(
    port_class: type[tcp.Port], reactor: Any, fd: int, family: int, factory: Any
) -> tcp.Port:
    """A ``port_class`` on an already listening socket (what ``adoptStreamPort`` builds)."""
    return port_class._fromListeningDescriptor(reactor, fd, family, factory)


def compresses(sock: Any) -> bool:
    """Whether an Autobahn socket negotiated per-message compression."""
    return sock._perMessageCompress is not None
