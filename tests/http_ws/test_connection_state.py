"""A connection's state: the HTTP driver's timers and its line of pipelined requests, and
what a connection keeps once it no longer needs it (Autobahn's per-connection copies of
the factory's options, the handshake of an open socket). Driven through Twisted's
StringTransport on the memory layer, no sockets."""

import asyncio

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from switchroom.layers import get_layer
from switchroom.servers.http_ws import twisted_compat
from switchroom.servers.http_ws.http import HttpConnection, HttpFactory
from switchroom.servers.http_ws.server import HttpServer
from switchroom.servers.http_ws.settings import Settings
from switchroom.servers.http_ws.websocket import LayerSocket, SocketFactory
from switchroom.shared.messages import WEBSOCKET_CONNECT, WEBSOCKET_DISCONNECT, WEBSOCKET_RECEIVE


@pytest.fixture
async def server():
    """A server (not listening) with its inbox started, on the memory layer."""
    layer = get_layer("memory://")
    served = HttpServer(layer)
    await served.inbox.start()
    yield served
    await served.inbox.close()
    await layer.close()


def http_connection(server: HttpServer, port: int = 40000) -> tuple[HttpConnection, StringTransport]:
    """A connection of ``server`` on a StringTransport, handed the server's services."""
    services = server.http_services(SocketFactory(server.socket_services()))
    connection = HttpFactory(services).buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
    transport = StringTransport()
    connection.makeConnection(transport)
    return connection, transport


async def test_a_request_line_disarms_the_connection_start_check(server):
    """A connection that begins no request in ``read_timeout`` is dropped; once a request
    began that check is cancelled (the request's own read timeout takes over)."""
    connection, _ = http_connection(server)
    assert connection.timeout.action == connection.never_started
    connection.dataReceived(b"GET /sl")
    assert connection.timeout.action == connection.read_timed_out
    connection.connectionLost(None)
    assert not connection.timeout.active() and not server.connections and len(server.deadlines) == 0


async def test_pipelined_requests_are_answered_one_at_a_time_in_order(server):
    """The second request of one write goes to a worker only once the first is answered."""
    connection, transport = http_connection(server)
    connection.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    first = (await server.layer.receive(["http.request"]))[1]
    assert first["path"] == "/1"
    assert server.in_flight == {connection} and len(connection.line) == 2
    connection.on_reply({"status": 200, "content": b"one", "more_content": True})
    connection.on_reply({"content": b"", "more_content": False})
    second = (await server.layer.receive(["http.request"]))[1]
    assert (second["path"], second["method"]) == ("/2", "HEAD")
    connection.on_reply({"status": 200, "headers": [[b"content-length", b"3"]], "content": b"two"})
    assert transport.value() == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"
    )
    assert not server.in_flight and not connection.line
    assert connection.timeout.action == connection.idle_timed_out
    assert not transport.disconnecting


async def test_expect_100_continue_is_answered_before_the_body(server):
    connection, transport = http_connection(server)
    connection.dataReceived(
        b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    connection.dataReceived(b"hi")
    assert (await server.layer.receive(["http.request"]))[1]["body"] == b"hi"
    connection.connectionLost(None)


async def test_a_refused_pipelined_request_waits_for_the_answer_before_it(server):
    """A limit broken by the second request is answered after the first, then the connection closes."""
    server.settings.max_body_size = 10
    connection, transport = http_connection(server)
    connection.dataReceived(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"
    )
    await server.layer.receive(["http.request"])
    assert transport.value() == b"" and not transport.disconnecting
    connection.on_reply({"status": 204})
    answer = transport.value()
    assert answer.startswith(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 413 "), answer
    assert transport.disconnecting


async def test_socket_options_live_on_the_factory_protocol_class():
    """Autobahn copies each protocol option into every connection unless the protocol class
    has it; the factory's own class carries them, so a connection holds none of them."""
    layer = get_layer("memory://")
    settings = Settings(max_frame_size=12345)
    try:
        factory = SocketFactory(HttpServer(layer, settings).socket_services())
        sock = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
        sock.makeConnection(StringTransport())
        assert isinstance(sock, LayerSocket)
        assert not [name for name in LayerSocket.CONFIG_ATTRS if name in vars(sock)]
        assert sock.maxFramePayloadSize == 12345
        assert sock.perMessageCompressionAccept([]) is None
    finally:
        await layer.close()


async def test_an_open_socket_lets_go_of_its_handshake():
    layer = get_layer("memory://")
    try:
        factory = SocketFactory(HttpServer(layer).socket_services())
        sock = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40002))
        transport = StringTransport()
        sock.makeConnection(transport)
        transport.registerProducer(object(), True)  # the HTTP channel's, as after a handoff
        sock.http_request_data = b"GET /idle HTTP/1.1\r\n" + b"x-pad: y\r\n" * 20
        sock.http_headers = {"host": "127.0.0.1"}
        sock.onOpen()
        assert sock.socket_open
        assert sock.http_request_data is None and sock.http_headers is None
    finally:
        await layer.close()


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame as a client sends it (payloads under 126 bytes)."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def open_socket(server: HttpServer) -> tuple[LayerSocket, StringTransport]:
    """A WebSocket handed over from an HTTP connection and accepted by the worker."""
    connection, transport = http_connection(server, 40003)
    transport.registerProducer(connection, True)  # as the server's TCP transport has it
    connection.dataReceived(
        b"GET /idle HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    connect = (await server.layer.receive([WEBSOCKET_CONNECT]))[1]
    sock = server.sockets[connect["reply_channel"]]
    sock.on_reply({"accept": True})
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    transport.clear()
    return sock, transport


async def test_an_idle_socket_keeps_only_what_differs_from_its_class(server):
    """An open socket's own dict holds what is its own (a few dozen attributes of Autobahn's
    and ours sit at their class default), also after a keepalive round trip; and the socket
    still works: frames both ways, the close handshake."""
    sock, transport = await open_socket(server)
    own = vars(sock)
    assert not [name for name in twisted_compat.OPEN_SOCKET_DEFAULTS if name in own]
    assert len(own) <= 21, sorted(own)  # the size of dict CPython builds for 21 keys or fewer
    assert isinstance(sock.send_queue, twisted_compat.SendQueue)
    peer = transport.getPeer()
    assert sock.state == sock.STATE_OPEN and sock.info == {}
    assert sock.client_text() == f"{peer.host}:{peer.port}"

    sock._sendAutoPing()
    ping = transport.value()
    assert ping[0] == 0x89 and len(vars(sock)) > 21
    transport.clear()
    sock.dataReceived(client_frame(0xA, ping[2:]))
    await asyncio.sleep(0)
    assert sock.autoPingPending is None and sock.current_frame_masker is None
    assert len(vars(sock)) <= 21, sorted(vars(sock))

    sock.dataReceived(client_frame(0x1, b"hi"))
    received = (await server.layer.receive([WEBSOCKET_RECEIVE]))[1]
    assert received["text"] == "hi"
    sock.on_reply({"text": "yo"})
    assert transport.value() == b"\x81\x02yo"
    transport.clear()

    sock.dataReceived(client_frame(0x8, b"\x03\xe8"))
    assert transport.value().startswith(b"\x88\x02\x03\xe8")
    sock.connectionLost(Failure(ConnectionDone()))
    disconnect = (await server.layer.receive([WEBSOCKET_DISCONNECT]))[1]
    assert disconnect["code"] == 1000
