"""The data frames the WebSocket driver writes itself are the bytes Autobahn would send."""

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory

from switchroom.servers.http_ws.websocket import frame_head


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("is_binary", [False, True])
def test_frame_head_matches_autobahn(size, is_binary):
    """Each payload length encoding (7, 7+16 and 7+64 bits), text and binary."""
    payload = b"a" * size
    prepared = WebSocketServerFactory().prepareMessage(payload, isBinary=is_binary)
    assert frame_head(size, is_binary) + payload == prepared.payloadHybi
