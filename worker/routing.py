"""Pure matching of messages to consumers: HTTP/WebSocket paths with typed parameters,
email recipients (exact, domain, glob or regex) and Slack event type and channel."""

import asyncio
import fnmatch
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?\d+", int),
    "float": (r"-?\d+(?:\.\d+)?", float),
    "uuid": (r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".*", str),
}
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")


class PathPattern:
    """A path template such as ``/items/{id:int}``; ``match`` returns typed parameters or None."""

    def __init__(self, template: str) -> None:
        if not template.startswith("/"):
            raise ValueError(f"path pattern must start with '/': {template!r}")
        self.template = template
        self.converters: dict[str, Callable[[str], Any]] = {}
        parts, pos = [], 0
        for m in _PARAM.finditer(template):
            name, kind = m.group(1), m.group(2) or "str"
            if kind not in _CONVERTERS:
                raise ValueError(f"unknown parameter type {kind!r} in {template!r}")
            if name in self.converters:
                raise ValueError(f"parameter {name!r} appears twice in {template!r}")
            regex, convert = _CONVERTERS[kind]
            parts.append(re.escape(template[pos : m.start()]))
            parts.append(f"(?P<{name}>{regex})")
            self.converters[name] = convert
            pos = m.end()
        parts.append(re.escape(template[pos:]))
        self.regex = re.compile("".join(parts) + r"\Z")

    def match(self, path: str) -> dict[str, Any] | None:
        """The typed parameters if ``path`` matches the whole template, else None."""
        m = self.regex.match(path)
        if m is None:
            return None
        return {name: self.converters[name](value) for name, value in m.groupdict().items()}


class AddressPattern:
    """An email recipient pattern: an exact address, ``@domain`` / ``*@domain``, a glob, or a regex."""

    def __init__(self, pattern: "str | re.Pattern[str]") -> None:
        self.pattern = pattern
        if isinstance(pattern, re.Pattern):
            self._match = lambda address: pattern.fullmatch(address) is not None
            return
        text = pattern.lower()
        if text.startswith("@"):
            text = "*" + text
        if any(c in text for c in "*?["):
            self._match = lambda address: fnmatch.fnmatchcase(address, text)
        else:
            self._match = lambda address: address == text

    def match(self, address: str) -> bool:
        """Whether ``address`` (compared case-insensitively) fits the pattern."""
        return self._match(address.lower())


@dataclass
class Route:
    """One registered consumer and what it answers."""

    consumer: Callable[..., Any]
    path: PathPattern | None = None
    methods: frozenset[str] | None = None
    address: AddressPattern | None = None
    event_type: str | None = None
    slack_channel: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Whether the consumer is a coroutine function (run on the loop, not on a thread).
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        self.is_async = asyncio.iscoroutinefunction(self.consumer)


@dataclass
class PathMatch:
    """The outcome of matching a path: the route and its parameters, or why nothing matched."""

    route: Route | None
    params: dict[str, Any]
    method_not_allowed: bool = False


def match_path(routes: list[Route], path: str, method: str | None = None) -> PathMatch:
    """The first route whose path (and method, if given) fits; 405 is told apart from 404."""
    wrong_method = False
    for route in routes:
        params = route.path.match(path) if route.path else None
        if params is None:
            continue
        if method is not None and route.methods is not None and method not in route.methods:
            wrong_method = True
            continue
        return PathMatch(route, params)
    return PathMatch(None, {}, wrong_method)


class PathMatcher:
    """``match_path`` over one list of routes, remembering the outcome per path and method.

    A path's outcome depends only on the routes, so it is looked up once per path rather than
    once per message (a socket's every frame names the same path). The cache holds at most
    ``size`` paths of at most ``longest`` characters (the oldest go first: paths with
    parameters are unbounded; longer paths are matched each time) and is emptied whenever the
    list's length changes, so a route added later is found. Routes are added, never replaced
    in place.
    """

    def __init__(self, routes: list[Route], size: int = 1024, longest: int = 256) -> None:
        if size < 1:
            raise ValueError("the route cache needs room for at least one path")
        self.routes = routes
        self.size = size
        self.longest = longest
        self._known = len(routes)
        self._outcomes: dict[tuple[str, str | None], PathMatch] = {}

    def match(self, path: str, method: str | None = None) -> PathMatch:
        """As ``match_path(routes, path, method)``; the params dict is shared, not to be changed."""
        outcomes = self._outcomes
        if len(self.routes) != self._known:
            outcomes.clear()
            self._known = len(self.routes)
        key = (path, method)
        found = outcomes.get(key)
        if found is None:
            found = match_path(self.routes, path, method)
            if len(path) > self.longest:
                return found
            if len(outcomes) >= self.size:
                del outcomes[next(iter(outcomes))]
            outcomes[key] = found
        return found


def match_address(routes: list[Route], address: str) -> Route | None:
    """The first route whose recipient pattern fits ``address``."""
    for route in routes:
        if route.address is not None and route.address.match(address):
            return route
    return None


def match_slack(routes: list[Route], message: dict[str, Any]) -> Route | None:
    """The first route whose event type and Slack channel (None = any) fit the event."""
    for route in routes:
        if route.event_type not in (None, "*", message.get("type")):
            continue
        if route.slack_channel not in (None, message.get("channel")):
            continue
        return route
    return None
