"""Redis Sentinel: the layer follows a failover of a real master to its replica."""

import asyncio
import time
from pathlib import Path

import pytest

from switchroom.layers import LayerUnavailable, get_layer
from switchroom.shared.redisproc import RedisProcess
from tests.conftest import start_sentinels, stop_sentinels

pytestmark = pytest.mark.slow


@pytest.fixture
def sentinel_setup(tmp_path: Path):
    """A master, a replica and three sentinels on loopback, all stopped by PID after."""
    master = RedisProcess().start()
    replica = RedisProcess(extra_args=("--replicaof", "127.0.0.1", str(master.port))).start()
    sentinels = start_sentinels(tmp_path, master.port, 3)
    try:
        yield master, replica, [port for port, _ in sentinels]
    finally:
        stop_sentinels(sentinels)
        replica.close()
        master.close()


async def test_layer_follows_a_failover(sentinel_setup):
    master, replica, sentinel_ports = sentinel_setup
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel_ports)
    layer = get_layer(
        f"redis+sentinel://{hosts}/switchroom", socket_timeout=2, connect_timeout=1, block_timeout=1
    )
    try:
        await layer.send("sentinel.q", {"n": 0})
        assert await layer.receive(["sentinel.q"], timeout=2) == ("sentinel.q", {"n": 0})
        sent = failed = 0
        master.stop(kill=True)
        killed = time.monotonic()
        recovered = None
        while time.monotonic() - killed < 40:
            try:
                await layer.send("sentinel.q", {"n": sent + 1})
                sent += 1
                if recovered is None:
                    recovered = time.monotonic() - killed
                if sent >= 20:
                    break
            except LayerUnavailable:
                failed += 1
                await asyncio.sleep(0.2)
        assert recovered is not None, "the layer never reached the promoted replica"
        print(f"failover: sends refused while no master {failed}, recovered after {recovered:.1f} s")
        got = await layer.receive_many(["sentinel.q"], 100, timeout=2)
        assert [m["n"] for _, m in got] == list(range(1, sent + 1))
        assert replica.ping()
    finally:
        await layer.close()
