"""The Slack interface server: Socket Mode or RTM in, Web API posts out (slack-sdk).

    server = SlackServer(layer, Settings(workspaces=workspaces_from_env()))
    await server.start()

``translate`` holds the event ↔ message rules; ``standin`` is a local stand-in for Slack
used by the tests and the demo.
"""

from .server import SlackServer
from .settings import Settings, Workspace, workspaces_from_env

__all__ = ["SlackServer", "Settings", "Workspace", "workspaces_from_env"]
