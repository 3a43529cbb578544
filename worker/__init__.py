"""The worker runtime: routing, consumers, the worker loop and the ASGI 3 bridge.

    from switchroom.worker import App

    app = App()

    @app.http("/hello/{name}")
    async def hello(message, ctx, name):
        await ctx.respond(f"Hello, {name}!")

Run it with ``switchroom worker module:app``; see ``docs/worker.md``.
"""

from .app import App
from .context import Context, SyncContext
from .runner import Worker

__all__ = ["App", "Context", "SyncContext", "Worker"]
