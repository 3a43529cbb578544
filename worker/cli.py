"""``switchroom worker module:attr``: load an App (or a bare ASGI 3 app) and serve it until
SIGTERM or SIGINT, finishing running consumers first."""

import argparse
import asyncio
import importlib
import logging
import os
import sys
from typing import Any

from switchroom.shared.config import add_common_arguments, add_option, layer_from_args
from switchroom.shared.health import Health
from switchroom.shared.logs import setup_logging
from switchroom.shared.serving import open_health, stop_event, unless_stopped
from switchroom.shared.startup import StartupError, report, wait_for_layer

from .app import App
from .runner import Worker

log = logging.getLogger("switchroom.worker")

APP_HELP = "give module:attr of a switchroom App or an ASGI 3 app, importable from the current folder"


def load_app(target: str) -> App:
    """Import ``module:attr``; a bare ASGI 3 callable is wrapped in an ``App`` serving all HTTP.

    A target that cannot be found (no such module, no such attribute, not an app) is a
    StartupError; an error raised by the module's own code while it imports is left to
    show its traceback, since it is a bug in that code.
    """
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise StartupError(f"cannot load the app {target!r}: {APP_HELP}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise StartupError(f"cannot load the app {target!r}: {exc}; {APP_HELP}") from None
    for part in (attr or "app").split("."):
        if not hasattr(obj, part):
            raise StartupError(
                f"cannot load the app {target!r}: {module_name} has no {attr or 'app'!r}; {APP_HELP}"
            )
        obj = getattr(obj, part)
    if isinstance(obj, App):
        return obj
    if callable(obj):
        app = App()
        app.mount_asgi(obj)
        return app
    raise StartupError(f"cannot load the app {target!r}: it is neither a switchroom App nor an ASGI 3 app")


OPTIONS = [
    ("--concurrency", "concurrency", 100, "consumers run at once"),
    ("--threads", "threads", 8, "threads for plain (sync) consumers"),
    ("--batch", "batch", 100, "messages taken per receive"),
    ("--durable-batch", "durable_batch", 10, "entries of durable channels taken per read"),
    ("--grace", "grace", 30.0, "seconds running consumers get on SIGTERM"),
    ("--body-timeout", "body_timeout", 30.0, "seconds to wait for a request body chunk"),
    ("--lifespan-timeout", "lifespan_timeout", 30.0, "seconds for ASGI lifespan events"),
]


def build_parser() -> argparse.ArgumentParser:
    """The worker's flags; each has a SWITCHROOM_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom worker",
        description="Load an App (or a bare ASGI 3 app) and serve it until SIGTERM or SIGINT, "
        "letting running consumers finish first.",
    )
    parser.add_argument("app", help="module:attr of a switchroom App or an ASGI 3 application")
    add_common_arguments(parser)
    for flag, name, default, text in OPTIONS:
        add_option(parser, flag, env_name=name, default=default, help=text)
    return parser


async def serve(args: argparse.Namespace) -> None:
    """Build the layer and worker and run until a signal stops it."""
    app = load_app(args.app)
    if not app.channels():
        raise StartupError(f"the app {args.app!r} has no routes: nothing for a worker to read")
    layer = layer_from_args(args)
    stop = stop_event()
    endpoint = None
    try:
        if not await unless_stopped(wait_for_layer(layer, args.layer_wait), stop):
            return
        try:
            worker = Worker(
                app,
                layer,
                concurrency=args.concurrency,
                threads=args.threads,
                batch=args.batch,
                grace=args.grace,
                body_timeout=args.body_timeout,
                lifespan_timeout=args.lifespan_timeout,
                durable_batch=args.durable_batch,
            )
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        health = Health(layer)
        health.add("worker", worker)
        endpoint = await open_health(args, health)
        running = asyncio.ensure_future(worker.run())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([running, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if running.done() and not worker.serving.is_set() and running.exception() is not None:
            error = running.exception()
            raise StartupError(f"the app did not start: {error or type(error).__name__}")
        health.stopping = True
        worker.stop()
        await running
    finally:
        if endpoint is not None:
            await endpoint.stop()
        await layer.close()


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom worker``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "worker", args.log_format)
    try:
        asyncio.run(serve(args))
    except StartupError as exc:
        return report("worker", exc)
    log.info("worker stopped")
    return 0
