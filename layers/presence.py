"""Presence, the pure part: entries, their events, diffs, member lists and the flush slot.

A group's presence is a set of **entries**, one per tracked address (a socket, or a
participant without one), each under a **key** (a user id) with **metadata**. A key with
several entries (a user with two tabs) is one member with several metas. Every change
appends an event (``join`` or ``leave`` of one entry) to the group's event list; a flush
takes the events and turns them into one **diff** per group (``joins`` and ``leaves`` by
key), sent to the group's watchers.

The **flush slot** keeps flushes of a group at least ``interval`` apart whichever process
makes them: an event finding the slot free flushes at once; one finding it cooling after a
flush claims the flush for when the cooling ends; one finding it claimed leaves the flush to
its claimant. The Redis scripts (``presence_redis.py``) keep the same states in a key.

Nothing here does I/O: the stores keep bytes in the formats below and the driver
(``tracking.py``) calls these functions.
"""

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .errors import InvalidChannelName, InvalidMessage, MessageTooLarge
from .names import process_of, validate_channel, validate_group

DEFAULT_INTERVAL = 0.1
DEFAULT_MAX_META_SIZE = 4096
# A claimed flush not made within this long after its time (its process died) is free
# again; the sweep claims it for the events left waiting.
CLAIM_GRACE = 5.0
# Watchers of a group are members of these groups (frames for WebSockets, or plain messages).
WATCH_GROUPS = {"frame": "presence-f.", "message": "presence-m."}
MAX_GROUP_LENGTH = 99 - max(len(p) for p in WATCH_GROUPS.values())

Metas = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Entry:
    """One tracked address: its key, metadata, the process it lives in ("" for none) and
    the time (epoch ms) it leaves by itself (0 for never)."""

    address: str
    key: str
    meta: dict[str, Any]
    process: str = ""
    deadline_ms: int = 0

    def pack(self) -> bytes:
        """The stored value: a msgpack array ``[process, deadline ms, key, public meta]``, so
        scripts read the process and a whole group decodes in one call (``members``)."""
        return msgpack.packb([self.process, self.deadline_ms, self.key, self.public_meta()])

    @classmethod
    def unpack(cls, address: str, value: bytes) -> "Entry":
        """The entry stored as ``value`` for ``address``."""
        process, deadline, key, meta = msgpack.unpackb(value, raw=False)
        del meta["ref"]
        return cls(address, key, meta, process, deadline)

    def public_meta(self) -> dict[str, Any]:
        """The metadata as watchers and lists show it, with a ``ref`` naming the entry."""
        return {**self.meta, "ref": ref(self.address)}


def items(values: list[bytes]) -> list[Any]:
    """Many stored values decoded in one call, as one flat list: ``[process, deadline ms,
    key, public meta]`` of each value in turn.

    A stored value is a 4-item array header (one byte, ``0x94``) and its items; without
    the headers, the values are one array of ``4 * len(values)`` items, which decodes with
    no list per entry (the metas are the only containers made)."""
    body = b"".join([value[1:] for value in values])
    return msgpack.unpackb(b"\xdd" + (4 * len(values)).to_bytes(4, "big") + body, raw=False)


def ref(address: str) -> str:
    """A short stable name of an entry that does not reveal its address."""
    return hashlib.blake2s(address.encode(), digest_size=6).hexdigest()


def new_entry(
    group: str,
    address: str,
    key: str,
    meta: dict[str, Any] | None,
    max_meta_size: int,
    now: float,
    ttl: float | None = None,
) -> Entry:
    """Check what ``track`` was given and build its entry.

    ``meta`` must be JSON data (it is shown to browsers) of at most ``max_meta_size`` bytes;
    the entry of an ``!`` address belongs to that address's process and leaves with it.
    """
    check_group(group)
    validate_channel(address)
    if address.endswith("!"):
        raise InvalidChannelName(f"a bare process prefix cannot be tracked: {address!r}")
    if not isinstance(key, str) or not key:
        raise InvalidMessage("a presence key must be a non-empty string")
    meta = dict(meta or {})
    if "ref" in meta:
        raise InvalidMessage("'ref' is presence's own name for an entry; use another metadata key")
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMessage(f"presence metadata must be JSON data: {exc}") from None
    if len(text) + len(key) > max_meta_size:
        raise MessageTooLarge(
            f"presence key and metadata are {len(text) + len(key)} bytes; the limit is {max_meta_size}"
        )
    if ttl is not None and not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError("ttl must be a positive number of seconds")
    deadline = int((now + ttl) * 1000) if ttl is not None else 0
    process = process_of(address) if "!" in address else ""
    return Entry(address, key, meta, process, deadline)


def check_group(group: str) -> str:
    """A presence group is a group name short enough to name its watchers' groups too."""
    validate_group(group)
    if len(group) > MAX_GROUP_LENGTH:
        raise InvalidChannelName(
            f"a presence group name has at most {MAX_GROUP_LENGTH} characters: {group!r}"
        )
    return group


def watch_group(group: str, form: str) -> str:
    """The group whose members get ``group``'s diffs as ``form`` (``frame`` or ``message``)."""
    if form not in WATCH_GROUPS:
        raise ValueError(f"diffs come as 'frame' or 'message', not {form!r}")
    return WATCH_GROUPS[form] + group


# -- events ------------------------------------------------------------------------------


def join_event(address: str, value: bytes) -> bytes:
    """The event of an entry stored (``j<address>\\n<value>``)."""
    return b"j" + address.encode() + b"\n" + value


def leave_event(address: str, value: bytes) -> bytes:
    """The event of an entry removed, carrying what it was."""
    return b"l" + address.encode() + b"\n" + value


@dataclass
class Diff:
    """What changed in a group between two flushes: metas that joined and left, by key."""

    joins: Metas = field(default_factory=dict)
    leaves: Metas = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.joins or self.leaves)


def diff(events: list[bytes]) -> Diff:
    """The net change that ``events`` (oldest first) make: an entry that joined and left in
    the same batch does not show, nor does one tracked again as it was (a renewed ttl); one
    whose key or metadata changed leaves and joins again."""
    before: dict[str, bytes | None] = {}
    after: dict[str, bytes | None] = {}
    for event in events:
        kind = event[:1]
        address, _, value = event[1:].partition(b"\n")
        name = address.decode()
        if name not in before:
            before[name] = value if kind == b"l" else None
        after[name] = value if kind == b"j" else None
    out = Diff()
    for name, old_value in before.items():
        new_value = after[name]
        old = Entry.unpack(name, old_value) if old_value is not None else None
        new = Entry.unpack(name, new_value) if new_value is not None else None
        if old is not None and new is not None and (old.key, old.meta) == (new.key, new.meta):
            continue
        if old is not None:
            out.leaves.setdefault(old.key, []).append(old.public_meta())
        if new is not None:
            out.joins.setdefault(new.key, []).append(new.public_meta())
    return out


def members(values: list[bytes], dead: set[str], now_ms: int) -> tuple[Metas, int]:
    """From a group's stored values: one item per key (sorted) with the metas of its present
    entries (sorted by ref), and how many entries are gone (their process dead, or their
    deadline passed).

    The entries are visited in key order (their positions sorted by key), so each key's
    metas are adjacent and the result is made sorted in one pass, with no lookup per entry
    and no second dict."""
    flat = items(values)
    processes, deadlines, keys, metas = flat[0::4], flat[1::4], flat[2::4], flat[3::4]
    checked = bool(dead) or any(deadlines)
    out: Metas = {}
    gone = 0
    last: str | None = None
    group: list[dict[str, Any]] = []
    for i in sorted(range(len(keys)), key=keys.__getitem__):
        if checked and ((dead and processes[i] in dead) or 0 < deadlines[i] <= now_ms):
            gone += 1
            continue
        key = keys[i]
        if key == last:
            group.append(metas[i])
        else:
            out[key] = group = [metas[i]]
            last = key
    for group in out.values():
        if len(group) > 1:
            group.sort(key=lambda m: m["ref"])
    return out, gone


# -- messages ------------------------------------------------------------------------------


def state_message(group: str, metas: Metas, form: str) -> dict[str, Any]:
    """The whole list, sent to a watcher when it starts watching."""
    return _shaped({"type": "presence.state", "group": group, "members": metas}, form)


def diff_message(group: str, change: Diff, form: str) -> dict[str, Any]:
    """One flush's diff, as a watcher receives it."""
    return _shaped(
        {"type": "presence.diff", "group": group, "joins": change.joins, "leaves": change.leaves}, form
    )


def _shaped(body: dict[str, Any], form: str) -> dict[str, Any]:
    if form == "frame":
        return {"text": json.dumps(body, separators=(",", ":"))}
    return body


# -- the flush slot --------------------------------------------------------------------------


class FlushSlot:
    """The flush slot of one group (see the module docstring), for the memory store.

    ``claim`` returns in how many seconds the caller must flush, or None if another caller
    will; ``flushed`` starts the cooling after a flush.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.state = ""
        self.until = 0.0

    def claim(self, now: float) -> float | None:
        if self.state and self.until <= now:
            self.state = ""
        if self.state == "claimed":
            return None
        delay = self.until - now if self.state == "cooling" else 0.0
        self.state, self.until = "claimed", now + delay + CLAIM_GRACE
        return delay

    def flushed(self, now: float) -> None:
        self.state, self.until = "cooling", now + self.interval
