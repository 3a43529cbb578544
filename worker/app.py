"""``App``: the registry a user writes routes against, by decorator, for every protocol."""

import re
from collections.abc import Callable
from typing import Any, TypeVar

from switchroom.shared.messages import (
    EMAIL_RECEIVE,
    HTTP_DISCONNECT,
    HTTP_REQUEST,
    SLACK_EVENT,
    WEBSOCKET_CONNECT,
    WEBSOCKET_DISCONNECT,
    WEBSOCKET_RECEIVE,
)

from .channelnames import ChannelRouter, router_names
from .routing import AddressPattern, PathPattern, Route

F = TypeVar("F", bound=Callable[..., Any])

WEBSOCKET_EVENTS = ("connect", "receive", "disconnect")


class App:
    """Consumers by channel and pattern, plus an optional ASGI 3 app for HTTP and WebSocket."""

    def __init__(self, bounce_sender: str | None = None) -> None:
        self.http_routes: list[Route] = []
        self.websocket_routes: dict[str, list[Route]] = {event: [] for event in WEBSOCKET_EVENTS}
        self.email_routes: list[Route] = []
        self.slack_routes: list[Route] = []
        self.asgi_app: Callable[..., Any] | None = None
        self.asgi_prefix = "/"
        self.channel_router: ChannelRouter | None = None
        self.bounce_sender = bounce_sender

    def http(self, path: str, methods: list[str] | None = None) -> Callable[[F], F]:
        """Route ``http.request`` messages whose path fits ``path`` (and method, if given)."""
        pattern = PathPattern(path)
        allowed = frozenset(m.upper() for m in methods) if methods else None

        def register(consumer: F) -> F:
            self.http_routes.append(Route(consumer, path=pattern, methods=allowed))
            return consumer

        return register

    def websocket(self, path: str, on: str = "receive") -> Callable[[F], F]:
        """Route a socket's ``connect``, ``receive`` or ``disconnect`` messages for ``path``;
        a socket with no connect consumer is accepted automatically."""
        if on not in WEBSOCKET_EVENTS:
            raise ValueError(f"on= must be one of {', '.join(WEBSOCKET_EVENTS)}, not {on!r}")
        pattern = PathPattern(path)

        def register(consumer: F) -> F:
            self.websocket_routes[on].append(Route(consumer, path=pattern))
            return consumer

        return register

    def email(self, address: "str | re.Pattern[str]") -> Callable[[F], F]:
        """Route ``email.receive`` by recipient: ``a@b.c``, ``*@b.c`` / ``@b.c``, a glob or a regex."""
        pattern = AddressPattern(address)

        def register(consumer: F) -> F:
            self.email_routes.append(Route(consumer, address=pattern))
            return consumer

        return register

    def slack(self, event_type: str | None = "message", channel: str | None = None) -> Callable[[F], F]:
        """Route ``slack.event`` by event type (None or ``*`` = any) and Slack channel id."""

        def register(consumer: F) -> F:
            self.slack_routes.append(Route(consumer, event_type=event_type, slack_channel=channel))
            return consumer

        return register

    def mount_asgi(self, asgi_app: Callable[..., Any], prefix: str = "/") -> None:
        """Serve HTTP requests and WebSockets under ``prefix`` that no native route matched
        with an ASGI 3 app (one app instance per socket, in the worker that accepted it)."""
        if not prefix.startswith("/"):
            raise ValueError("prefix must start with '/'")
        self.asgi_app = asgi_app
        self.asgi_prefix = prefix
        names = router_names(asgi_app)
        self.channel_router = ChannelRouter(asgi_app, names) if names else None

    def asgi_serves(self, path: str) -> bool:
        """Whether the mounted ASGI app (if any) answers ``path``."""
        if self.asgi_app is None:
            return False
        prefix = self.asgi_prefix.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or not prefix

    def channels(self) -> list[str]:
        """The channels this app has consumers for, i.e. the ones a worker reads and the
        rows of its dispatch table (``dispatch.HANDLERS``)."""
        channels = []
        if self.http_routes or self.asgi_app is not None:
            channels += [HTTP_REQUEST, HTTP_DISCONNECT]
        if any(self.websocket_routes.values()):
            channels += [WEBSOCKET_CONNECT, WEBSOCKET_RECEIVE, WEBSOCKET_DISCONNECT]
        elif self.asgi_app is not None:
            # ASGI sockets get their later messages at the worker's address, except a
            # disconnect during the handshake, which comes on the shared channel.
            channels += [WEBSOCKET_CONNECT, WEBSOCKET_DISCONNECT]
        routed = self.channel_router.channels() if self.channel_router else []
        if self.email_routes or EMAIL_RECEIVE in routed:
            channels.append(EMAIL_RECEIVE)
        if self.slack_routes or SLACK_EVENT in routed:
            channels.append(SLACK_EVENT)
        return channels
