"""The reply path through the process inbox, against real servers, workers and clients:
bursts to one socket arrive whole and in order, an overflow is refused, counted and told
to the sender, a group send costs one Redis entry per server process, and the members of a
server killed outright leave their groups within seconds."""

import asyncio
import signal
import socket
import subprocess
import sys
import time

import pytest
import redis
from websockets.asyncio.client import connect

from switchroom.layers import GroupReach, get_layer

from ..worker.harness import WorkerProcess
from .harness import ROOT, ServerProcess

pytestmark = pytest.mark.slow


async def frames(ws, count: int, timeout: float = 20) -> list[str]:
    async with asyncio.timeout(timeout):
        return [await ws.recv() for _ in range(count)]


@pytest.fixture
def served(redis_server):
    """``switchroom http`` and a ``switchroom worker`` of the burst app, on one prefix."""
    server = ServerProcess(redis_server.url)
    worker = WorkerProcess(server.layer_url, "tests.http_ws.burst_app:app")
    yield server
    worker.stop()
    assert server.stop() == 0


async def test_a_burst_of_1000_frames_from_a_consumer_arrives_whole_and_in_order(served):
    async with connect(served.ws_url + "/burst") as ws:
        assert (await ws.recv()).startswith("address websocket.send.")
        await ws.send("burst 1000")
        assert await frames(ws, 1000) == [str(n) for n in range(1000)]


async def test_group_frames_to_a_client_that_reads_late_arrive_whole_and_in_order(served):
    """Group frames are written straight to each socket while nothing waits before them; once
    a client stops reading, the rest queues behind what the kernel did not take, in the
    order sent, with the socket's own frames in between."""
    layer = get_layer(served.layer_url)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    client.connect(("127.0.0.1", served.port))
    try:
        async with (
            connect(served.ws_url + "/burst", sock=client, max_queue=4) as late,
            connect(served.ws_url + "/burst") as prompt,
        ):
            address = (await late.recv()).split()[1]
            await layer.group_add("late", address)
            await layer.group_add("late", (await prompt.recv()).split()[1])
            sent = []
            for n in range(100):
                big = f"g{n}-" + "x" * 30_000
                assert (await layer.group_send("late", {"text": big})).reached == 2
                await layer.send(address, {"text": f"d{n}"})
                sent += [big, f"d{n}"]
            assert await frames(prompt, 100) == sent[::2]
            await asyncio.sleep(1.0)  # the late client reads nothing meanwhile beyond its small queue
            assert await frames(late, len(sent)) == sent
    finally:
        await layer.close()


SCRIPT = """
import sys
from switchroom.layers import SyncLayer, get_layer
url, address, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
layer = SyncLayer(get_layer(url))
results = layer.send_many([(address, {"text": str(n)}) for n in range(count)])
print(",".join(str(n) for n, error in enumerate(results) if error is None))
print(dict(layer.layer.stats.dropped))
layer.close()
"""


def send_from_a_script(url: str, address: str, count: int) -> tuple[list[str], str, str]:
    """A plain synchronous program sending ``count`` frames; returns (accepted, stats, log)."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, address, str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    accepted, stats = done.stdout.splitlines()
    return accepted.split(","), stats, done.stderr


async def test_a_burst_of_1000_frames_from_a_plain_script_arrives_whole_and_in_order(served):
    async with connect(served.ws_url + "/burst") as ws:
        address = (await ws.recv()).split()[1]
        accepted, stats, _ = send_from_a_script(served.layer_url, address, 1000)
        assert len(accepted) == 1000 and stats == "{}"
        assert await frames(ws, 1000) == [str(n) for n in range(1000)]


async def test_an_overflow_is_refused_counted_logged_and_told_to_the_sender(redis_server):
    server = ServerProcess(redis_server.url + "?process_capacity=100")
    worker = WorkerProcess(server.layer_url, "tests.http_ws.burst_app:app")
    try:
        async with connect(server.ws_url + "/burst") as ws:
            address = (await ws.recv()).split()[1]
            accepted, stats, log = send_from_a_script(server.layer_url, address, 1000)
            refused = 1000 - len(accepted)
            assert len(accepted) >= 100 and refused > 0
            assert stats == f"{{'full': {refused}}}"
            assert f"dropped {refused} messages: the receiving queue was full" in log
            assert await frames(ws, len(accepted)) == accepted
            with pytest.raises(TimeoutError):
                await frames(ws, 1, timeout=0.5)
    finally:
        worker.stop()
        assert server.stop() == 0


async def accept_into(layer, group: str, count: int) -> None:
    """Play the worker: accept ``count`` sockets and add each to ``group``."""
    accepted = 0
    while accepted < count:
        for _, message in await layer.receive_many(["websocket.connect"], 200, timeout=5):
            await layer.group_add(group, message["reply_channel"])
            await layer.send(message["reply_channel"], {"accept": True})
            accepted += 1


def rpush_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0))


async def test_a_group_of_2000_over_two_servers_costs_one_entry_per_server(redis_server):
    """Reach counts match what the clients got, a broadcast pushes one Redis entry per
    server process, and a server killed with SIGKILL leaves the group within 10 s."""
    first = ServerProcess(redis_server.url, prefix="two-servers")
    second = ServerProcess(redis_server.url, prefix="two-servers")
    layer = get_layer(first.layer_url)
    client = redis.Redis(port=redis_server.port)
    sockets = []
    try:
        accepting = asyncio.ensure_future(accept_into(layer, "everyone", 2000))
        for n in range(2000):
            server = first if n % 2 else second
            sockets.append(await connect(server.ws_url + "/room", max_queue=None))
        await accepting
        assert len(await layer.group_channels("everyone")) == 2000

        before = rpush_calls(client)
        reaches = [await layer.group_send("everyone", {"text": f"hello {n}"}) for n in range(3)]
        assert rpush_calls(client) - before == 2 * 3
        assert reaches == [GroupReach(reached=2000)] * 3
        for ws in sockets:
            assert await frames(ws, 3, timeout=30) == ["hello 0", "hello 1", "hello 2"]

        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(10)
        killed = time.monotonic()
        while len(await layer.group_channels("everyone")) != 1000:
            assert time.monotonic() - killed < 10, "the killed server's members are still in the group"
            await asyncio.sleep(0.2)
        assert await layer.group_send("everyone", {"text": "after"}) == GroupReach(reached=1000)
        for ws in sockets[1::2]:
            assert await frames(ws, 1) == ["after"]
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await layer.flush()
        await layer.close()
        client.close()
        first.stop()
        second.stop()
