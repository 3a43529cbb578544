"""A small worker for the server tests: it answers on the layer according to the path,
and records what it received so tests can check the messages the server produced."""

import asyncio
import hashlib
import json
from typing import Any

from switchroom.layers import BaseLayer

CHANNELS = [
    "http.request",
    "http.disconnect",
    "websocket.connect",
    "websocket.receive",
    "websocket.disconnect",
]


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


class Responder:
    """Reads the server's channels and answers; ``seen`` keeps (channel, message) pairs."""

    def __init__(self, layer: BaseLayer) -> None:
        self.layer = layer
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> "Responder":
        self.task = asyncio.get_running_loop().create_task(self.run())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def run(self) -> None:
        while True:
            channel, message = await self.layer.receive(CHANNELS, timeout=1)
            if channel is None:
                continue
            self.seen.append((channel, message))
            self.arrived.set()
            asyncio.get_running_loop().create_task(self.answer(channel, message))

    async def wait_for(self, channel: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first message seen on ``channel`` whose fields equal ``match``."""
        async with asyncio.timeout(timeout):
            while True:
                for seen_channel, message in self.seen:
                    if seen_channel == channel and all(message.get(k) == v for k, v in match.items()):
                        return message
                self.arrived.clear()
                await self.arrived.wait()

    async def reply(self, message: dict[str, Any], answer: dict[str, Any]) -> None:
        await self.layer.send(message["reply_channel"], answer)

    async def answer(self, channel: str, message: dict[str, Any]) -> None:
        if channel == "http.request":
            await self.answer_http(message)
        elif channel == "websocket.connect":
            await self.answer_connect(message)
        elif channel == "websocket.receive":
            await self.answer_frame(message)

    async def answer_http(self, message: dict[str, Any]) -> None:
        path = message["path"]
        ok = {"status": 200, "headers": [[b"content-type", b"text/plain"]]}
        if path == "/hello":
            await self.reply(message, {**ok, "content": b"Hello, world!"})
        elif path == "/scope":
            scope = {k: v for k, v in message.items() if k not in ("body", "reply_channel")}
            await self.reply(message, {**ok, "content": json.dumps(jsonable(scope)).encode()})
        elif path == "/body":
            body = message["body"]
            chunks = 1
            if message["body_channel"]:
                more = True
                while more:
                    _, chunk = await self.layer.receive([message["body_channel"]], timeout=10)
                    body += chunk["content"]
                    more = chunk["more_content"]
                    chunks += 1
            summary = {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "parts": chunks}
            await self.reply(message, {**ok, "content": json.dumps(summary).encode()})
        elif path == "/stream":
            await self.reply(message, {**ok, "content": b"one ", "more_content": True})
            await asyncio.sleep(0.05)
            await self.reply(message, {"content": b"two ", "more_content": True})
            await asyncio.sleep(0.05)
            await self.reply(message, {"content": b"three", "more_content": False})
        elif path == "/slow":
            await asyncio.sleep(0.5)
            await self.reply(message, {**ok, "content": b"finally"})
        elif path == "/bad":
            await self.reply(message, {"status": "two hundred"})
        elif path == "/headers":
            await self.reply(
                message,
                {
                    "status": 201,
                    "headers": [[b"x-one", b"1"], [b"set-cookie", b"a=1"], [b"set-cookie", b"b=2"]],
                },
            )

    async def answer_connect(self, message: dict[str, Any]) -> None:
        path = message["path"]
        if path == "/ws/reject":
            await self.reply(message, {"accept": False})
        elif path == "/ws/subprotocol":
            await self.reply(message, {"accept": True, "subprotocol": message["subprotocols"][-1]})
        elif path == "/ws/greet":
            await self.reply(message, {"text": "welcome"})
        elif path != "/ws/silent":
            await self.reply(message, {"accept": True})

    async def answer_frame(self, message: dict[str, Any]) -> None:
        if message["path"] == "/ws/close":
            await self.reply(message, {"close": 4001, "reason": "bye now"})
        elif message.get("text") is not None:
            await self.reply(message, {"text": f"{message['order']}:{message['text']}"})
        else:
            await self.reply(message, {"bytes": message["bytes"][::-1]})
