"""Running one interface server as a process: build its layer, wait for it, start the
server and its health endpoint, and stop gracefully on SIGTERM or SIGINT. Shared by
``switchroom http``, ``email`` and ``slack``; the worker uses the same steps."""

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from switchroom.layers import BaseLayer

from .config import layer_from_args
from .health import Health, HealthEndpoint, Part
from .logs import setup_logging
from .startup import StartupError, os_error, report, wait_for_layer


class Server(Part, Protocol):
    """What an interface server offers its process: start, a graceful stop, and readiness."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
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


async def start_part(part: Server) -> None:
    """Start a server; the errors a bad setting or a taken port cause become StartupErrors."""
    try:
        await part.start()
    except OSError as exc:
        raise os_error(exc) from None
    except ValueError as exc:
        raise StartupError(str(exc)) from None


async def open_health(args: argparse.Namespace, health: Health) -> HealthEndpoint | None:
    """The health and metrics endpoint on ``--metrics-port``, if one is asked for."""
    if not args.metrics_port:
        return None
    endpoint = HealthEndpoint(health, args.metrics_bind, args.metrics_port)
    try:
        await endpoint.start()
    except OSError as exc:
        raise StartupError(f"--metrics-port {args.metrics_port}: {os_error(exc)}") from None
    return endpoint


async def serve(args: argparse.Namespace, role: str, build: Callable[[BaseLayer], Server]) -> None:
    """Start the server on the layer ``--layer`` names; stop it when a signal arrives."""
    log = logging.getLogger(f"switchroom.{role}")
    layer = layer_from_args(args)
    stop = stop_event()
    endpoint = None
    try:
        if not await unless_stopped(wait_for_layer(layer, args.layer_wait), stop):
            return
        try:
            server = build(layer)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        health = Health(layer)
        health.add(role, server)
        endpoint = await open_health(args, health)
        await start_part(server)
        await stop.wait()
        health.stopping = True
        log.info("stopping")
        await server.stop()
    finally:
        if endpoint is not None:
            await endpoint.stop()
        await layer.close()


def run_server(args: argparse.Namespace, role: str, build: Callable[[BaseLayer], Server]) -> int:
    """The process's exit code: 0 after a graceful stop, 2 when the server cannot start."""
    setup_logging(args.log_level, role, args.log_format)
    try:
        asyncio.run(serve(args, role, build))
    except StartupError as exc:
        return report(role, exc)
    logging.getLogger(f"switchroom.{role}").info("stopped")
    return 0
