"""Running parts as a process: one lifecycle for every server and the worker.

A part (``Server``) starts, says whether it is ready, and stops gracefully. ``run_server``
is the whole life of a ``switchroom http``, ``email``, ``slack`` or ``worker`` process:
build the layer, wait for it, start the part and its health endpoint, serve until SIGTERM
or SIGINT (or until the part ends on its own), stop. ``stop_event`` is the one place
signal handlers are installed; ``switchroom up`` uses it and the same steps for its parts.

Once a part has started, everything the process built so far (modules, the app, routing
tables, the layer's clients) is moved out of the garbage collector's reach (``settle_gc``):
a full collection otherwise walks all of it again every few tens of seconds, a pause of
tens of milliseconds that every request in flight waits through.
``SWITCHROOM_GC_FREEZE=0`` turns this off.
"""

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol, runtime_checkable

from switchroom.layers import BaseLayer

from .config import Common
from .health import Health, HealthEndpoint, Part
from .logs import follow_twisted, setup_logging
from .options import boolean
from .startup import StartupError, build_layer, listen_error, report, wait_for_layer


@runtime_checkable
class Server(Part, Protocol):
    """What a part offers its process: ``start`` returns once it accepts work; ``stop``
    starts a graceful stop at once and its awaitable is done once stopped; ``not_ready``
    tells the health checks."""

    async def start(self) -> None: ...

    def stop(self) -> Awaitable[None]: ...


@runtime_checkable
class Ending(Protocol):
    """A part that can end on its own (the worker, when its app fails): ``wait`` returns
    when it has ended and raises what ended it."""

    async def wait(self) -> None: ...


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the only signal handlers a process installs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def unless_stopped(step: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run a start-up step; False (the step cancelled) if a stop signal comes first."""
    task = asyncio.ensure_future(step)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    task.result()
    return True


GC_FREEZE_ENV = "SWITCHROOM_GC_FREEZE"


def settle_gc(environ: Mapping[str, str] | None = None) -> bool:
    """Collect start-up's garbage, then freeze what is left (``gc.freeze``) so later
    collections walk only what was built since; off when ``SWITCHROOM_GC_FREEZE`` is false.

    True if it froze. A bad value of the variable is a StartupError."""
    environ = os.environ if environ is None else environ
    try:
        wanted = boolean(environ.get(GC_FREEZE_ENV, "1"))
    except ValueError as exc:
        raise StartupError(f"{GC_FREEZE_ENV}: {exc}") from None
    if not wanted:
        return False
    gc.collect()
    gc.freeze()
    return True


async def start_part(part: Server) -> None:
    """Start a part, then ``settle_gc``; the errors a bad setting or a taken port cause
    become StartupErrors."""
    follow_twisted()  # a part that runs on Twisted has loaded it by now
    try:
        await part.start()
    except (OSError, OverflowError) as exc:
        raise listen_error(exc) from None
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    settle_gc()


def build_part(build: Callable[[BaseLayer], Server], layer: BaseLayer) -> Server:
    """``build(layer)``; a setting it refuses (ValueError) is a StartupError."""
    try:
        return build(layer)
    except ValueError as exc:
        raise StartupError(str(exc)) from None


async def until_stopped_or_ended(parts: list[Server], stop: asyncio.Event) -> Server | None:
    """Wait for ``stop``; the part that ended on its own first, if one did."""
    waiters = {asyncio.ensure_future(p.wait()): p for p in parts if isinstance(p, Ending)}
    stopper = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
    for waiter in [stopper, *waiters]:
        if waiter not in done:
            waiter.cancel()
    ended = [waiters[w] for w in done if w in waiters]
    return ended[0] if ended else None


async def open_health(bind: str, port: int, health: Health) -> HealthEndpoint | None:
    """The health and metrics endpoint on ``port`` (``--metrics-port``), if one is asked for."""
    if not port:
        return None
    endpoint = HealthEndpoint(health, bind, port)
    try:
        await endpoint.start()
    except (OSError, OverflowError) as exc:
        raise StartupError(f"--metrics-bind {bind} --metrics-port {port}: {listen_error(exc)}") from None
    return endpoint


async def serve(common: Common, role: str, build: Callable[[BaseLayer], Server]) -> None:
    """Start the part on the layer ``--layer`` names; stop it when a signal arrives or
    it ends on its own (whose error then propagates)."""
    log = logging.getLogger(f"switchroom.{role}")
    layer = build_layer(common.layer)
    stop = stop_event()
    endpoint = None
    try:
        if not await unless_stopped(wait_for_layer(layer, common.layer_wait), stop):
            return
        server = build_part(build, layer)
        health = Health(layer)
        health.add(role, server)
        endpoint = await open_health(common.metrics_bind, common.metrics_port, health)
        if not await unless_stopped(start_part(server), stop):
            # A stop signal during a long start (Slack unreachable, a slow app startup).
            log.info("stopped before it was ready")
            await server.stop()
            return
        ended = await until_stopped_or_ended([server], stop)
        health.stopping = True
        if ended is None:
            log.info("stopping")
        await server.stop()
        if ended is not None:
            await ended.wait()
    finally:
        if endpoint is not None:
            await endpoint.stop()
        await layer.close()


def run_server(common: Common, role: str, build: Callable[[BaseLayer], Server]) -> int:
    """The process's exit code: 0 after a graceful stop, 2 when the part cannot start."""
    setup_logging(common.log_level, role, common.log_format)
    try:
        asyncio.run(serve(common, role, build))
    except StartupError as exc:
        return report(role, exc)
    logging.getLogger(f"switchroom.{role}").info("stopped")
    return 0
