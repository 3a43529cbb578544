"""The pure part of presence: entries, the diff of a batch of events, member lists and the
flush slot, without any layer."""

import gc

import pytest

from switchroom.layers import InvalidMessage
from switchroom.layers.presence import (
    Entry,
    FlushSlot,
    diff,
    join_event,
    leave_event,
    members,
    new_entry,
    ref,
)
from switchroom.layers.tracking import collector_held


def entry(address: str, key: str, **meta) -> Entry:
    return new_entry("room", address, key, meta, 4096, 1000.0)


def joined(e: Entry) -> bytes:
    return join_event(e.address, e.pack())


def left(e: Entry) -> bytes:
    return leave_event(e.address, e.pack())


def test_an_entry_belongs_to_its_address_process_and_packs_back():
    tab = new_entry("room", "websocket.send.p1!abc", "alice", {"tab": 1}, 4096, 1000.0, ttl=2)
    assert tab.process == "p1" and tab.deadline_ms == 1_002_000
    assert Entry.unpack(tab.address, tab.pack()) == tab
    assert entry("presence-seen.x", "carol").process == ""
    assert tab.public_meta() == {"tab": 1, "ref": ref(tab.address)}


def test_a_batch_shows_its_net_change_only():
    a1, a2, b = entry("ws.p!1", "alice", tab=1), entry("ws.p!2", "alice", tab=2), entry("ws.p!3", "bob")
    change = diff([joined(a1), joined(a2), joined(b), left(b)])
    assert change.joins == {"alice": [a1.public_meta(), a2.public_meta()]}
    assert change.leaves == {}
    assert not diff([joined(b), left(b)])


def test_a_changed_meta_leaves_and_joins_and_a_renewed_ttl_shows_nothing():
    old, new = entry("ws.p!1", "alice", typing=False), entry("ws.p!1", "alice", typing=True)
    change = diff([left(old), joined(new)])
    assert change.leaves == {"alice": [old.public_meta()]} and change.joins == {"alice": [new.public_meta()]}
    first = new_entry("room", "seen.c", "carol", {}, 4096, 1000.0, ttl=5)
    again = new_entry("room", "seen.c", "carol", {}, 4096, 1003.0, ttl=5)
    assert not diff([left(first), joined(again)])


def test_members_are_one_item_per_key_without_the_gone_entries():
    a1, a2 = entry("ws.p1!1", "alice", tab=1), entry("ws.p2!2", "alice", tab=2)
    bob, gone, gone_tab = entry("ws.p1!3", "bob"), entry("ws.p3!4", "dan"), entry("ws.p3!5", "alice")
    timed = new_entry("room", "seen.c", "carol", {}, 4096, 1000.0, ttl=1)
    found = [e.pack() for e in (bob, a2, gone_tab, timed, a1, gone)]
    listed, left = members(found, dead={"p3"}, now_ms=1_001_000)
    assert left == 3
    assert listed == {
        "alice": sorted([a1.public_meta(), a2.public_meta()], key=lambda m: m["ref"]),
        "bob": [bob.public_meta()],
    }
    assert list(listed) == ["alice", "bob"]
    assert members(found, dead=set(), now_ms=0)[1] == 0


def test_members_decode_any_stored_entry_in_one_call():
    meta = {"name": "Zoë " + "x" * 300, "tabs": [1, [2.5, None]], "at": {"x": 2**40, "ok": True}}
    long_process = "ws." + "p" * 40 + "!1"  # a process name past msgpack's short strings
    rich = new_entry("room", long_process, "ünïcode key", meta, 4096, 1000.0, ttl=10**9)
    plain = entry("ws.p!2", "bob")
    listed, left = members([rich.pack(), plain.pack()], dead=set(), now_ms=1_001_000)
    assert left == 0
    assert listed == {"bob": [plain.public_meta()], "ünïcode key": [rich.public_meta()]}
    assert members([], dead=set(), now_ms=0) == ({}, 0)


def test_the_collector_is_held_while_a_list_is_built_and_restored_after():
    assert gc.isenabled()
    with collector_held():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), collector_held():
        raise KeyError("the build failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_held():
            pass
        assert not gc.isenabled(), "a collector disabled by the app stays disabled"
    finally:
        gc.enable()


def test_the_flush_slot_keeps_flushes_an_interval_apart():
    slot = FlushSlot(0.1)
    assert slot.claim(10.0) == 0.0  # idle: flush at once
    assert slot.claim(10.01) is None  # claimed: its claimant flushes
    slot.flushed(10.02)
    assert slot.claim(10.05) == pytest.approx(0.07)  # cooling: flush when it ends
    assert slot.claim(10.06) is None
    slot.flushed(10.12)
    assert slot.claim(10.3) == 0.0  # cooled down


def test_a_claim_whose_flusher_vanished_is_free_again():
    slot = FlushSlot(0.1)
    assert slot.claim(0.0) == 0.0
    assert slot.claim(1.0) is None
    assert slot.claim(100.0) == 0.0


def test_meta_must_be_json_data():
    with pytest.raises(InvalidMessage):
        new_entry("room", "ws.p!1", "k", {"when": object()}, 4096, 0.0)
    with pytest.raises(InvalidMessage):
        new_entry("room", "ws.p!1", "k", {"x": float("nan")}, 4096, 0.0)
