"""``switchroom http``: run the HTTP/WebSocket interface server until SIGTERM or SIGINT."""

import argparse
import dataclasses

from switchroom.shared.config import add_common_arguments, add_option
from switchroom.shared.serving import run_server

from .server import HttpServer
from .settings import Settings

HELP = {
    "bind": "address to listen on",
    "port": "TCP port to listen on (0 = any free port)",
    "unix_socket": "listen on this Unix socket path instead of TCP",
    "fd": "serve an already-listening socket passed as this file descriptor",
    "root_path": "path prefix the application is mounted at (the scope's root_path)",
    "request_timeout": "seconds to wait for the worker's response (then each chunk) before 503",
    "connect_timeout": "seconds a WebSocket handshake waits for accept before 503",
    "worker_silence": "seconds a socket's hosting worker may miss heartbeats before it closes (1011)",
    "read_timeout": "seconds for a request's line, headers and body to arrive (slower: 408)",
    "keepalive_timeout": "seconds an idle keep-alive connection stays open",
    "ping_interval": "seconds between WebSocket pings (0 = off)",
    "ping_timeout": "seconds to wait for a pong before closing the socket",
    "max_header_count": "request headers allowed (more: 431)",
    "max_header_bytes": "total size of request headers (more: 431)",
    "max_body_size": "request body bytes (more: 413)",
    "max_frame_size": "WebSocket frame payload bytes (more: close 1009)",
    "max_ws_message_size": "WebSocket message bytes (more: close 1009)",
    "max_connections": "open WebSocket connections (more: 503 at the handshake)",
    "max_connections_per_ip": "connections one client IP may hold, HTTP and WebSocket (more: 503; 0 = any)",
    "max_send_buffer": "bytes queued for a WebSocket client that stopped reading before it is dropped",
    "allowed_origins": "comma-separated WebSocket Origin patterns (empty = any)",
    "allowed_hosts": "comma-separated Host names allowed (empty = any; *.example.com works)",
    "proxy_headers": "trust X-Forwarded-For and X-Forwarded-Proto",
    "retry_after": "Retry-After seconds sent with 503 answers",
    "shutdown_grace": "seconds in-flight requests get on shutdown",
    "access_log": "log a line per request and per socket",
}


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting, each with a SWITCHROOM_HTTP_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom http",
        description="Run the HTTP/WebSocket interface server until SIGTERM or SIGINT.",
    )
    add_common_arguments(parser)
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        kind = _csv if isinstance(f.default, tuple) else int if f.name == "fd" else None
        add_option(parser, flag, env_name="http_" + f.name, default=f.default, help=HELP[f.name], kind=kind)
    return parser


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` the parsed flags describe."""
    return Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom http``."""
    args = build_parser().parse_args(argv)
    return run_server(args, "http", lambda layer: HttpServer(layer, settings_from_args(args)))
