"""``switchroom slack``: run the Slack server until a signal. Tokens come from the
environment only (see ``settings.py``); they never appear in flags or logs."""

import argparse

from switchroom.shared.config import add_common_arguments, add_option
from switchroom.shared.serving import run_server

from .server import SlackServer
from .settings import Settings, workspaces_from_env

OPTIONS = [
    (
        "--mode",
        "mode",
        "socket",
        "Socket Mode (current Slack apps) or RTM (classic apps)",
        {"choices": ["socket", "rtm"]},
    ),
    (
        "--api-url",
        "api_url",
        "https://slack.com/api/",
        "Slack Web API base URL (a local stand-in for tests)",
        {},
    ),
    ("--post-interval", "post_interval", 1.0, "seconds between posts to one channel", {}),
    ("--max-queue", "max_queue", 1000, "posts waiting at most; more go to slack.send.failed", {}),
    ("--max-attempts", "max_attempts", 5, "tries per post when Slack rate-limits", {}),
    ("--ping-interval", "ping_interval", 10.0, "seconds between keepalive pings", {}),
    ("--connect-timeout", "connect_timeout", 60.0, "seconds to keep retrying the first connection", {}),
    ("--rtm-retry-for", "rtm_retry_for", 30.0, "seconds to retry an RTM event while the layer is down", {}),
    ("--stop-grace", "stop_grace", 5.0, "seconds to finish waiting posts on stop", {}),
    (
        "--ack-wait",
        "ack_wait",
        2.0,
        "seconds a slash command's or interaction's ack waits for a worker's answer (0: never)",
        {},
    ),
    (
        "--max-event-age",
        "max_event_age",
        86_400.0,
        "seconds an event nobody reads waits on slack.event before it is a dead letter",
        {},
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The Slack server's flags; each has a SWITCHROOM_SLACK_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom slack",
        description="Run the Slack server until SIGTERM or SIGINT. Tokens come from the environment "
        "only (SWITCHROOM_SLACK_BOT_TOKEN and SWITCHROOM_SLACK_APP_TOKEN, or a JSON file of several "
        "workspaces named by SWITCHROOM_SLACK_WORKSPACES); they never appear in flags or logs.",
    )
    add_common_arguments(parser)
    for flag, name, default, text, options in OPTIONS:
        add_option(parser, flag, env_name="slack_" + name, default=default, help=text, **options)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the parsed flags, with the workspaces from the environment."""
    return Settings(
        workspaces=workspaces_from_env(),
        mode=args.mode,
        api_url=args.api_url,
        post_interval=args.post_interval,
        max_queue=args.max_queue,
        max_attempts=args.max_attempts,
        ping_interval=args.ping_interval,
        connect_timeout=args.connect_timeout,
        rtm_retry_for=args.rtm_retry_for,
        stop_grace=args.stop_grace,
        ack_wait=args.ack_wait,
        max_event_age=args.max_event_age,
    )


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom slack``."""
    args = build_parser().parse_args(argv)
    return run_server(args, "slack", lambda layer: SlackServer(layer, settings_from_args(args)))
