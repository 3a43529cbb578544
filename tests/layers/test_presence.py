"""Presence on every backend: one member per key with all its metas, lists that agree across
processes, diffs to watchers batched per interval, entries of dead processes and past their
ttl leaving with leave events, and clear errors for bad input."""

import asyncio
import gc
import json
import math
import time

import pytest

from switchroom.layers import InvalidChannelName, InvalidMessage, MessageTooLarge
from switchroom.layers.presence import ref

from .test_conformance import started_inbox


def apply(view: dict, message: dict) -> dict:
    """Play a watcher: keep ``{key: {ref: meta}}`` from a state message and the diffs after
    it; diffs that come before the state wait for it (under ``None``)."""
    if message["type"] == "presence.state":
        early = view.pop(None, [])
        view.clear()
        for key, metas in message["members"].items():
            view[key] = {m["ref"]: m for m in metas}
        view["\0ready"] = True
        for change in early:
            apply(view, change)
        return view
    if "\0ready" not in view:
        view.setdefault(None, []).append(message)
        return view
    for key, metas in message["leaves"].items():
        for meta in metas:
            view.get(key, {}).pop(meta["ref"], None)
        if not view.get(key, True):
            del view[key]
    for key, metas in message["joins"].items():
        for meta in metas:
            view.setdefault(key, {})[meta["ref"]] = meta
    return view


async def watched(box, view: dict | None = None) -> dict:
    """Read ``box`` until its state came; returns the view."""
    view = {} if view is None else view
    while "\0ready" not in view:
        message = await box.get(5)
        assert message is not None, "no presence state came"
        apply(view, message)
    return view


def as_metas(view: dict) -> dict:
    return {
        key: sorted(refs.values(), key=lambda m: m["ref"]) for key, refs in view.items() if key != "\0ready"
    }


def sorted_metas(listed: dict) -> dict:
    return {key: sorted(metas, key=lambda m: m["ref"]) for key, metas in listed.items()}


async def drain(box, timeout: float = 0.3) -> list[dict]:
    got = []
    while (message := await box.get(timeout)) is not None:
        got.append(message)
    return got


def peer_of(make_layer, backend, layer):
    """A second layer object on the same deployment (another process, on Redis)."""
    if backend == "memory":
        return layer
    return make_layer(prefix=layer.prefix[:-1], presence_interval=layer.presence_interval)


async def test_a_key_with_two_addresses_is_one_member_with_two_metas(make_layer, backend):
    layer = make_layer()
    first, second = await started_inbox(layer, "pres-one"), await started_inbox(layer, "pres-two")
    tab1, tab2 = first.address("ws"), second.address("ws")
    bob = first.address("ws")
    await layer.presence.track("lobby", tab1, "alice", {"tab": 1})
    await layer.presence.track("lobby", tab2, "alice", {"tab": 2})
    await layer.presence.track("lobby", bob, "bob", {"tab": 1})
    peer = peer_of(make_layer, backend, layer)
    for reader in (layer, peer):
        listed = await reader.presence.list("lobby")
        assert sorted(listed) == ["alice", "bob"]
        assert sorted(m["tab"] for m in listed["alice"]) == [1, 2]
    await peer.presence.untrack("lobby", tab1)
    listed = await layer.presence.list("lobby")
    assert [m["tab"] for m in listed["alice"]] == [2] and len(listed["bob"]) == 1
    await layer.presence.track("lobby", tab2, "alice", {"tab": 2, "typing": True})
    assert (await peer.presence.list("lobby"))["alice"][0]["typing"] is True
    await layer.presence.untrack("lobby", tab2)
    await layer.presence.untrack("lobby", tab2)
    assert list(await peer.presence.list("lobby")) == ["bob"]


async def test_a_list_gives_back_any_json_metadata_and_drops_the_dead(make_layer, backend):
    layer = make_layer()
    for process in ("pres-rich", "pres-doomed"):
        await layer._announce(process, alive=True)
    tab = "ws.pres-rich!tab"
    meta = {"name": "Zoë " + "x" * 300, "tabs": [1, [2.5, None]], "at": {"x": 2**40, "ok": True}}
    await layer.presence.track("rich", tab, "zoë", meta)
    await layer.presence.track("rich", "email.sender-9", "zoë", {"via": "email"}, ttl=600)
    await layer.presence.track("rich", "ws.pres-doomed!tab", "dan", {"via": "web"})
    await layer._announce("pres-doomed", alive=False)
    listed = await peer_of(make_layer, backend, layer).presence.list("rich")
    metas = [{**meta, "ref": ref(tab)}, {"via": "email", "ref": ref("email.sender-9")}]
    assert listed == {"zoë": sorted(metas, key=lambda m: m["ref"])}


@pytest.mark.parametrize("backend", ["memory"])
async def test_a_list_is_built_without_collector_passes(make_layer):
    layer = make_layer()
    for n in range(5000):
        await layer.presence.track("crowd", f"ws.pres-crowd!{n}", f"user{n}", {"via": "web"})
    passes = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.collect()
    gc.callbacks.append(note)
    try:
        listed = await layer.presence.list("crowd")
    finally:
        gc.callbacks.remove(note)
    assert len(listed) == 5000
    # 10,000 new containers would start a pass every 700 of them; held, the collector
    # meets them at most once after the build.
    assert len(passes) <= 1, passes


async def test_watchers_get_the_list_then_diffs_that_keep_it_right(make_layer, backend):
    layer = make_layer(presence_interval=0.05)
    inbox = await started_inbox(layer)
    box = inbox.mailbox()
    other = await started_inbox(layer, "pres-other")
    alice1 = other.address("ws")
    await layer.presence.track("chat", alice1, "alice", {"n": 1})
    await layer.presence.track("chat", box.address, "me", {"n": 0}, diffs="message")
    view = await watched(box)
    assert sorted(as_metas(view)) == ["alice", "me"]
    peer = peer_of(make_layer, backend, layer)
    alice2, bob = inbox.address("ws"), inbox.address("ws")
    await peer.presence.track("chat", alice2, "alice", {"n": 2})
    await peer.presence.track("chat", bob, "bob", {"n": 3})
    await peer.presence.untrack("chat", alice1)
    for message in await drain(box, 1.0):
        assert message["group"] == "chat"
        apply(view, message)
    assert as_metas(view) == sorted_metas(await layer.presence.list("chat"))
    assert sorted(as_metas(view)) == ["alice", "bob", "me"] and len(view["alice"]) == 1


async def test_diffs_are_batched_to_one_message_per_interval(make_layer, backend):
    interval = 0.5
    layer = make_layer(presence_interval=interval)
    inbox = await started_inbox(layer)
    box = inbox.mailbox()
    await layer.presence.watch("busy", box.address)
    view = await watched(box)
    peer = peer_of(make_layer, backend, layer)
    started = time.monotonic()
    for n in range(40):
        writer = layer if n % 2 else peer
        await writer.presence.track("busy", inbox.address("ws"), f"user{n % 10}", {"n": n})
        await asyncio.sleep(0.005)  # flushes get their turn in between
    elapsed = time.monotonic() - started
    diffs = await drain(box, 3 * interval)
    # The first change goes out at once; the rest wait for the interval to pass.
    assert 1 <= len(diffs) <= 2 + math.floor(elapsed / interval)
    for message in diffs:
        apply(view, message)
    assert as_metas(view) == sorted_metas(await layer.presence.list("busy"))
    assert sum(len(refs) for refs in as_metas(view).values()) == 40


async def test_watching_as_frames_gives_websocket_text_frames(make_layer):
    layer = make_layer(presence_interval=0.05)
    inbox = await started_inbox(layer)
    box = inbox.mailbox()
    await layer.presence.track("frames", box.address, "ann", {"via": "web"}, diffs="frame")
    state = json.loads((await box.get(5))["text"])
    assert state["type"] == "presence.state" and list(state["members"]) == ["ann"]
    # Its own join may come as a diff too, after the list that already holds it.
    for change in [json.loads(m["text"]) for m in await drain(box)]:
        assert change == {
            "type": "presence.diff",
            "group": "frames",
            "joins": {"ann": state["members"]["ann"]},
            "leaves": {},
        }
    await layer.presence.track("frames", inbox.address("ws"), "ben")
    change = json.loads((await box.get(5))["text"])
    assert change["type"] == "presence.diff" and list(change["joins"]) == ["ben"] and change["leaves"] == {}
    await layer.presence.untrack("frames", box.address)
    await layer.presence.track("frames", inbox.address("ws"), "cat")
    assert await box.get(0.5) is None


async def test_members_of_a_stopped_process_leave_with_leave_events(make_layer, backend):
    layer = make_layer(heartbeat_interval=0.2, presence_interval=0.05)
    inbox = await started_inbox(layer)
    box = inbox.mailbox()
    doomed = await started_inbox(layer, "pres-doomed")
    await layer.presence.watch("room", box.address)
    await layer.presence.track("room", inbox.address("ws"), "alice")
    await layer.presence.track("room", doomed.address("ws"), "alice")
    await layer.presence.track("room", doomed.address("ws"), "carol")
    view = await watched(box)
    for message in await drain(box):
        apply(view, message)
    assert {k: len(v) for k, v in as_metas(view).items()} == {"alice": 2, "carol": 1}
    await doomed.close()
    peer = peer_of(make_layer, backend, layer)
    assert sorted(await peer.presence.list("room")) == ["alice"]
    deadline = time.monotonic() + 5
    while {k: len(v) for k, v in as_metas(view).items()} != {"alice": 1}:
        assert time.monotonic() < deadline, f"leave events did not arrive: {view}"
        message = await box.get(1)
        if message is not None:
            apply(view, message)


async def test_entries_are_removed_by_the_sweep_without_a_list(make_layer):
    layer = make_layer(heartbeat_interval=0.2, presence_interval=0.05)
    inbox = await started_inbox(layer)
    box = inbox.mailbox()
    doomed = await started_inbox(layer, "pres-swept")
    await layer.presence.watch("swept", box.address)
    await box.get(5)
    await layer.presence.track("swept", doomed.address("ws"), "dora")
    assert list((await box.get(5))["joins"]) == ["dora"]
    await doomed.close()
    message = await box.get(5)
    assert message is not None and list(message["leaves"]) == ["dora"], message


async def test_entries_with_a_ttl_leave_by_themselves(make_layer):
    layer = make_layer(heartbeat_interval=0.2, presence_interval=0.05)
    inbox = await started_inbox(layer)
    box = inbox.mailbox()
    await layer.presence.watch("recent", box.address)
    await box.get(5)
    await layer.presence.track("recent", "email.sender-1", "carol@mail.example", {"via": "email"}, ttl=0.5)
    assert list((await box.get(5))["joins"]) == ["carol@mail.example"]
    # Tracked again: still one entry, its time renewed, nothing for watchers to show.
    await layer.presence.track("recent", "email.sender-1", "carol@mail.example", {"via": "email"}, ttl=0.6)
    assert len((await layer.presence.list("recent"))["carol@mail.example"]) == 1
    message = await box.get(5)
    assert message is not None and list(message["leaves"]) == ["carol@mail.example"], message
    assert await layer.presence.list("recent") == {}


async def test_entries_of_a_process_that_stops_beating_expire(make_layer, backend):
    if backend == "memory":
        pytest.skip("in memory a process lives until its inbox closes; nothing can stall it")
    layer = make_layer(heartbeat_interval=0.2, liveness_timeout=1.0)
    await layer._announce("pres-stalled", alive=True)
    await layer.presence.track("stall", "ws.pres-stalled!abc", "sam")
    assert list(await layer.presence.list("stall")) == ["sam"]
    peer = make_layer(prefix=layer.prefix[:-1], heartbeat_interval=0.2, liveness_timeout=1.0)
    deadline = time.monotonic() + 5
    while await peer.presence.list("stall"):
        assert time.monotonic() < deadline, "the entry of a process that stopped beating stayed"
        await asyncio.sleep(0.1)


async def test_bad_input_is_refused_clearly(make_layer):
    layer = make_layer(presence_max_meta_size=100)
    track = layer.presence.track
    with pytest.raises(InvalidMessage, match="JSON"):
        await track("g", "ws.a!b", "k", {"raw": b"\x00"})
    with pytest.raises(MessageTooLarge, match="limit is 100"):
        await track("g", "ws.a!b", "k", {"text": "x" * 200})
    with pytest.raises(InvalidMessage, match="ref"):
        await track("g", "ws.a!b", "k", {"ref": 1})
    with pytest.raises(InvalidMessage, match="key"):
        await track("g", "ws.a!b", "", {})
    with pytest.raises(InvalidChannelName):
        await track("g" * 90, "ws.a!b", "k")
    with pytest.raises(InvalidChannelName):
        await track("g", "ws.a!", "k")
    with pytest.raises(InvalidChannelName):
        await track("has space", "ws.a!b", "k")
    with pytest.raises(ValueError, match="frame"):
        await track("g", "ws.a!b", "k", diffs="xml")
    with pytest.raises(ValueError, match="ttl"):
        await track("g", "ws.a!b", "k", ttl=-1)
    assert await layer.presence.list("g") == {}


async def test_flush_forgets_presence(make_layer):
    layer = make_layer()
    await layer.presence.track("flushed", "ws.someone!x", "k")
    await layer.flush()
    assert await layer.presence.list("flushed") == {}
