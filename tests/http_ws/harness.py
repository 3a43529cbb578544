"""Runs ``switchroom http`` as a real subprocess for the end-to-end tests."""

import uuid

from switchroom.shared.redisproc import free_port

from ..processes import ROOT, SwitchroomProcess

__all__ = ["ROOT", "ServerProcess"]


class ServerProcess(SwitchroomProcess):
    """A ``switchroom http`` process on a free port, logging to a file the test can read."""

    name = "http"

    def __init__(
        self, redis_url: str, *args: str, unix_socket: str | None = None, prefix: str | None = None
    ) -> None:
        """``prefix`` puts this server on the key prefix of another (default: a fresh one)."""
        prefix = prefix or f"hs{uuid.uuid4().hex[:10]}"
        self.layer_url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix={prefix}"
        self.port = free_port()
        where = ["--unix-socket", unix_socket] if unix_socket else ["--port", str(self.port)]
        super().__init__(["http", *where, "--layer", self.layer_url, *args], ready="listening on")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"
