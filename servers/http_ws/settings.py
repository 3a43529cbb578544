"""Settings of the HTTP/WebSocket server: where it listens, its timeouts and its limits.

Every limit has a default a public-facing server can live with; each field's flag and
``SWITCHROOM_HTTP_*`` environment variable are generated from its ``option`` (see
``switchroom.shared.options``), and ``docs/http.md`` lists them all.
"""

from dataclasses import dataclass

from switchroom.shared.options import option


@dataclass
class Settings:
    """What ``HttpServer`` needs besides a layer."""

    bind: str = option("127.0.0.1", help="address to listen on")
    port: int = option(8000, help="TCP port to listen on (0 = any free port)")
    unix_socket: str | None = option(None, help="listen on this Unix socket path instead of TCP")
    fd: int | None = option(None, help="serve an already-listening socket passed as this file descriptor")
    root_path: str = option("", help="path prefix the application is mounted at (the scope's root_path)")
    request_timeout: float = option(
        60.0, help="seconds to wait for the worker's response (then each chunk) before 503"
    )
    connect_timeout: float = option(10.0, help="seconds a WebSocket handshake waits for accept before 503")
    # A socket hosted by a worker process (an ASGI 3 app's) is closed with 1011 once that
    # process has not heartbeaten for this long: under 5 s after a kill with the defaults.
    worker_silence: float = option(
        3.0, help="seconds a socket's hosting worker may miss heartbeats before it closes (1011)"
    )
    read_timeout: float = option(
        30.0, help="seconds for a request's line, headers and body to arrive (slower: 408)"
    )
    keepalive_timeout: float = option(75.0, help="seconds an idle keep-alive connection stays open")
    ping_interval: float = option(20.0, help="seconds between WebSocket pings (0 = off)")
    ping_timeout: float = option(30.0, help="seconds to wait for a pong before closing the socket")
    max_header_count: int = option(100, help="request headers allowed (more: 431)")
    max_header_bytes: int = option(16 * 1024, help="total size of request headers (more: 431)")
    max_body_size: int = option(10 * 1024 * 1024, help="request body bytes (more: 413)")
    max_frame_size: int = option(1024 * 1024, help="WebSocket frame payload bytes (more: close 1009)")
    max_ws_message_size: int = option(1024 * 1024, help="WebSocket message bytes (more: close 1009)")
    max_connections: int = option(10_000, help="open WebSocket connections (more: 503 at the handshake)")
    # 0 by default because behind a proxy every connection comes from the proxy's address.
    max_connections_per_ip: int = option(
        0, help="connections one client IP may hold, HTTP and WebSocket (more: 503; 0 = any)"
    )
    max_send_buffer: int = option(
        4 * 1024 * 1024, help="bytes queued for a WebSocket client that stopped reading before it is dropped"
    )
    # Entries are fnmatch patterns such as ``https://*.example.com``.
    allowed_origins: tuple[str, ...] = option(
        (), help="comma-separated WebSocket Origin patterns (empty = any)"
    )
    allowed_hosts: tuple[str, ...] = option(
        (), help="comma-separated Host names allowed (empty = any; *.example.com works)"
    )
    proxy_headers: bool = option(False, help="trust X-Forwarded-For and X-Forwarded-Proto")
    retry_after: int = option(2, help="Retry-After seconds sent with 503 answers")
    shutdown_grace: float = option(10.0, help="seconds in-flight requests get on shutdown")
    access_log: bool = option(True, help="log a line per request and per socket")
