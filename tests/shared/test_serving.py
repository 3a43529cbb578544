"""One lifecycle: the worker starts, serves and stops like every server, under the same
``serve`` that every command runs, and only ``stop_event`` installs signal handlers.
In process, on the memory layer."""

import asyncio
import gc
import os
import re
import signal
from pathlib import Path

import pytest

from switchroom.layers import get_layer
from switchroom.shared.config import Common
from switchroom.shared.serving import Ending, Server, serve, settle_gc
from switchroom.shared.startup import StartupError
from switchroom.worker import App, Worker

from ..worker.harness import http

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ["shared", "servers", "worker", "layers", "switchroom"]


def echo_app() -> App:
    app = App()

    @app.http("/")
    async def hello(message, ctx):
        await ctx.respond("hello")

    return app


async def test_a_worker_starts_and_stops_like_a_server():
    layer = get_layer("memory://")
    worker = Worker(echo_app(), layer, poll=0.05)
    assert isinstance(worker, Server) and isinstance(worker, Ending)
    assert await worker.not_ready() == "starting"
    await worker.start()
    assert await worker.not_ready() is None
    status, _, body, _ = await http(layer, "/")
    assert (status, body) == (200, b"hello")
    await asyncio.wait_for(worker.stop(), 5)
    assert await worker.not_ready() == "stopping"
    await asyncio.wait_for(worker.wait(), 1)


async def test_an_app_whose_startup_fails_cannot_start():
    async def asgi_app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    app = App()
    app.mount_asgi(asgi_app)
    worker = Worker(app, get_layer("memory://"))
    with pytest.raises(StartupError, match="the app did not start: .*no database"):
        await worker.start()


async def test_serve_runs_a_worker_until_sigterm():
    layer_url = "memory://"
    parts = []

    def build(layer):
        parts.append(Worker(echo_app(), layer, poll=0.05))
        return parts[0]

    serving = asyncio.ensure_future(serve(Common(layer=layer_url), "worker", build))
    while not (parts and parts[0].serving.is_set()):
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 10)
    assert await parts[0].not_ready() == "stopping"


class EndsOnItsOwn:
    """A part that fails after it started (as a worker whose loop fails)."""

    def __init__(self) -> None:
        self.stopped = False
        self.ended = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        asyncio.get_running_loop().call_later(0.05, self.ended.set_exception, RuntimeError("broke"))

    async def stop(self) -> None:
        self.stopped = True

    async def wait(self) -> None:
        await self.ended

    async def not_ready(self) -> str | None:
        return None

    def served_channels(self) -> list[str]:
        return []


async def test_serve_stops_a_part_that_ended_and_raises_its_error():
    part = EndsOnItsOwn()
    with pytest.raises(RuntimeError, match="broke"):
        await asyncio.wait_for(serve(Common(), "part", lambda layer: part), 10)
    assert part.stopped


def test_only_stop_event_installs_signal_handlers():
    installing = re.compile(r"add_signal_handler|signal\.signal\(")
    found = [
        str(path.relative_to(ROOT))
        for folder in PACKAGE
        for path in (ROOT / folder).rglob("*.py")
        if installing.search(path.read_text())
    ]
    assert found == ["shared/serving.py"]


def test_settle_gc_freezes_what_start_up_built_unless_turned_off():
    """Start-up's objects leave the collector's reach; SWITCHROOM_GC_FREEZE=0 keeps them in it."""
    gc.unfreeze()
    try:
        assert settle_gc({"SWITCHROOM_GC_FREEZE": "0"}) is False
        assert gc.get_freeze_count() == 0
        kept = [object() for _ in range(3)], {"start-up": "state"}
        assert settle_gc({}) is True
        assert gc.get_freeze_count() > 0
        assert kept
        with pytest.raises(StartupError, match="SWITCHROOM_GC_FREEZE"):
            settle_gc({"SWITCHROOM_GC_FREEZE": "maybe"})
    finally:
        gc.unfreeze()
