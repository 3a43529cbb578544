"""Settings of the Slack server: which workspaces, which connection mode, outbound limits.

Tokens never come from flags: ``SWITCHROOM_SLACK_APP_TOKEN`` (Socket Mode) and
``SWITCHROOM_SLACK_BOT_TOKEN`` name one workspace; ``SWITCHROOM_SLACK_WORKSPACES`` names a
JSON file listing several (``[{"name": ..., "app_token": ..., "bot_token": ...}]``).
"""

import json
import os
from dataclasses import dataclass, field


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
    """What ``SlackServer`` needs besides a layer."""

    workspaces: list[Workspace] = field(default_factory=list)
    # "socket" (Socket Mode, for current Slack apps) or "rtm" (classic apps).
    mode: str = "socket"
    # Where the Web API lives; a local stand-in in tests and the demo.
    api_url: str = "https://slack.com/api/"
    post_interval: float = 1.0
    max_queue: int = 1000
    max_attempts: int = 5
    ping_interval: float = 10.0
    # How long to keep retrying the first connection while Slack cannot be reached.
    connect_timeout: float = 60.0
    # How long to retry publishing an RTM event while the layer is down (RTM cannot redeliver).
    rtm_retry_for: float = 30.0
    # On stop, how long waiting posts may still be made before they are reported as failed.
    stop_grace: float = 5.0
    # How long the ack of a slash command or an interaction waits for a worker's answer
    # (Slack wants the ack within 3 s); 0: never wait.
    ack_wait: float = 2.0
    # Events nobody reads wait this long on slack.event before they are dead letters.
    max_event_age: float = 86_400.0


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
