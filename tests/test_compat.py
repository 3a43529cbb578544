"""The private APIs of our dependencies, named in one compatibility module each, exist in
the installed versions, and those versions are the ones the modules and setup.cfg admit."""

import asyncio
import configparser
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import redis.asyncio
from aiosmtpd.smtp import SMTP
from autobahn.websocket import protocol as autobahn_protocol
from packaging.requirements import Requirement
from slack_sdk.rtm_v2 import RTMClient

from switchroom.layers import rediscall
from switchroom.servers.email import aiosmtpd_compat
from switchroom.servers.http_ws import twisted_compat
from switchroom.servers.slack import slack_sdk_compat

SETUP = Path(__file__).resolve().parents[1] / "setup.cfg"


def release(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version(name).split(".")[:3] if part.isdigit())


def requirement(name: str) -> Requirement:
    config = configparser.ConfigParser()
    config.read(SETUP)
    for line in config["options"]["install_requires"].split("\n"):
        if line.strip() and Requirement(line.strip()).name == name:
            return Requirement(line.strip())
    raise AssertionError(f"{name} is not in setup.cfg")


@pytest.mark.parametrize(
    "name, supported",
    [
        ("aiosmtpd", aiosmtpd_compat.SUPPORTED),
        ("slack-sdk", slack_sdk_compat.SUPPORTED),
        ("twisted", twisted_compat.SUPPORTED),
        ("autobahn", twisted_compat.AUTOBAHN_SUPPORTED),
        ("redis", rediscall.SUPPORTED),
    ],
)
def test_the_installed_version_is_the_one_the_module_supports_and_setup_cfg_bounds(name, supported):
    low, high = supported
    assert low <= release(name) < high
    bounds = requirement(name).specifier
    assert version(name) in bounds
    assert ".".join(map(str, high)) not in bounds, "setup.cfg admits a release the module does not support"


async def test_aiosmtpd_has_what_the_inbound_server_uses():
    for name in aiosmtpd_compat.METHODS:
        assert callable(getattr(SMTP, name, None)), name
    session = SMTP(handler=object())
    transport = _Transport()
    session.connection_made(transport)
    try:
        for name in aiosmtpd_compat.SESSION_ATTRIBUTES:
            assert getattr(session, name, None) is not None, name
        assert isinstance(aiosmtpd_compat.reader(session), asyncio.StreamReader)
        assert aiosmtpd_compat.parse_address(session, "<a@b.example>")[0] == "a@b.example"
    finally:
        session.connection_lost(None)
        await asyncio.sleep(0)


def test_slack_sdks_rtm_client_has_what_stopping_it_uses():
    client = RTMClient(token="xoxb-not-used", auto_reconnect_enabled=False)
    for name in slack_sdk_compat.RTM_ATTRIBUTES:
        assert hasattr(client, name), name


async def test_twisted_and_autobahn_have_what_the_http_server_uses():
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet import asyncioreactor, tcp
    from twisted.internet.testing import StringTransport
    from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

    assert callable(getattr(tcp.Port, "_fromListeningDescriptor", None))
    assert "_asyncioEventloop" in asyncioreactor.AsyncioSelectorReactor.__init__.__code__.co_names
    # What ``watch_reads`` does in the reactor's place: its read callback and its list of readers.
    assert "_readers" in asyncioreactor.AsyncioSelectorReactor.__init__.__code__.co_names
    assert callable(getattr(asyncioreactor.AsyncioSelectorReactor, "_readOrWrite", None))
    connection = tcp.Server(_Socket(), _Protocol(), ("127.0.0.1", 1), None, 1, _Reactor())
    for name in twisted_compat.TRANSPORT_ATTRIBUTES:
        assert hasattr(connection, name), name
    assert not twisted_compat.is_aborting(connection)
    assert not twisted_compat.has_pending_writes(connection)
    assert callable(getattr(asyncioreactor.AsyncioSelectorReactor, "_disconnectSelectable", None))
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    sock = factory.buildProtocol(None)
    sock.makeConnection(StringTransport())
    for name in twisted_compat.SOCKET_ATTRIBUTES:
        assert hasattr(sock, name), name
    assert not twisted_compat.compresses(sock)
    # Each attribute an open socket may leave to its class is one Autobahn still sets.
    source = inspect.getsource(autobahn_protocol)
    for name in twisted_compat.OPEN_SOCKET_DEFAULTS:
        assert re.search(rf"self\.{name}\s*[=:,]", source), name
    assert callable(getattr(sock, "onAutoPong", None))
    sock.current_frame, sock.current_frame_masker = None, object()
    twisted_compat.forget_last_frame(sock)
    assert sock.current_frame_masker is None
    taker = _Protocol()
    twisted_compat.take_over(connection, taker)
    assert connection.protocol is taker
    wrapper = ProtocolWrapper(WrappingFactory(None), _Protocol())
    twisted_compat.take_over(wrapper, taker)
    assert wrapper.wrappedProtocol is taker
    wrapper.makeConnection(connection)
    assert twisted_compat.tcp_connection(wrapper) is connection
    assert twisted_compat.tcp_connection(StringTransport()) is None


class _Socket:
    """Enough of a socket for a Twisted TCP connection to be built on."""

    def setblocking(self, flag):
        pass

    def fileno(self):
        return -1


class _Protocol:
    def makeConnection(self, transport):
        pass


class _Reactor:
    """A reactor with the method ``twisted_compat.drop`` calls (and readers ignored)."""

    def addReader(self, reader):
        pass

    def _disconnectSelectable(self, selectable, why, is_read):
        pass


class _Transport(asyncio.Transport):
    """Enough of a transport for an SMTP session to start on."""

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 2525) if name == "peername" else default

    def write(self, data):
        pass

    def is_closing(self):
        return False

    def close(self):
        pass


def test_redis_connections_have_what_the_layers_hot_path_uses():
    pool = redis.asyncio.ConnectionPool()
    conn = pool.make_connection()
    for name in ("_writer", "_parser", "next_health_check"):
        assert hasattr(conn, name), name
    assert callable(conn.check_health)
    assert callable(conn._parser.read_response)
