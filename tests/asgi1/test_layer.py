"""switchroom.layers.asgi1.ChannelLayer: settings, naming rules, blocking, and sharing a layer with
Switchroom's own async API. (asgiref's suite itself runs in test_conformance.py.)"""

import re
import threading
import time
import uuid

import pytest

from switchroom.layers import ChannelFull, MessageTooLarge, get_layer
from switchroom.layers.asgi1 import ChannelLayer
from switchroom.layers.errors import InvalidChannelName


@pytest.fixture
def make():
    """Build ChannelLayers that are closed after the test."""
    made: list[ChannelLayer] = []

    def build(*args, **kwargs) -> ChannelLayer:
        layer = ChannelLayer(*args, **kwargs)
        made.append(layer)
        return layer

    yield build
    for layer in made:
        layer.close()


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("redis://10.0.0.5:6380/2", "redis://10.0.0.5:6380/2"),
        ("10.0.0.5:6380", "redis://10.0.0.5:6380"),
        (("10.0.0.5", 6380), "redis://10.0.0.5:6380/0"),
        ({"host": "10.0.0.5", "port": 6380, "db": 3}, "redis://10.0.0.5:6380/3"),
    ],
)
def test_asgi_redis_hosts_become_layer_urls(make, host, url):
    layer = make(hosts=[host])
    assert layer.layer.urls == [url]


def test_several_hosts_are_shards(make):
    layer = make(hosts=[("10.0.0.5", 6379), ("10.0.0.6", 6379)])
    assert layer.layer.urls == ["redis://10.0.0.5:6379/0", "redis://10.0.0.6:6379/0"]


def test_url_and_hosts_together_are_refused():
    with pytest.raises(ValueError, match="either url or hosts"):
        ChannelLayer("memory://", hosts=[("127.0.0.1", 6379)])


def test_without_url_the_environment_chooses(make, monkeypatch):
    monkeypatch.setenv("SWITCHROOM_LAYER", "redis://10.0.0.7:6379/1")
    assert make().layer.urls == ["redis://10.0.0.7:6379/1"]
    monkeypatch.delenv("SWITCHROOM_LAYER")
    assert type(make().layer).__name__ == "MemoryLayer"


@pytest.mark.parametrize("option", ["symmetric_encryption_keys", "connection_kwargs"])
def test_asgi_redis_settings_without_counterpart_are_refused_by_name(option):
    with pytest.raises(ValueError, match=option):
        ChannelLayer("memory://", **{option: {}})


def test_block_timeout_must_be_positive():
    with pytest.raises(ValueError, match="block_timeout"):
        ChannelLayer("memory://", block_timeout=0)


def test_settings_are_visible_as_the_standard_names_them(make):
    layer = make("memory://", expiry=30, group_expiry=600, capacity=7)
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (30, 600, 7)
    assert (layer.layer.expiry, layer.layer.group_expiry, layer.layer.capacity) == (30, 600, 7)
    assert set(layer.extensions) == {"groups", "flush"}
    assert layer.ChannelFull is ChannelFull
    assert layer.MessageTooLarge is MessageTooLarge


def test_settings_may_ride_in_the_url_and_keywords_win(make):
    layer = make("memory://?capacity=9&expiry=12&group_expiry=34", expiry=5)
    assert (layer.capacity, layer.expiry, layer.group_expiry) == (9, 5, 34)
    assert (layer.layer.capacity, layer.layer.expiry, layer.layer.group_expiry) == (9, 5, 34)


def test_defaults_are_the_standards(make):
    layer = make("memory://")
    assert (layer.capacity, layer.expiry, layer.group_expiry) == (100, 60, 86400)


def test_channel_capacity_globs_override_capacity(make):
    layer = make("memory://", capacity=3, channel_capacity={"small.*": 1})
    layer.send("small.a", {"n": 1})
    with pytest.raises(layer.ChannelFull):
        layer.send("small.a", {"n": 2})
    for n in range(3):
        layer.send("big", {"n": n})
    with pytest.raises(layer.ChannelFull):
        layer.send("big", {"n": 3})


def test_compiled_regex_capacities_are_refused():
    with pytest.raises(TypeError, match="glob"):
        ChannelLayer("memory://", channel_capacity={re.compile("x.*"): 1})


def test_oversized_message_raises_message_too_large(make):
    layer = make("memory://", max_message_size=1000)
    with pytest.raises(layer.MessageTooLarge):
        layer.send("big", {"body": b"x" * 2000})
    assert layer.receive(["big"]) == (None, None)


@pytest.mark.parametrize(
    "call",
    [
        lambda layer: layer.send("reply?", {}),
        lambda layer: layer.send("reply!", {}),
        lambda layer: layer.send("bad name", {}),
        lambda layer: layer.receive(["reply!abc"]),
        lambda layer: layer.receive(["reply?"]),
        lambda layer: layer.receive("http.request"),
        lambda layer: layer.receive([]),
        lambda layer: layer.new_channel("reply!"),
        lambda layer: layer.new_channel("reply"),
        lambda layer: layer.new_channel("a?b?"),
        lambda layer: layer.group_add("room", "reply!"),
    ],
    ids=[
        "send-bare-single-reader",
        "send-bare-process-prefix",
        "send-bad-characters",
        "receive-full-process-name",
        "receive-bare-single-reader",
        "receive-a-string",
        "receive-nothing",
        "new-channel-process",
        "new-channel-plain",
        "new-channel-two-markers",
        "group-add-process-prefix",
    ],
)
def test_the_standards_naming_rules_are_enforced(make, call):
    with pytest.raises(InvalidChannelName):
        call(make("memory://"))


def test_new_channel_names_are_unique_single_reader_names(make):
    layer = make("memory://")
    names = {layer.new_channel("http.request.body?") for _ in range(100)}
    assert len(names) == 100
    for name in names:
        prefix, _, rest = name.partition("?")
        assert prefix == "http.request.body" and rest and "?" not in rest


def test_non_blocking_receive_on_nothing_returns_none(make):
    assert make("memory://", block_timeout=60).receive(["empty"]) == (None, None)


def test_blocking_receive_gives_up_after_block_timeout(make):
    assert make("memory://", block_timeout=0.2).receive(["empty"], block=True) == (None, None)


@pytest.mark.timeout(30)
def test_blocking_receive_wakes_for_a_send_from_another_thread(make):
    """The receive is already parked when the send happens; it must not sleep out block_timeout."""
    layer = make("memory://", block_timeout=600)

    def send_once_parked() -> None:
        while "wake" not in layer.layer._waiters:
            time.sleep(0.001)
        layer.send("wake", {"n": 1})

    sender = threading.Thread(target=send_once_parked)
    sender.start()
    try:
        assert layer.receive(["wake"], block=True) == ("wake", {"n": 1})
    finally:
        sender.join()


def test_receive_takes_a_set_of_channels_as_channels_1_workers_pass(make):
    layer = make("memory://")
    layer.send("websocket.connect", {"order": 0})
    assert layer.receive({"http.request", "websocket.connect"}, block=True) == (
        "websocket.connect",
        {"order": 0},
    )


def test_receive_many_is_receive(make):
    layer = make("memory://")
    layer.send("old", {"n": 1})
    assert layer.receive_many(["old"]) == ("old", {"n": 1})


def test_process_channels_come_back_with_their_full_names(make):
    layer = make("memory://")
    layer.send("daphne.response.abc!one", {"n": 1})
    layer.send("daphne.response.abc!two", {"n": 2})
    got = [layer.receive(["daphne.response.abc!"]) for _ in range(3)]
    assert got == [
        ("daphne.response.abc!one", {"n": 1}),
        ("daphne.response.abc!two", {"n": 2}),
        (None, None),
    ]


def test_group_send_skips_full_members_without_raising(make):
    layer = make("memory://", capacity=1)
    layer.group_add("room", "full")
    layer.group_add("room", "free")
    layer.send("full", {"n": 0})
    layer.send_group("room", {"n": 1})
    assert layer.receive(["free"]) == ("free", {"n": 1})
    assert layer.receive(["full"]) == ("full", {"n": 0})
    assert layer.receive(["full"]) == (None, None)


def test_threads_share_one_layer_and_each_message_arrives_once(make):
    layer = make("memory://", capacity=1000, block_timeout=600)
    sent = [{"thread": t, "n": n} for t in range(4) for n in range(100)]
    received: list[dict] = []
    lock = threading.Lock()

    def send(thread: int) -> None:
        for message in sent[thread * 100 : (thread + 1) * 100]:
            layer.send("shared", message)

    def receive() -> None:
        while True:
            _, message = layer.receive(["shared"], block=True)
            if message == {"stop": True}:
                return
            with lock:
                received.append(message)

    senders = [threading.Thread(target=send, args=(t,)) for t in range(4)]
    receivers = [threading.Thread(target=receive) for _ in range(3)]
    for thread in senders + receivers:
        thread.start()
    for thread in senders:
        thread.join()
    for _ in receivers:
        layer.send("shared", {"stop": True})
    for thread in receivers:
        thread.join()
    assert sorted(received, key=lambda m: (m["thread"], m["n"])) == sent


@pytest.mark.timeout(30)
def test_one_receive_waits_on_plain_and_process_channels_and_loses_nothing(make):
    """A blocking receive on a plain channel and a process prefix together wakes for either,
    and messages waiting on both come one per receive."""
    layer = make("memory://", block_timeout=10)
    names = ["jobs", "daphne.response.mixed!"]
    threading.Timer(0.2, layer.send, ("daphne.response.mixed!a", {"n": 1})).start()
    assert layer.receive(names, block=True) == ("daphne.response.mixed!a", {"n": 1})
    threading.Timer(0.2, layer.send, ("jobs", {"n": 2})).start()
    assert layer.receive(names, block=True) == ("jobs", {"n": 2})
    layer.send("jobs", {"n": 3})
    layer.send("daphne.response.mixed!b", {"n": 4})
    got = [layer.receive(names, block=True), layer.receive(names, block=True)]
    assert sorted(m["n"] for _, m in got) == [3, 4]
    assert layer.receive(names) == (None, None)


def test_close_is_idempotent():
    layer = ChannelLayer("memory://")
    layer.close()
    layer.close()


async def test_shares_a_redis_layer_with_switchroom_processes(redis_server, make):
    """An ASGI 1.0 process and a Switchroom process on one Redis see each other's messages."""
    prefix = f"asgi1-{uuid.uuid4().hex[:8]}"
    legacy = make(redis_server.url, prefix=prefix, block_timeout=5)
    modern = get_layer(redis_server.url, prefix=prefix)
    try:
        reply_channel = await modern.new_channel("http.response!")
        legacy.send(reply_channel, {"status": 200, "content": b"hi", "more_content": False})
        batch = await modern.inbox.receive(10, timeout=5)
        assert batch == [(reply_channel, {"status": 200, "content": b"hi", "more_content": False})]

        await modern.send("http.request", {"reply_channel": reply_channel, "path": "/"})
        assert legacy.receive(["http.request"], block=True) == (
            "http.request",
            {"reply_channel": reply_channel, "path": "/"},
        )

        legacy.group_add("room", "websocket.send.x!a")
        await modern.group_add("room", "websocket.send.y!b")
        assert set(legacy.group_channels("room")) == {"websocket.send.x!a", "websocket.send.y!b"}
        legacy.send_group("room", {"text": "hello"})
        assert legacy.receive(["websocket.send.x!"]) == ("websocket.send.x!a", {"text": "hello"})
        assert await modern.open_inbox("y").receive(10, timeout=5) == [
            ("websocket.send.y!b", {"text": "hello"})
        ]
    finally:
        await modern.flush()
        await modern.close()


def test_a_process_that_receives_counts_as_a_reader_until_it_closes(redis_server):
    """A Channels 1.x worker reading ``websocket.connect`` through this layer counts as its
    reader, so servers do not take it for absent (``readers.py``)."""
    import asyncio

    from switchroom.layers.readers import live_readers

    url = f"{redis_server.url}?prefix=rd{uuid.uuid4().hex[:8]}"

    async def readers() -> int:
        layer = get_layer(url)
        try:
            return await live_readers(layer, "websocket.connect")
        finally:
            await layer.close()

    worker = ChannelLayer(url)
    try:
        assert asyncio.run(readers()) == 0
        worker.receive(["websocket.connect", "http.request"])
        assert asyncio.run(readers()) == 1
    finally:
        worker.close()
    assert asyncio.run(readers()) == 0
