"""Presence across two real ``switchroom http`` servers and a worker, with real WebSocket
clients: three users (one with tabs on both servers) see the same list everywhere, a closed
tab changes its user's metas but not the member, and the members of a server killed with
SIGKILL leave within 10 s, their leave events reaching the sockets of the other server."""

import asyncio
import json
import signal
import time

import pytest
from websockets.asyncio.client import connect

from switchroom.layers import get_layer

from ..layers.test_presence import apply
from ..worker.harness import WorkerProcess
from .harness import ServerProcess

pytestmark = pytest.mark.slow


class Client:
    """A socket in the room that keeps its view of the list from the frames it gets."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.view: dict = {}
        self.frames = 0
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            message = json.loads(frame)
            assert message["group"] == "room"
            self.frames += 1
            apply(self.view, message)

    def tabs(self) -> dict[str, list[str]]:
        if "\0ready" not in self.view:
            return {}
        return {
            key: sorted(m["tab"] for m in refs.values())
            for key, refs in self.view.items()
            if key != "\0ready"
        }


async def join(server: ServerProcess, user: str, tab: str) -> Client:
    return Client(await connect(f"{server.ws_url}/room?user={user}&tab={tab}"))


async def everyone_sees(clients, expected: dict, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while any(c.tabs() != expected for c in clients):
        views = [c.tabs() for c in clients]
        assert time.monotonic() < deadline, f"not everyone sees {expected}: {views}"
        await asyncio.sleep(0.05)


def tabs_of(listed: dict) -> dict:
    return {key: sorted(m["tab"] for m in metas) for key, metas in listed.items()}


async def test_two_servers_three_users_one_list_and_dead_servers_leave(redis_server):
    first = ServerProcess(redis_server.url, prefix="presence-e2e")
    second = ServerProcess(redis_server.url, prefix="presence-e2e")
    worker = WorkerProcess(first.layer_url, "tests.http_ws.presence_app:app")
    layer = get_layer(first.layer_url)
    clients: list[Client] = []
    try:
        alice1 = await join(first, "alice", "1")
        alice2 = await join(second, "alice", "2")
        alice3 = await join(second, "alice", "3")
        bob = await join(first, "bob", "1")
        carol = await join(second, "carol", "1")
        clients = [alice1, alice2, alice3, bob, carol]
        everyone = {"alice": ["1", "2", "3"], "bob": ["1"], "carol": ["1"]}
        await everyone_sees(clients, everyone)
        assert tabs_of(await layer.presence.list("room")) == everyone

        await alice2.ws.close()
        clients.remove(alice2)
        fewer_tabs = {"alice": ["1", "3"], "bob": ["1"], "carol": ["1"]}
        await everyone_sees(clients, fewer_tabs)
        assert tabs_of(await layer.presence.list("room")) == fewer_tabs

        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(10)
        killed = time.monotonic()
        survivors = [alice1, bob]
        await everyone_sees(survivors, {"alice": ["1"], "bob": ["1"]}, within=10)
        assert time.monotonic() - killed < 10
        assert tabs_of(await layer.presence.list("room")) == {"alice": ["1"], "bob": ["1"]}
    finally:
        for client in clients:
            client.reader.cancel()
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
        await layer.flush()
        await layer.close()
        worker.stop()
        first.stop()
        second.stop()
