"""How an inbox names its addresses: ``kind.<process>!`` and 16 random hex digits drawn from
the operating system's secure source, never repeated, with the kind checked as a channel name."""

import re

import pytest

from switchroom.layers import MemoryLayer
from switchroom.layers.errors import InvalidChannelName
from switchroom.layers.inbox import RANDOM_POOL, Inbox


def test_addresses_are_the_kind_the_process_and_random_digits_never_repeated():
    inbox = Inbox(MemoryLayer(), "proc-1")
    count = 3 * RANDOM_POOL // 8 + 5
    addresses = [inbox.address("http.response") for _ in range(count)]
    assert all(re.fullmatch(r"http\.response\.proc-1![0-9a-f]{16}", a) for a in addresses)
    assert len(set(addresses)) == count


def test_local_parts_come_from_os_urandom(monkeypatch):
    """The digits are the OS's random bytes as read (no generator a few outputs would reveal)."""
    inbox = Inbox(MemoryLayer(), "p")
    reads: list[int] = []

    def urandom(size: int) -> bytes:
        reads.append(size)
        return bytes(range(8)) * (size // 8)

    monkeypatch.setattr("switchroom.layers.inbox.os.urandom", urandom)
    assert inbox.address("k") == "k.p!0001020304050607"
    assert reads == [RANDOM_POOL]


@pytest.mark.parametrize("kind", ["bad kind", "x" * 100, "a!b"])
def test_an_invalid_kind_is_refused_every_time(kind):
    inbox = Inbox(MemoryLayer(), "p")
    for _ in range(2):
        with pytest.raises(InvalidChannelName):
            inbox.address(kind)


def test_a_given_local_part_is_checked_and_kept():
    inbox = Inbox(MemoryLayer(), "p")
    assert inbox.address("slack.send", local="Ev123") == "slack.send.p!Ev123"
    with pytest.raises(InvalidChannelName):
        inbox.address("slack.send", local="no spaces")
