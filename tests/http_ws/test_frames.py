"""The WebSocket driver's own parts, in process: the data frames it writes itself are the
bytes Autobahn would send, and the sockets' outboxes reach the layer whole and in order."""

import asyncio

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory

from switchroom.layers.memory import MemoryLayer
from switchroom.servers.http_ws.websocket import Outboxes, frame_head


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("is_binary", [False, True])
def test_frame_head_matches_autobahn(size, is_binary):
    """Each payload length encoding (7, 7+16 and 7+64 bits), text and binary."""
    payload = b"a" * size
    prepared = WebSocketServerFactory().prepareMessage(payload, isBinary=is_binary)
    assert frame_head(size, is_binary) + payload == prepared.payloadHybi


class SlowLayer(MemoryLayer):
    """The in-process layer, with each send taking a loop turn as a network round trip does."""

    async def send_many(self, items):
        await asyncio.sleep(0)
        return await super().send_many(items)


class Sock:
    """What ``Outboxes`` uses of a socket: its outbox, ``sent`` and ``stop_sending``."""

    def __init__(self) -> None:
        self.outbox: list = []
        self.sending = False

    def queue(self, outboxes: Outboxes, channel: str, message: dict) -> None:
        self.outbox = [*self.outbox, (channel, message)]
        if not self.sending:
            self.sending = True
            outboxes.wake(self)

    def sent(self, batch, results) -> bool:
        assert results == [None] * len(batch)
        if self.outbox:
            return True
        self.stop_sending()
        return False

    def stop_sending(self) -> None:
        self.sending = False


async def test_outboxes_send_each_sockets_messages_in_order_also_those_queued_in_flight():
    layer = SlowLayer()
    outboxes = Outboxes(layer)
    a, b = Sock(), Sock()
    a.queue(outboxes, "ch.a", {"n": 1})
    b.queue(outboxes, "ch.b", {"n": 1})
    a.queue(outboxes, "ch.a", {"n": 2})
    await asyncio.sleep(0)  # the first round is on its way
    assert a.outbox == () and a.sending
    a.queue(outboxes, "ch.a", {"n": 3})
    b.queue(outboxes, "ch.b", {"n": 2})
    while outboxes.task is not None:
        await asyncio.sleep(0)
    assert not a.sending and not b.sending
    got = await layer.receive_many(["ch.a"], 10, timeout=1)
    assert [m["n"] for _, m in got] == [1, 2, 3]
    got = await layer.receive_many(["ch.b"], 10, timeout=1)
    assert [m["n"] for _, m in got] == [1, 2]
