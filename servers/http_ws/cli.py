"""``switchroom http``: run the HTTP/WebSocket interface server until SIGTERM or SIGINT."""

import argparse

from switchroom.shared.config import add_common_arguments, common_from_args
from switchroom.shared.options import add_options, from_args
from switchroom.shared.serving import run_server

from .server import HttpServer
from .settings import Settings

PREFIX = "http"


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting, each with a SWITCHROOM_HTTP_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom http",
        description="Run the HTTP/WebSocket interface server until SIGTERM or SIGINT.",
    )
    add_common_arguments(parser)
    add_options(parser, Settings, PREFIX)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` the parsed flags describe."""
    return from_args(Settings, args)


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom http``."""
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    return run_server(common_from_args(args), "http", lambda layer: HttpServer(layer, settings))
