"""The layer's wire encoding: msgpack with a reused packer that no two packs share."""

import msgpack

from switchroom.layers import base
from switchroom.layers.base import PACKER_BUFFER, packb


def test_packb_is_msgpack_with_bin_type():
    message = {"b": b"\x00", "s": "é", "n": [1, None, 2.5, True], "d": {"k": b"v"}}
    assert packb(message) == msgpack.packb(message, use_bin_type=True)
    assert packb(message) == packb(message)


def test_a_pack_inside_a_pack_gets_its_own_packer():
    inner = {"inner": [1, 2, 3]}
    inner_bytes = []

    class Nested(dict):
        def items(self):
            inner_bytes.append(packb(inner))
            return super().items()

    outer = {"a": [1, Nested(b=2)], "c": "after"}
    assert msgpack.unpackb(packb(outer)) == {"a": [1, {"b": 2}], "c": "after"}
    assert inner_bytes == [msgpack.packb(inner)]


def test_a_failed_pack_does_not_leak_into_the_next():
    try:
        packb({"x": "y" * 50, "z": object()})
    except TypeError:
        pass
    assert msgpack.unpackb(packb({"ok": 1})) == {"ok": 1}


def test_a_packer_grown_by_a_large_message_is_not_kept():
    """Its buffer stays as large as the largest message it packed, so it is let go."""
    base._packers.clear()
    big = {"b": b"x" * (2 * PACKER_BUFFER)}
    assert msgpack.unpackb(packb(big)) == big
    assert base._packers == []
    assert msgpack.unpackb(packb({"small": 1})) == {"small": 1}
    assert len(base._packers) == 1
