"""Running one interface server as a process: build its layer, start it, and stop it
gracefully on SIGTERM or SIGINT. Shared by ``switchroom http``, ``email`` and ``slack``."""

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Protocol

from switchroom.layers import BaseLayer

from .config import layer_from_args
from .logs import setup_logging


class Server(Protocol):
    """What an interface server offers its process: start, then a graceful stop."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve(args: argparse.Namespace, build: Callable[[BaseLayer], Server], log: logging.Logger) -> None:
    """Start the server on the layer ``--layer`` names; stop it when a signal arrives."""
    layer = layer_from_args(args)
    server = build(layer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await stop.wait()
        log.info("stopping")
        await server.stop()
    finally:
        await layer.close()


def run_server(args: argparse.Namespace, role: str, build: Callable[[BaseLayer], Server]) -> int:
    """The process's exit code: 0 after a graceful stop, 2 when the server cannot start."""
    setup_logging(args.log_level, role)
    log = logging.getLogger(f"switchroom.{role}")
    try:
        asyncio.run(serve(args, build, log))
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    log.info("stopped")
    return 0
