"""A bound on simultaneous connections from one client IP address.

``PerClientLimit`` wraps the HTTP factory (Twisted's ``WrappingFactory``), so it counts
every TCP connection, HTTP and WebSocket alike: a connection Autobahn takes over keeps
its wrapper, and its slot comes back when it closes however it ended.
"""

import asyncio
import logging
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from switchroom.shared import metrics

from .http import linger_close

access_log = logging.getLogger("switchroom.http.access")


class CountedConnection(ProtocolWrapper):
    """A connection within its address's limit; gives its slot back when it closes."""

    factory: "PerClientLimit"

    def __init__(self, factory: "PerClientLimit", wrapped: Any, host: str) -> None:
        super().__init__(factory, wrapped)
        self.host = host

    def connectionLost(self, reason: Any) -> None:
        self.factory.release(self.factory.open, self.host)
        super().connectionLost(reason)


class Refusal(Protocol):
    """A connection over its address's limit: 503 with Retry-After, then closed."""

    def __init__(self, factory: "PerClientLimit", host: str) -> None:
        self.factory = factory
        self.host = host
        self.timer: asyncio.TimerHandle | None = None

    def connectionMade(self) -> None:
        metrics.HTTP_REQUESTS.labels("503").inc()
        metrics.HTTP_UNAVAILABLE.labels("client_limit").inc()
        body = b"too many connections from your address\n"
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (self.factory.retry_after, len(body), body)
        )
        self.timer = linger_close(self.transport)

    def dataReceived(self, data: bytes) -> None:
        """Whatever the client sends is read and dropped."""

    def connectionLost(self, reason: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.factory.release(self.factory.refusing, self.host)


class PerClientLimit(WrappingFactory):
    """Lets each client IP hold at most ``limit`` connections; refuses the next with 503.

    Refusals linger for up to ``LINGER`` seconds so the answer arrives; an address that
    also has ``limit`` refusals in progress (a flood) has further connections closed at
    once, so one address never holds more than twice ``limit`` sockets. Connections
    without an IP address (Unix sockets) are not counted.
    """

    def __init__(self, wrapped: Factory, limit: int, retry_after: int, log_refusals: bool) -> None:
        super().__init__(wrapped)
        self.limit = limit
        self.retry_after = retry_after
        self.log_refusals = log_refusals
        self.open: dict[str, int] = {}
        self.refusing: dict[str, int] = {}

    def buildProtocol(self, addr: Any) -> Protocol | None:
        host = getattr(addr, "host", None)
        if host is None:
            return self.wrappedFactory.buildProtocol(addr)
        if self.open.get(host, 0) < self.limit:
            wrapped = self.wrappedFactory.buildProtocol(addr)
            if wrapped is None:
                return None
            self.open[host] = self.open.get(host, 0) + 1
            return CountedConnection(self, wrapped, host)
        if self.refusing.get(host, 0) >= self.limit:
            return None
        self.refusing[host] = self.refusing.get(host, 0) + 1
        if self.log_refusals:
            access_log.info("%s:%s - 503 over %d connections from this address", host, addr.port, self.limit)
        return Refusal(self, host)

    @staticmethod
    def release(counts: dict[str, int], host: str) -> None:
        """One connection of ``host`` fewer in ``counts``; addresses at zero are forgotten."""
        left = counts[host] - 1
        if left:
            counts[host] = left
        else:
            del counts[host]
