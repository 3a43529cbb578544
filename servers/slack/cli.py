"""``switchroom slack``: run the Slack server until a signal. Tokens come from the
environment only (see ``settings.py``); they never appear in flags or logs."""

import argparse

from switchroom.shared.config import add_common_arguments, env
from switchroom.shared.serving import run_server

from .server import SlackServer
from .settings import Settings, workspaces_from_env


def build_parser() -> argparse.ArgumentParser:
    """The Slack server's flags; each has a SWITCHROOM_SLACK_* environment variable."""
    parser = argparse.ArgumentParser(prog="switchroom slack", description=__doc__)
    add_common_arguments(parser)
    parser.add_argument(
        "--mode",
        choices=["socket", "rtm"],
        default=env("slack_mode", "socket"),
        help="Socket Mode (current Slack apps) or RTM (classic apps) [env SWITCHROOM_SLACK_MODE]",
    )
    parser.add_argument(
        "--api-url",
        default=env("slack_api_url", "https://slack.com/api/"),
        help="Slack Web API base URL (a local stand-in for tests) [env SWITCHROOM_SLACK_API_URL]",
    )
    parser.add_argument(
        "--post-interval",
        type=float,
        default=float(env("slack_post_interval", 1.0)),
        help="seconds between posts to one channel [env SWITCHROOM_SLACK_POST_INTERVAL]",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=int(env("slack_max_queue", 1000)),
        help="posts waiting at most; more go to slack.send.failed [env SWITCHROOM_SLACK_MAX_QUEUE]",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=int(env("slack_max_attempts", 5)),
        help="tries per post when Slack rate-limits [env SWITCHROOM_SLACK_MAX_ATTEMPTS]",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=float(env("slack_ping_interval", 10.0)),
        help="seconds between keepalive pings [env SWITCHROOM_SLACK_PING_INTERVAL]",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=float(env("slack_connect_timeout", 60.0)),
        help="seconds to keep retrying the first connection [env SWITCHROOM_SLACK_CONNECT_TIMEOUT]",
    )
    parser.add_argument(
        "--rtm-retry-for",
        type=float,
        default=float(env("slack_rtm_retry_for", 30.0)),
        help="seconds to retry an RTM event while the layer is down [env SWITCHROOM_SLACK_RTM_RETRY_FOR]",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=float(env("slack_stop_grace", 5.0)),
        help="seconds to finish waiting posts on stop [env SWITCHROOM_SLACK_STOP_GRACE]",
    )
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
    )


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom slack``."""
    args = build_parser().parse_args(argv)
    return run_server(args, "slack", lambda layer: SlackServer(layer, settings_from_args(args)))
