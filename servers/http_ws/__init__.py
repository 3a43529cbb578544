"""The HTTP/WebSocket interface server: Twisted web and Autobahn on the asyncio loop.

    server = HttpServer(layer, Settings(port=8000))
    await server.start()

``translate`` holds the protocol ↔ message rules as pure functions; ``http`` and
``websocket`` are the Twisted and Autobahn drivers around them.
"""

from .server import HttpServer, install_reactor
from .settings import Settings

__all__ = ["HttpServer", "Settings", "install_reactor"]
