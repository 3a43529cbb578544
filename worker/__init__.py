"""The worker runtime: routing, consumers, the worker loop and the ASGI 3 bridge.

    from switchroom.worker import App

    app = App()

    @app.http("/hello/{name}")
    async def hello(message, ctx, name):
        await ctx.respond(f"Hello, {name}!")

Each consumer gets the context of its protocol: ``HttpContext``, ``WebSocketContext``,
``EmailContext`` or ``SlackContext``, all of them a ``Context`` (``SyncContext`` for plain
functions). Run it with ``switchroom worker module:app``; see ``docs/worker.md``.
"""

from .app import App
from .context import Context, EmailContext, HttpContext, SlackContext, SyncContext, WebSocketContext
from .runner import Worker

__all__ = [
    "App",
    "Context",
    "EmailContext",
    "HttpContext",
    "SlackContext",
    "SyncContext",
    "WebSocketContext",
    "Worker",
]
