"""Presence for ASGI 1.0 peers and plain scripts: the adapter's and ``SyncLayer``'s blocking
``presence`` see and change the same list as the async API of another process."""

import json
import uuid

from switchroom.layers import SyncLayer, get_layer
from switchroom.layers.asgi1 import ChannelLayer


async def test_an_asgi1_peer_and_a_script_share_the_list(redis_server):
    url = f"{redis_server.url}?prefix=p1-{uuid.uuid4().hex[:8]}"
    peer = ChannelLayer(url)
    script = SyncLayer(get_layer(url))
    watcher = get_layer(url, presence_interval=0.05)
    try:
        await watcher.inbox.start()
        box = watcher.inbox.mailbox()
        await watcher.presence.watch("lobby", box.address, form="frame")
        assert json.loads((await box.get(5))["text"])["members"] == {}
        peer.presence.track("lobby", "websocket.send.oldpeer!1", "ann", {"via": "web"})
        script.presence.track("lobby", "email.sender-1", "cy@example.com", {"via": "email"}, ttl=60)
        assert sorted(peer.presence.list("lobby")) == ["ann", "cy@example.com"]
        assert sorted(await watcher.presence.list("lobby")) == ["ann", "cy@example.com"]
        joined: set[str] = set()
        while joined != {"ann", "cy@example.com"}:
            joined |= set(json.loads((await box.get(5))["text"])["joins"])
        peer.presence.untrack("lobby", "websocket.send.oldpeer!1")
        assert list(script.presence.list("lobby")) == ["cy@example.com"]
    finally:
        await watcher.flush()
        await watcher.close()
        script.close()
        peer.close()
