"""A Starlette app whose socket is a ``WebSocketEndpoint`` (JSON encoding): it greets on
connect, answers each message, and says goodbye in the worker's log on disconnect."""

import logging

from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.routing import WebSocketRoute

log = logging.getLogger("switchroom.worker")


class Counter(WebSocketEndpoint):
    encoding = "json"

    async def on_connect(self, websocket):
        await websocket.accept()
        self.seen = 0
        await websocket.send_json({"hello": websocket.path_params["name"]})

    async def on_receive(self, websocket, data):
        self.seen += 1
        await websocket.send_json({"seen": self.seen, "echo": data})

    async def on_disconnect(self, websocket, close_code):
        log.warning("endpoint %s left with %s after %d", websocket.path_params["name"], close_code, self.seen)


app = Starlette(routes=[WebSocketRoute("/count/{name}", Counter)])
