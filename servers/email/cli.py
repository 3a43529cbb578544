"""``switchroom email``: run the email server (inbound SMTP, outbound relay) until a signal."""

import argparse

from switchroom.shared.config import add_common_arguments, common_from_args
from switchroom.shared.options import add_options, from_args
from switchroom.shared.serving import run_server

from .server import EmailServer
from .settings import Settings

PREFIX = "email"


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting, each with a SWITCHROOM_EMAIL_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom email",
        description="Run the email server (inbound SMTP, outbound through a relay) until SIGTERM or SIGINT.",
    )
    add_common_arguments(parser)
    add_options(parser, Settings, PREFIX)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` the parsed flags describe."""
    return from_args(Settings, args)


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom email``."""
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    return run_server(common_from_args(args), "email", lambda layer: EmailServer(layer, settings))
