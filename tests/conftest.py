"""Fixtures shared by the whole suite: private redis-servers and layers on every backend."""

import hashlib
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from switchroom.layers import get_layer
from switchroom.shared.redisproc import RedisProcess, find_redis_server, free_port


def find_redis_cli() -> str:
    """Path of redis-cli: PATH first, then the one beside the redis-server in use."""
    return shutil.which("redis-cli") or str(Path(find_redis_server()).with_name("redis-cli"))


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 55_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


SENTINEL_CONF = """\
port {port}
bind 127.0.0.1
dir {dir}
sentinel monitor {service} 127.0.0.1 {master} {quorum}
sentinel down-after-milliseconds {service} 1000
sentinel failover-timeout {service} 4000
sentinel parallel-syncs {service} 1
"""


def start_sentinels(folder, master_port: int, count: int, service: str = "switchroom"):
    """Start ``count`` sentinels watching the master; returns [(port, Popen)]."""
    sentinels = []
    for _ in range(count):
        port = free_port()
        conf = folder / f"sentinel-{port}.conf"
        conf.write_text(
            SENTINEL_CONF.format(
                port=port, dir=folder, service=service, master=master_port, quorum=min(2, count)
            )
        )
        proc = subprocess.Popen(
            [find_redis_server(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sentinels.append((port, proc))
    deadline = time.monotonic() + 10
    for port, _ in sentinels:
        while not RedisProcess(port).ping():
            assert time.monotonic() < deadline, "a sentinel did not start"
            time.sleep(0.05)
    return sentinels


def stop_sentinels(sentinels) -> None:
    for _, proc in sentinels:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def redis_server():
    """One redis-server for the session; tests flush what they use."""
    with RedisProcess() as server:
        yield server


@pytest.fixture(scope="session")
def redis_shards():
    """Two redis-servers used as two shards of one layer."""
    with RedisProcess() as a, RedisProcess() as b:
        yield [a, b]


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory):
    """A master watched by one sentinel; yields the layer URL that finds it."""
    with RedisProcess() as master:
        sentinels = start_sentinels(tmp_path_factory.mktemp("sentinel"), master.port, 1)
        try:
            yield f"redis+sentinel://127.0.0.1:{sentinels[0][0]}/switchroom"
        finally:
            stop_sentinels(sentinels)


def start_cluster(masters: int = 3) -> list[RedisProcess]:
    """Start ``masters`` cluster-enabled servers and join them into one cluster."""
    nodes = [
        RedisProcess(
            free_cluster_port(), extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
        ).start()
        for _ in range(masters)
    ]
    create = [find_redis_cli(), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes)]
    subprocess.run(
        [*create, "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60
    )
    deadline = time.monotonic() + 20
    while True:
        info = subprocess.run(
            [find_redis_cli(), "-p", str(nodes[0].port), "cluster", "info"], capture_output=True, text=True
        ).stdout
        if "cluster_state:ok" in info:
            return nodes
        assert time.monotonic() < deadline, f"the cluster did not come up: {info}"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def redis_cluster():
    """A three-master Redis Cluster; yields the layer URL that reaches it."""
    nodes = start_cluster()
    try:
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def redis_process():
    """A redis-server of this test's own, free to be killed and restarted."""
    with RedisProcess() as server:
        yield server


BACKENDS = ["memory", "redis", "redis-shards", "redis-local", "redis-sentinel", "redis-cluster"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
async def make_layer(request, backend):
    """Build layers of the test's backend; each gets a fresh key prefix and is closed after."""
    made = []

    def make(**options):
        if backend == "memory":
            url = "memory://"
        elif backend == "redis":
            url = request.getfixturevalue("redis_server").url
        elif backend == "redis-cluster":
            url = request.getfixturevalue("redis_cluster")
        elif backend == "redis-sentinel":
            url = request.getfixturevalue("redis_sentinel")
        elif backend == "redis-local":
            url = request.getfixturevalue("redis_server").url
            options.setdefault("local", True)
        else:
            url = [s.url for s in request.getfixturevalue("redis_shards")]
        if backend != "memory":
            test = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
            options.setdefault("prefix", f"t{len(made)}-{test}")
        layer = get_layer(url, **options)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.flush()
        await layer.close()
