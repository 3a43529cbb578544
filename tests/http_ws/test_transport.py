"""The HTTP server's TCP transport: what one loop turn writes goes out in one send at the
end of the turn without asking the loop to watch the socket; only what the kernel does not
take waits for writability; closing still flushes first; reads keep the reactor's error
handling. A real socket pair, and a reactor stand-in that records what the transport asks
of it (or a real asyncio reactor, not installed, where reads are tested)."""

import asyncio
import socket

from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.internet.protocol import Protocol
from twisted.logger import globalLogPublisher

from switchroom.servers.http_ws.twisted_compat import Server


class Reactor:
    """Records the reactor calls a transport makes (no Twisted reactor runs in the tests)."""

    def __init__(self) -> None:
        self.writers: list[object] = []
        self.added = 0
        self.disconnected: list[object] = []

    def addReader(self, reader: object) -> None:
        pass

    def removeReader(self, reader: object) -> None:
        pass

    def addWriter(self, writer: object) -> None:
        self.added += 1
        if writer not in self.writers:
            self.writers.append(writer)

    def removeWriter(self, writer: object) -> None:
        if writer in self.writers:
            self.writers.remove(writer)

    def _disconnectSelectable(self, selectable: object, why: object, is_read: bool) -> None:
        self.disconnected.append(why)


def transport_pair() -> tuple[Server, socket.socket, Reactor]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    reactor = Reactor()
    server = Server(ours, Protocol(), ("127.0.0.1", 1), None, 1, reactor)
    return server, peer, reactor


async def test_one_turn_of_writes_goes_out_at_its_end_without_watching_the_socket():
    transport, peer, reactor = transport_pair()
    try:
        transport.writeSequence([b"HTTP/1.1 200 OK\r\n", b"content-length: 5\r\n\r\n"])
        transport.write(b"hello")
        peer.setblocking(False)
        assert _read(peer) == b""
        await asyncio.sleep(0)
        assert _read(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
        assert reactor.added == 0 and reactor.writers == []
    finally:
        peer.close()
        transport.socket.close()


async def test_what_the_kernel_does_not_take_waits_for_writability():
    transport, peer, reactor = transport_pair()
    try:
        transport.write(b"x" * 8_000_000)
        await asyncio.sleep(0)
        assert reactor.writers == [transport]
        peer.setblocking(False)
        got = len(_read(peer))
        assert 0 < got < 8_000_000
        while transport in reactor.writers:
            transport.doWrite()
            got += len(_read(peer))
        assert got + len(_read(peer)) == 8_000_000
    finally:
        peer.close()
        transport.socket.close()


async def test_closing_flushes_then_disconnects():
    transport, peer, reactor = transport_pair()
    try:
        transport.write(b"bye")
        transport.loseConnection()
        await asyncio.sleep(0)
        peer.setblocking(False)
        assert _read(peer) == b"bye"
        assert len(reactor.disconnected) == 1
    finally:
        peer.close()
        transport.socket.close()


class Failing(Protocol):
    """A protocol whose ``dataReceived`` raises; remembers why its connection was lost."""

    lost = None

    def dataReceived(self, data: bytes) -> None:
        raise RuntimeError("a bug in the protocol")

    def connectionLost(self, reason: object) -> None:
        self.lost = reason


async def test_a_failing_read_still_loses_the_connection_and_is_logged():
    """Reads go to the reactor's own read callback (without its per-read log context): an
    exception in ``dataReceived`` is logged and ends the connection, as Twisted's does."""
    reactor = AsyncioSelectorReactor(asyncio.get_running_loop())
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    protocol = Failing()
    transport = Server(ours, protocol, ("127.0.0.1", 1), None, 1, reactor)
    protocol.makeConnection(transport)
    try:
        assert transport in reactor.getReaders()
        peer.sendall(b"boom")
        for _ in range(100):
            if protocol.lost is not None:
                break
            await asyncio.sleep(0.01)
        assert protocol.lost is not None and protocol.lost.check(RuntimeError)
        assert transport not in reactor.getReaders()
        assert any(e.get("log_failure") and e["log_failure"].check(RuntimeError) for e in events)
    finally:
        globalLogPublisher.removeObserver(events.append)
        reactor.removeReader(reactor.waker)
        reactor.waker.connectionLost(None)
        peer.close()
        ours.close()


def _read(sock: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data
