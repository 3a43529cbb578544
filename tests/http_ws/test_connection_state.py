"""What a connection keeps once it no longer needs it: the HTTP channel of a WebSocket
handoff, Autobahn's per-connection copies of the factory's options, and the handshake of an
open socket. Driven through Twisted's StringTransport, no sockets."""

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from switchroom.layers import get_layer
from switchroom.servers.http_ws.http import HttpFactory
from switchroom.servers.http_ws.server import HttpServer
from switchroom.servers.http_ws.settings import Settings
from switchroom.servers.http_ws.websocket import LayerSocket, SocketFactory


async def test_a_request_line_disarms_the_connection_start_check():
    """The start check holds its channel; once a request line arrived it is cancelled, so a
    connection handed to a WebSocket does not keep its HTTP channel for ``read_timeout``."""
    layer = get_layer("memory://")
    server = HttpServer(layer)
    try:
        protocol = HttpFactory(server).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(StringTransport())
        channel = protocol._channel
        assert channel.start_check.active()
        protocol.dataReceived(b"GET /slow HTTP/1.1\r\n")
        assert not channel.start_check.active()
        protocol.connectionLost(None)
    finally:
        await layer.close()


async def test_socket_options_live_on_the_factory_protocol_class():
    """Autobahn copies each protocol option into every connection unless the protocol class
    has it; the factory's own class carries them, so a connection holds none of them."""
    layer = get_layer("memory://")
    settings = Settings(max_frame_size=12345)
    try:
        factory = SocketFactory(HttpServer(layer, settings))
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
        factory = SocketFactory(HttpServer(layer))
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
