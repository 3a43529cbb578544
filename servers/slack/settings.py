"""Settings of the Slack server: which workspaces, which connection mode, outbound limits.

Tokens never come from flags: ``SWITCHROOM_SLACK_APP_TOKEN`` (Socket Mode) and
``SWITCHROOM_SLACK_BOT_TOKEN`` name one workspace; ``SWITCHROOM_SLACK_WORKSPACES`` names a
JSON file listing several (``[{"name": ..., "app_token": ..., "bot_token": ...}]``).
"""

import json
import os
from dataclasses import dataclass, field

from switchroom.shared.options import option


@dataclass(frozen=True)
class Workspace:
    """One Slack workspace: its bot token, and its app-level token for Socket Mode."""

    name: str
    bot_token: str
    app_token: str | None = None

    def __repr__(self) -> str:
        return f"Workspace({self.name!r})"


@dataclass
class Settings:
    """What ``SlackServer`` needs besides a layer; ``workspaces`` come from the environment
    (``workspaces_from_env``), every other field has a flag."""

    workspaces: list[Workspace] = field(default_factory=list)
    mode: str = option(
        "socket", help="Socket Mode (current Slack apps) or RTM (classic apps)", choices=("socket", "rtm")
    )
    api_url: str = option(
        "https://slack.com/api/", help="Slack Web API base URL (a local stand-in for tests)"
    )
    post_interval: float = option(1.0, help="seconds between posts to one channel")
    max_queue: int = option(1000, help="posts waiting at most; more go to slack.send.failed")
    max_attempts: int = option(5, help="tries per post when Slack rate-limits")
    ping_interval: float = option(10.0, help="seconds between keepalive pings")
    connect_timeout: float = option(60.0, help="seconds to keep retrying the first connection")
    # RTM cannot redeliver, so an event is retried for this long while the layer is down.
    rtm_retry_for: float = option(30.0, help="seconds to retry an RTM event while the layer is down")
    stop_grace: float = option(5.0, help="seconds to finish waiting posts on stop")
    # Slack wants the ack within 3 s.
    ack_wait: float = option(
        2.0, help="seconds a slash command's or interaction's ack waits for a worker's answer (0: never)"
    )
    max_event_age: float = option(
        86_400.0, help="seconds an event nobody reads waits on slack.event before it is a dead letter"
    )


def workspaces_from_env(environ: dict[str, str] | None = None) -> list[Workspace]:
    """The workspaces the environment names (a file of several, or one pair of tokens)."""
    environ = dict(os.environ if environ is None else environ)
    path = environ.get("SWITCHROOM_SLACK_WORKSPACES")
    if path:
        with open(path, encoding="utf-8") as source:
            entries = json.load(source)
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("bot_token"), str) for e in entries
        ):
            raise ValueError(f"{path}: expected a JSON list of objects, each with a 'bot_token'")
        return [
            Workspace(e.get("name") or f"workspace{i + 1}", e["bot_token"], e.get("app_token"))
            for i, e in enumerate(entries)
        ]
    bot = environ.get("SWITCHROOM_SLACK_BOT_TOKEN")
    if not bot:
        return []
    return [Workspace("default", bot, environ.get("SWITCHROOM_SLACK_APP_TOKEN"))]
