"""``switchroom worker module:attr``: load an App (or a bare ASGI 3 app) and serve it until
SIGTERM or SIGINT, finishing running consumers first."""

import argparse
import importlib
import os
import sys
from typing import Any

from switchroom.shared.config import add_common_arguments, common_from_args
from switchroom.shared.options import add_options, from_args
from switchroom.shared.serving import run_server
from switchroom.shared.startup import StartupError

from .app import App
from .runner import Worker
from .settings import WorkerSettings

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
        missing = exc.name or ""
        if missing and not (module_name + ".").startswith(missing + "."):
            # The app's module was found; something it imports was not.
            raise StartupError(
                f"cannot load the app {target!r}: it imports {missing!r}, which is not installed: "
                "install it in this environment"
            ) from None
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


def build_parser() -> argparse.ArgumentParser:
    """The worker's flags, generated from ``Common`` and ``WorkerSettings``."""
    parser = argparse.ArgumentParser(
        prog="switchroom worker",
        description="Load an App (or a bare ASGI 3 app) and serve it until SIGTERM or SIGINT, "
        "letting running consumers finish first.",
    )
    parser.add_argument("app", help="module:attr of a switchroom App or an ASGI 3 application")
    add_common_arguments(parser)
    add_options(parser, WorkerSettings)
    return parser


def app_with_routes(target: str) -> App:
    """``load_app(target)``, refused (StartupError) when it has nothing for a worker to read."""
    app = load_app(target)
    if not app.channels():
        raise StartupError(f"the app {target!r} has no routes: nothing for a worker to read")
    return app


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom worker``."""
    args = build_parser().parse_args(argv)
    settings = from_args(WorkerSettings, args)
    return run_server(
        common_from_args(args), "worker", lambda layer: Worker(app_with_routes(args.app), layer, settings)
    )
