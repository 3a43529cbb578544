"""A TCP transport that sends what one loop turn wrote at the end of that turn.

Twisted's transport asks the loop to watch its socket for writability whenever something is
written, and stops watching once the buffer is empty: for a small HTTP response that is two
``epoll_ctl`` calls and one more wake-up of the loop. This one instead sends at the end of
the current loop turn (so a response's headers and body still go out in one ``send``), and
watches the socket, the usual way, only when the kernel did not take everything.
"""

import asyncio
from typing import Any

from twisted.internet import tcp

from . import twisted_compat


class Server(tcp.Server):
    """An accepted TCP connection whose writes are flushed at the end of the loop turn."""

    _flush_pending = False
    _watching = False

    def startWriting(self) -> None:
        """Flush at the end of this loop turn, unless the socket is already watched."""
        if self._flush_pending or self._watching:
            return
        self._flush_pending = True
        asyncio.get_running_loop().call_soon(self._flush)

    def stopWriting(self) -> None:
        self._watching = False
        tcp.Server.stopWriting(self)

    def _flush(self) -> None:
        """Send the buffer; what the kernel did not take waits for the socket to be writable.

        Failures end the connection as they would from the reactor's own write callback."""
        self._flush_pending = False
        if not self.connected or twisted_compat.is_aborting(self):
            return
        if self.fileno() == -1:
            return
        try:
            why: Any = self.doWrite()
        except Exception as exc:
            why = exc
        if why:
            twisted_compat.drop(self, why)
        elif twisted_compat.has_pending_writes(self):
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
    listening = twisted_compat.port_from_descriptor(Port, reactor, fd, family, factory)
    listening.startListening()
    return listening
