"""``switchroom slack``: run the Slack server until a signal. Tokens come from the
environment only (see ``settings.py``); they never appear in flags or logs."""

import argparse

from switchroom.shared.config import add_common_arguments, common_from_args
from switchroom.shared.options import add_options, from_args
from switchroom.shared.serving import run_server

from .server import SlackServer
from .settings import Settings, workspaces_from_env

PREFIX = "slack"


def build_parser() -> argparse.ArgumentParser:
    """The Slack server's flags; each has a SWITCHROOM_SLACK_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom slack",
        description="Run the Slack server until SIGTERM or SIGINT. Tokens come from the environment "
        "only (SWITCHROOM_SLACK_BOT_TOKEN and SWITCHROOM_SLACK_APP_TOKEN, or a JSON file of several "
        "workspaces named by SWITCHROOM_SLACK_WORKSPACES); they never appear in flags or logs.",
    )
    add_common_arguments(parser)
    add_options(parser, Settings, PREFIX)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the parsed flags, with the workspaces from the environment."""
    return from_args(Settings, args, workspaces=workspaces_from_env())


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom slack``."""
    args = build_parser().parse_args(argv)
    return run_server(
        common_from_args(args), "slack", lambda layer: SlackServer(layer, settings_from_args(args))
    )
