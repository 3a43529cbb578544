"""Redis-specific behaviour: other OS processes, shards, outages and recovery, URLs."""

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest

from switchroom.layers import LayerUnavailable, RedisLayer, get_layer, queue_name
from switchroom.layers.hashring import HashRing
from switchroom.layers.redis import HEALTH_CHECK_INTERVAL, shard_key
from switchroom.layers.scripts import glob_to_lua
from switchroom.shared.redisproc import RedisProcess

SENDER = textwrap.dedent(
    """
    import asyncio, sys
    from switchroom.layers import get_layer

    async def main(urls, channel, count):
        layer = get_layer(urls.split(","), prefix=sys.argv[4])
        for i in range(int(count)):
            await layer.send(channel, {"i": i, "from": "child"})
        await layer.close()

    asyncio.run(main(*sys.argv[1:4]))
    """
)


@pytest.fixture(params=["one", "two-shards"])
def urls(request, redis_server, redis_shards):
    return [redis_server.url] if request.param == "one" else [s.url for s in redis_shards]


async def test_process_channel_written_by_another_os_process(urls):
    layer = get_layer(urls, prefix="xproc")
    try:
        reply = await layer.new_channel("conf.reply!")
        waiting = asyncio.ensure_future(layer.inbox.receive(10, timeout=10))
        child = subprocess.run(
            [sys.executable, "-c", SENDER, ",".join(urls), reply, "3", "xproc"],
            timeout=30,
            capture_output=True,
        )
        assert child.returncode == 0, child.stderr.decode()
        got = await waiting
        while len(got) < 3:
            more = await layer.inbox.receive(10, timeout=5)
            assert more, f"only {got} arrived"
            got += more
        assert [m for _, m in got] == [{"i": i, "from": "child"} for i in range(3)]
    finally:
        await layer.flush()
        await layer.close()


async def test_process_channels_live_on_one_shard(redis_shards):
    layer = get_layer([s.url for s in redis_shards], prefix="oneshard")
    try:
        prefixes = {
            queue_name(await layer.new_channel(p)) for p in ("a!", "http.response!", "websocket.send!")
        }
        assert len({layer._shard_of(p) for p in prefixes}) == 1
        owners = {layer._shard_of(f"plain.{i}") for i in range(200)}
        assert owners == {0, 1}
    finally:
        await layer.close()


async def test_blocked_receive_across_shards_wakes_for_either(redis_shards):
    layer = get_layer([s.url for s in redis_shards], prefix="wake2")
    names = [f"wake.{i}" for i in range(40)]
    by_shard = {}
    for name in names:
        by_shard.setdefault(layer._shard_of(name), name)
    first, second = by_shard[0], by_shard[1]
    try:
        for target in (first, second):
            waiting = asyncio.ensure_future(layer.receive([first, second], timeout=5))
            await asyncio.sleep(0.1)
            await layer.send(target, {"to": target})
            assert await waiting == (target, {"to": target})
    finally:
        await layer.flush()
        await layer.close()


async def test_capacity_patterns_apply_inside_group_send(redis_server):
    layer = get_layer(redis_server.url, prefix="gcap", capacity=5, capacities={"gcap.tiny*": 1})
    try:
        await layer.group_add("g", "gcap.tiny1")
        await layer.group_add("g", "gcap.big")
        assert (await layer.group_send("g", {"n": 1})).reached == 2
        assert (await layer.group_send("g", {"n": 2})).reached == 1
    finally:
        await layer.flush()
        await layer.close()


async def test_outage_raises_quickly_and_recovers(redis_process):
    layer = get_layer(
        redis_process.url, prefix="outage", socket_timeout=2, connect_timeout=1, block_timeout=1
    )
    try:
        await layer.send("out.q", {"before": True})
        assert await layer.receive(["out.q"], timeout=1) == ("out.q", {"before": True})
        waiting = asyncio.ensure_future(layer.receive(["out.q"], timeout=30))
        await asyncio.sleep(0.2)
        redis_process.stop(kill=True)
        start = time.monotonic()
        with pytest.raises(LayerUnavailable):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(LayerUnavailable):
            await layer.send("out.q", {"during": True})
        with pytest.raises(LayerUnavailable):
            await layer.group_send("g", {"during": True})
        assert time.monotonic() - start < 10
        redis_process.start()
        await layer.send("out.q", {"after": True})
        assert await layer.receive(["out.q"], timeout=2) == ("out.q", {"after": True})
        name = await layer.new_channel("out.reply!")
        await layer.group_add("after", name)
        assert (await layer.group_send("after", {"ok": 1})).reached == 1
        assert await layer.inbox.receive(1, timeout=2) == [(name, {"ok": 1})]
    finally:
        if redis_process.proc is not None:
            await layer.flush()
        await layer.close()


async def test_a_connection_broken_while_idle_is_replaced_before_a_send(redis_process):
    """Redis restarted while the layer was idle: the first send afterwards still goes out
    (its connection, idle past the health-check interval, is pinged and replaced)."""
    layer = get_layer(redis_process.url, prefix="idle", socket_timeout=2, connect_timeout=1, block_timeout=1)
    try:
        await layer.send("idle.q", {"n": 0})
        redis_process.restart()
        await asyncio.sleep(HEALTH_CHECK_INTERVAL + 0.2)
        await layer.send("idle.q", {"n": 1})
        assert await layer.receive(["idle.q"], timeout=1) == ("idle.q", {"n": 1})
    finally:
        await layer.flush()
        await layer.close()


def test_get_layer_urls_and_options(redis_server, redis_shards):
    layer = get_layer(f"{redis_server.url}?capacity=7&expiry=3.5&prefix=opt")
    assert isinstance(layer, RedisLayer)
    assert (layer.capacity, layer.expiry, layer.prefix) == (7, 3.5, "opt:")
    sharded = get_layer(",".join(s.url for s in redis_shards))
    assert len(sharded.urls) == 2
    assert get_layer("memory://?capacity=3").capacity == 3
    with pytest.raises(ValueError, match="unsupported"):
        get_layer("amqp://localhost")
    with pytest.raises(ValueError):
        get_layer("")


def test_hash_ring_is_stable_and_moves_few_names():
    names = [f"chan.{i}" for i in range(2000)]
    two = HashRing(["a", "b"])
    three = HashRing(["a", "b", "c"])
    assert [two.shard(n) for n in names] == [HashRing(["a", "b"]).shard(n) for n in names]
    moved = sum(two.shard(n) != three.shard(n) for n in names)
    assert 0.2 < moved / len(names) < 0.5
    assert shard_key(queue_name("http.response.abc123!x")) == "abc123"


@pytest.mark.parametrize(
    "glob,matches,misses",
    [
        ("http.*", ["http.request", "http."], ["https.x", "xhttp.a"]),
        ("a?c", ["abc", "a-c"], ["ac", "abbc"]),
        ("x[0-9]", ["x1"], ["xa", "x10"]),
        ("x[!0-9]", ["xa"], ["x1"]),
        ("web-socket.%", ["web-socket.%"], ["web-socket.a"]),
    ],
)
async def test_glob_to_lua_matches_like_fnmatch(redis_server, glob, matches, misses):
    layer = get_layer(redis_server.url)
    try:
        client = layer._shards[0].client
        pattern = glob_to_lua(glob)
        for text in matches:
            assert await client.eval("return string.find(ARGV[1], ARGV[2]) ~= nil", 0, text, pattern) == 1
        for text in misses:
            assert await client.eval("return string.find(ARGV[1], ARGV[2]) ~= nil", 0, text, pattern) is None
    finally:
        await layer.close()


async def _commands(layer: RedisLayer) -> int:
    info = await layer._shards[0].client.info("stats")
    return int(info["total_commands_processed"])


async def test_local_mode_keeps_own_messages_off_redis(redis_server):
    # Heartbeats are Redis commands too: make them rare enough not to count here.
    quiet = {"heartbeat_interval": 30, "liveness_timeout": 60}
    here = get_layer(redis_server.url, prefix="local", local=True, **quiet)
    there = get_layer(redis_server.url, prefix="local", local=True, **quiet)
    try:
        mine = await here.new_channel("conf.reply!")
        theirs = await there.new_channel("conf.reply!")
        assert await here.inbox.receive(1, timeout=0) == []
        counter = get_layer(redis_server.url, prefix="local")
        before = await _commands(counter)
        for i in range(50):
            await here.send(mine, {"i": i})
        got = await here.inbox.receive(100, timeout=1)
        assert [m["i"] for _, m in got] == list(range(50))
        assert await _commands(counter) - before == 1
        await counter.close()
        await here.send(theirs, {"crossed": True})
        assert await there.inbox.receive(1, timeout=2) == [(theirs, {"crossed": True})]
        await here.group_add("mixed", mine)
        await there.group_add("mixed", theirs)
        assert sorted(await here.group_channels("mixed")) == sorted([mine, theirs])
        assert (await here.group_send("mixed", {"all": 1})).reached == 2
        assert await here.inbox.receive(1, timeout=2) == [(mine, {"all": 1})]
        assert await there.inbox.receive(1, timeout=2) == [(theirs, {"all": 1})]
        await here.group_discard("mixed", mine)
        assert (await here.group_send("mixed", {"all": 2})).reached == 1
        assert await here.inbox.receive(1, timeout=0.2) == []
    finally:
        await here.flush()
        await here.close()
        await there.close()


async def test_cluster_group_send_reaches_members_on_every_master(redis_cluster):
    layers, members, owners = [], [], set()
    try:
        while len(owners) < 3 and len(layers) < 60:
            layer = get_layer(redis_cluster, prefix="cl")
            member = await layer.new_channel("cl.sock!")
            await layer._ready()
            owners.add(layer._slot_owner[layer._shard_of(queue_name(member))])
            layers.append(layer)
            members.append(member)
        assert len(owners) == 3, "members should be spread over all three masters"
        for member in members:
            await layers[0].group_add("cluster-room", member)
        assert (await layers[0].group_send("cluster-room", {"hi": 1})).reached == len(members)
        for layer, member in zip(layers, members, strict=True):
            assert await layer.inbox.receive(1, timeout=2) == [(member, {"hi": 1})]
    finally:
        await layers[0].flush()
        for layer in layers:
            await layer.close()


async def test_a_cluster_redirect_marks_the_slot_map_stale_and_the_next_call_goes_right(
    redis_cluster, caplog
):
    """A node answering MOVED refuses the call (nothing was run) without starting an
    outage; the slot map is read again and the next call reaches the right master."""
    layer = get_layer(redis_cluster, prefix="moved")
    try:
        await layer.send("moved.q", {"n": 0})
        slot = layer._shard_of(queue_name("moved.q"))
        owner = layer._slot_owner[slot]
        layer._slot_owner[slot] = (owner + 1) % len(layer._shards)
        with pytest.raises(LayerUnavailable, match="topology changed"):
            await layer.send("moved.q", {"n": 1})
        await layer.send("moved.q", {"n": 2})
        assert layer._slot_owner[slot] == owner
        got = await layer.receive_many(["moved.q"], 10, timeout=1)
        assert [m["n"] for _, m in got] == [0, 2]
        assert "unavailable" not in caplog.text and layer.stats.counts["outages"] == 0
    finally:
        await layer.flush()
        await layer.close()


async def test_a_call_cancelled_before_its_reply_leaves_no_connection_with_a_reply_unread(redis_server):
    """A read cancelled while Redis has yet to answer closes its connection: the calls after
    it get their own replies, never the one left behind."""
    layer = get_layer(redis_server.url, prefix="cancelcall")
    try:
        for round in range(20):
            assert await layer.send_many([("cancelcall.a", {"n": round})]) == [None]
            reading = asyncio.ensure_future(layer.receive_many(["cancelcall.a"], 10, timeout=1))
            for _ in range(round % 3 + 1):
                await asyncio.sleep(0)
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            assert await layer.send_many([("cancelcall.b", {"n": round})]) == [None]
            got = await layer.receive_many(["cancelcall.b"], 10, timeout=1)
            assert [m["n"] for _, m in got] == [round]
            await layer.receive_many(["cancelcall.a"], 10, timeout=0.01)
    finally:
        await layer.flush()
        await layer.close()


async def test_a_replica_refusing_a_write_closes_the_connection(redis_server):
    """A node that answers READONLY (a master demoted by a failover) is treated as lost: the
    call fails as unavailable and its connection is closed, so the next one connects
    afresh (through Sentinel, to the current master) instead of writing there again."""
    with RedisProcess(extra_args=("--replicaof", "127.0.0.1", str(redis_server.port))) as replica:
        layer = get_layer(replica.url, prefix="replica")
        try:
            with pytest.raises(LayerUnavailable, match="unavailable: redis answered as a replica"):
                await layer.send("replica.q", {"n": 1})
            assert not any(conn.is_connected for conn in layer._shards[0].lane.idle)
        finally:
            await layer.close()


async def test_a_cancelled_receive_always_ends(redis_server):
    """Cancelling a reader while messages arrive must end it, every time (no swallowed cancel)."""
    layer = get_layer(f"{redis_server.url}?prefix=cancel")

    async def reader():
        while True:
            await layer.receive(["cancel-a", "cancel-b"], timeout=1)

    try:
        for i in range(150):
            task = asyncio.create_task(reader())
            await asyncio.sleep((i % 7) * 0.003)
            if i % 2:
                await layer.send("cancel-a", {"i": i})
                await asyncio.sleep((i % 3) * 0.0005)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=5)
            assert done, f"receive ignored its cancellation on round {i}"
    finally:
        await layer.flush()
        await layer.close()


async def test_a_batch_costs_one_push_per_queue(redis_server):
    """However many messages a batch has for a queue, Redis runs one LLEN, RPUSH and PEXPIRE
    for it (Redis's own command counters)."""
    import redis as sync_redis

    layer = get_layer([redis_server.url], prefix="perkey")
    counters = sync_redis.Redis(port=redis_server.port)

    def calls() -> dict[str, int]:
        stats = counters.info("commandstats")
        names = ("rpush", "llen", "pexpire")
        return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in names}

    try:
        before = calls()
        items = [(f"perkey.{n % 2}", {"n": n}) for n in range(40)]
        assert await layer.send_many(items) == [None] * 40
        after = calls()
        assert {name: after[name] - before[name] for name in after} == {"rpush": 2, "llen": 2, "pexpire": 2}
        got = await layer.receive_many(["perkey.0"], 100, timeout=1)
        assert [m["n"] for _, m in got] == list(range(0, 40, 2))
    finally:
        counters.close()
        await layer.flush()
        await layer.close()


async def test_a_receive_returns_what_its_blocked_read_brought_without_asking_again(redis_server):
    """A receive that waited in BLPOP returns what that read brought at once, without a
    second call for what arrived behind it; the next receive takes that (Redis's own
    command counters: the only script call in between is the sender's)."""
    import redis as sync_redis

    reader = get_layer([redis_server.url], prefix="blocked")
    sender = get_layer([redis_server.url], prefix="blocked")
    counters = sync_redis.Redis(port=redis_server.port)

    def scripts() -> int:
        return int(counters.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    try:
        await sender.send("blocked.other", {"warm": True})
        receiving = asyncio.ensure_future(reader.receive_many(["blocked.q"], 100, timeout=10))
        while not any(c.get("cmd") == "blpop" for c in counters.client_list()):
            await asyncio.sleep(0.01)
        before = scripts()
        assert await sender.send_many([("blocked.q", {"n": 0}), ("blocked.q", {"n": 1})]) == [None, None]
        assert [m["n"] for _, m in await receiving] == [0]
        assert scripts() - before == 1
        assert [m["n"] for _, m in await reader.receive_many(["blocked.q"], 100, timeout=1)] == [1]
    finally:
        counters.close()
        await sender.flush()
        await reader.close()
        await sender.close()
