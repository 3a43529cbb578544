"""Fixtures shared by the whole suite: private redis-servers and layers on every backend."""

import pytest

from switchroom.layers import get_layer
from switchroom.shared.redisproc import RedisProcess


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


@pytest.fixture
def redis_process():
    """A redis-server of this test's own, free to be killed and restarted."""
    with RedisProcess() as server:
        yield server


BACKENDS = ["memory", "redis", "redis-shards", "redis-local"]


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
        elif backend == "redis-local":
            url = request.getfixturevalue("redis_server").url
            options.setdefault("local", True)
        else:
            url = [s.url for s in request.getfixturevalue("redis_shards")]
        if backend != "memory":
            options.setdefault("prefix", f"t{len(made)}-{request.node.name[:40]}")
        layer = get_layer(url, **options)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        await layer.flush()
        await layer.close()
