"""Settings of the HTTP/WebSocket server: where it listens, its timeouts and its limits.

Every limit has a default a public-facing server can live with and a command-line flag
(see ``cli.py``); ``docs/http.md`` lists them all.
"""

from dataclasses import dataclass


@dataclass
class Settings:
    """What ``HttpServer`` needs besides a layer."""

    bind: str = "127.0.0.1"
    port: int = 8000
    unix_socket: str | None = None
    fd: int | None = None
    root_path: str = ""
    # How long a request waits for the worker's answer (and then for each further chunk).
    request_timeout: float = 60.0
    # How long a WebSocket handshake waits for the worker to accept or reject it.
    connect_timeout: float = 10.0
    # A socket hosted by a worker process (an ASGI 3 app's) is closed with 1011 once that
    # process has not heartbeaten for this long: under 5 s after a kill with the defaults.
    worker_silence: float = 3.0
    # The request line, headers and body must all arrive within this long (slow clients: 408).
    read_timeout: float = 30.0
    # Idle keep-alive connections are closed after this long.
    keepalive_timeout: float = 75.0
    ping_interval: float = 20.0
    ping_timeout: float = 30.0
    max_header_count: int = 100
    max_header_bytes: int = 16 * 1024
    max_body_size: int = 10 * 1024 * 1024
    max_frame_size: int = 1024 * 1024
    max_ws_message_size: int = 1024 * 1024
    max_connections: int = 10_000
    # TCP connections (HTTP and WebSocket) one client IP may hold; 0 means no limit, the
    # default, because behind a proxy every connection comes from the proxy's address.
    max_connections_per_ip: int = 0
    # Bytes queued for a WebSocket client that stopped reading before it is dropped.
    max_send_buffer: int = 4 * 1024 * 1024
    # Empty means any; entries are fnmatch patterns such as ``https://*.example.com``.
    allowed_origins: tuple[str, ...] = ()
    # Empty means any; entries are host names (no port), ``*.example.com`` allowed.
    allowed_hosts: tuple[str, ...] = ()
    proxy_headers: bool = False
    retry_after: int = 2
    shutdown_grace: float = 10.0
    access_log: bool = True
