"""``switchroom worker module:attr``: load an ``App`` (or a bare ASGI 3 app) and serve it."""

import argparse
import asyncio
import importlib
import logging
import os
import sys
from typing import Any

from switchroom.shared.config import add_common_arguments, env, layer_from_args
from switchroom.shared.logs import setup_logging

from .app import App
from .runner import Worker

log = logging.getLogger("switchroom.worker")


def load_app(target: str) -> App:
    """Import ``module:attr``; a bare ASGI 3 callable is wrapped in an ``App`` serving all HTTP."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise ValueError(f"expected module:attr, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    if isinstance(obj, App):
        return obj
    if callable(obj):
        app = App()
        app.mount_asgi(obj)
        return app
    raise TypeError(f"{target} is neither a switchroom App nor an ASGI 3 application")


def build_parser() -> argparse.ArgumentParser:
    """The worker's flags; each has a SWITCHROOM_* environment variable."""
    parser = argparse.ArgumentParser(prog="switchroom worker", description=__doc__)
    parser.add_argument("app", help="module:attr of a switchroom App or an ASGI 3 application")
    add_common_arguments(parser)
    options = [
        ("--concurrency", int, "concurrency", 100, "consumers run at once"),
        ("--threads", int, "threads", 8, "threads for plain (sync) consumers"),
        ("--batch", int, "batch", 100, "messages taken per receive"),
        ("--grace", float, "grace", 30.0, "seconds running consumers get on SIGTERM"),
        ("--body-timeout", float, "body_timeout", 30.0, "seconds to wait for a request body chunk"),
        ("--lifespan-timeout", float, "lifespan_timeout", 30.0, "seconds for ASGI lifespan events"),
    ]
    for flag, kind, name, default, text in options:
        parser.add_argument(
            flag,
            type=kind,
            default=kind(env(name, default)),
            help=f"{text} [env SWITCHROOM_{name.upper()}, default {default}]",
        )
    return parser


async def serve(args: argparse.Namespace) -> None:
    """Build the layer and worker and run until a signal stops it."""
    app = load_app(args.app)
    layer = layer_from_args(args)
    worker = Worker(
        app,
        layer,
        concurrency=args.concurrency,
        threads=args.threads,
        batch=args.batch,
        grace=args.grace,
        body_timeout=args.body_timeout,
        lifespan_timeout=args.lifespan_timeout,
    )
    worker.install_signal_handlers()
    try:
        await worker.run()
    finally:
        await layer.close()


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom worker``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "worker")
    try:
        asyncio.run(serve(args))
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        log.error("cannot start the worker: %s", exc)
        return 2
    log.info("worker stopped")
    return 0
