"""``--max-connections-per-ip``: a real ``switchroom http`` and real sockets from one
address; HTTP keep-alive connections and WebSockets share the count, the next connection
gets 503, slots come back when connections close, and a flood is closed at once."""

import asyncio
import time

import httpx
import pytest
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from websockets.asyncio.client import connect

from switchroom.layers import get_layer
from switchroom.servers.http_ws.limits import CountedConnection, PerClientLimit, Refusal

from .harness import ServerProcess
from .responder import Responder

pytestmark = pytest.mark.slow

LIMIT = 3


@pytest.fixture(scope="module")
def server(redis_server):
    proc = ServerProcess(
        redis_server.url, "--max-connections-per-ip", str(LIMIT), "--retry-after", "7", "--log-level", "info"
    )
    yield proc
    proc.stop()


@pytest.fixture
async def responder(server):
    layer = get_layer(server.layer_url)
    worker = Responder(layer).start()
    yield worker
    await worker.stop()
    await layer.flush()
    await layer.close()


async def open_connections(server: ServerProcess, count: int) -> list[asyncio.StreamWriter]:
    """``count`` idle TCP connections, each holding a slot until closed."""
    writers = []
    for _ in range(count):
        writers.append((await asyncio.open_connection("127.0.0.1", server.port))[1])
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


async def request_on_a_new_connection(server: ServerProcess) -> bytes:
    """Everything the server sends to one fresh connection asking for /hello."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def served_again(server: ServerProcess, timeout: float = 3) -> float:
    """Seconds until a fresh connection is served 200 again."""
    started = time.monotonic()
    while not (await request_on_a_new_connection(server)).startswith(b"HTTP/1.1 200"):
        assert time.monotonic() - started < timeout, "the slot never came back"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_one_connection_over_the_limit_gets_503_and_a_closed_slot_comes_back(server, responder):
    held = await open_connections(server, LIMIT)
    try:
        started = time.monotonic()
        answer = await request_on_a_new_connection(server)
        took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
        assert b"\r\nRetry-After: 7\r\n" in answer and b"\r\nConnection: close\r\n" in answer
        assert answer.endswith(b"too many connections from your address\n")
        assert took < 0.5, "the refusal must not wait for anything"
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            await close_all(held[:1])
            back = await served_again(server)
            # The keep-alive connection below takes the free slot: the next one is refused.
            assert (await client.get("/hello")).text == "Hello, world!"
            assert (await request_on_a_new_connection(server)).startswith(b"HTTP/1.1 503")
            assert (await client.get("/hello")).status_code == 200
    finally:
        await close_all(held)
    assert back < 1
    server.wait_for_log("503 over 3 connections from this address")


async def test_websockets_hold_slots_and_give_them_back(server, responder):
    sockets = [await connect(f"{server.ws_url}/ws/echo") for _ in range(LIMIT)]
    try:
        await sockets[0].send("hi")
        assert await sockets[0].recv() == "1:hi"
        assert (await request_on_a_new_connection(server)).startswith(b"HTTP/1.1 503")
        await sockets.pop().close()
        await served_again(server)
        sockets.append(await connect(f"{server.ws_url}/ws/echo"))
        await sockets[-1].send("again")
        assert await sockets[-1].recv() == "1:again"
    finally:
        for sock in sockets:
            await sock.close()
    await served_again(server)


async def test_a_flood_from_one_address_is_closed_at_once_and_the_server_keeps_serving(server, responder):
    held = await open_connections(server, LIMIT)
    flood = []
    try:
        for _ in range(30):
            flood.append(await asyncio.open_connection("127.0.0.1", server.port))
        answers = []
        for reader, _ in flood:
            try:
                answers.append(await asyncio.wait_for(reader.read(), 5))
            except ConnectionResetError:
                answers.append(b"")
    finally:
        await close_all([writer for _, writer in flood])
        await close_all(held)
    refused = sum(a.startswith(b"HTTP/1.1 503") for a in answers)
    closed = sum(a == b"" for a in answers)
    assert (refused, closed) == (LIMIT, 30 - LIMIT), answers
    await served_again(server)


async def test_each_address_is_counted_on_its_own_and_unix_sockets_not_at_all():
    limit = PerClientLimit(Factory.forProtocol(Protocol), 2, 5, log_refusals=False)

    def arrive(host: str) -> tuple[Protocol | None, StringTransport]:
        address = IPv4Address("TCP", host, 40000)
        protocol = limit.buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        if protocol is not None:
            protocol.makeConnection(transport)
        return protocol, transport

    first, _ = arrive("10.0.0.1")
    second, _ = arrive("10.0.0.1")
    refused, answer = arrive("10.0.0.1")
    other, _ = arrive("10.0.0.2")
    assert isinstance(first, CountedConnection) and isinstance(second, CountedConnection)
    assert isinstance(refused, Refusal) and answer.value().startswith(b"HTTP/1.1 503")
    assert isinstance(other, CountedConnection)
    assert arrive("10.0.0.1")[0] is not None and arrive("10.0.0.1")[0] is None
    first.connectionLost(Failure(ConnectionDone()))
    assert isinstance(arrive("10.0.0.1")[0], CountedConnection)
    assert not isinstance(limit.buildProtocol(UNIXAddress(b"/run/switchroom.sock")), CountedConnection)
    assert limit.open == {"10.0.0.1": 2, "10.0.0.2": 1} and limit.refusing == {"10.0.0.1": 2}
