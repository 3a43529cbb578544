"""The HTTP server's own path per request, in one process on the in-memory layer: GET /hello
requests fed to real ``HttpConnection``s (on Twisted's ``StringTransport``, no sockets), each
answered by a stand-in worker that takes ``http.request`` from the layer and sends a fixed
hello reply to its reply channel. What is left is the server's code (reader, translation,
timeouts, inbox, reply, access counters), the layer's send and the inbox's read; no worker
code, no socket, no other process, so the count does not depend on how processes interleave.

    python -m bench.http_server_path 20000     # CPU µs per request (process time)

Under ``valgrind --tool=callgrind`` the instructions per request are the difference of two
runs divided by the difference of their counts (start-up cancels out):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.http_server_path 500       # and again with 2500
"""

import argparse
import asyncio
import gc
import time

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from switchroom.layers import MemoryLayer
from switchroom.servers.http_ws.http import HttpFactory
from switchroom.servers.http_ws.server import HttpServer
from switchroom.servers.http_ws.settings import Settings
from switchroom.servers.http_ws.websocket import SocketFactory

CONNECTIONS = 32
REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
REPLY = {
    "status": 200,
    "headers": [[b"content-type", b"text/plain"], [b"content-length", b"14"]],
    "content": b"Hello, world!\n",
    "more_content": False,
}


async def stand_in_worker(layer: MemoryLayer) -> None:
    """Answer every ``http.request`` with ``REPLY``, as a worker's hello route would."""
    while True:
        _, message = await layer.receive(["http.request"])
        await layer.send(message["reply_channel"], REPLY)


async def run(count: int) -> float:
    """Serve ``count`` requests over ``CONNECTIONS`` keep-alive connections; CPU s per request."""
    layer = MemoryLayer()
    server = HttpServer(layer, Settings(access_log=False))
    await server.inbox.start()
    worker = asyncio.get_running_loop().create_task(stand_in_worker(layer))
    factory = HttpFactory(server.http_services(SocketFactory(server.socket_services())))
    connections = []
    for i in range(CONNECTIONS):
        connection = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000 + i))
        transport = StringTransport()
        connection.makeConnection(transport)
        connections.append((connection, transport))
    gc.collect()
    gc.freeze()
    started = time.process_time()
    sent = answered = 0
    while answered < count:
        for connection, transport in connections:
            if connection.line:
                continue
            if transport.value():
                if not transport.value().startswith(b"HTTP/1.1 200 OK\r\n"):
                    raise RuntimeError(f"unexpected answer: {transport.value()[:40]!r}")
                transport.clear()
                answered += 1
            if sent < count:
                connection.dataReceived(REQUEST)
                sent += 1
        await asyncio.sleep(0)
    spent = time.process_time() - started
    worker.cancel()
    await server.inbox.close()
    await layer.close()
    return spent / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("count", type=int, nargs="?", default=20_000)
    args = parser.parse_args()
    print(f"{asyncio.run(run(args.count)) * 1e6:.1f} µs of CPU per request")


if __name__ == "__main__":
    main()
