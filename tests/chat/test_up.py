"""``switchroom up`` in both modes: the chat page is served and a line typed on one socket
reaches every socket in the room."""

import asyncio
import json
import os
import re

import httpx
import pytest
from websockets.asyncio.client import connect

from .harness import UpProcess

pytestmark = pytest.mark.slow


async def next_line(client) -> dict:
    """The next line of the room, past the frames of who is in it."""
    while True:
        frame = json.loads(await asyncio.wait_for(client.recv(), 10))
        if not frame.get("type", "").startswith("presence."):
            return frame


async def room_round_trip(url: str, sockets: int) -> list[dict]:
    ws_url = url.replace("http://", "ws://") + "/room"
    clients = [await connect(ws_url) for _ in range(sockets)]
    try:
        await asyncio.sleep(0.3)
        await clients[0].send(json.dumps({"name": "ann", "text": "hello room"}))
        return [await next_line(c) for c in clients]
    finally:
        for client in clients:
            await client.close()


async def test_up_in_one_process():
    up = UpProcess("--workers", "2")
    try:
        async with httpx.AsyncClient() as client:
            page = await client.get(up.url + "/")
        assert page.status_code == 200
        assert "Switchroom chat" in page.text
        lines = await room_round_trip(up.url, 3)
        assert lines == [{"via": "web", "from": "ann", "text": "hello room"}] * 3
    finally:
        assert up.stop() == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_up_with_processes_on_its_own_redis():
    up = UpProcess("--processes", "--workers", "2", "--http-servers", "2")
    try:
        redis_pid = int(
            re.search(r"started redis-server on port \d+ \(pid (\d+), append-only", up.log_text()).group(1)
        )
        lines = await room_round_trip(up.url, 16)
        assert lines == [{"via": "web", "from": "ann", "text": "hello room"}] * 16
        output = up.log_text()
        # Sockets landed on both HTTP server processes, so the broadcast crossed processes.
        assert "http1 " in output and "http2 " in output
        assert re.search(r"http1 +\|.*WebSocket /room open", output)
        assert re.search(r"http2 +\|.*WebSocket /room open", output)
        # The servers behind durable channels found the private Redis persistent (AOF).
        assert "listening for SMTP" in output and "DURABLE CHANNELS AT RISK" not in output
    finally:
        up.stop()
    assert not pid_alive(redis_pid), "up should stop the redis-server it started"
