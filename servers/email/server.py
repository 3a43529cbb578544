"""``EmailServer``: inbound SMTP and outbound delivery on the asyncio loop it is started from."""

import asyncio
import logging
import os
import ssl
from typing import Any

from switchroom.layers import BaseLayer
from switchroom.shared import metrics

from .inbound import FileAuthenticator, LayerHandler, LimitedSMTP, Sessions
from .outbound import Outbox
from .settings import Settings

log = logging.getLogger("switchroom.email")


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context from the certificate and key paths, if given."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


class EmailServer:
    """The email interface server, embeddable in any asyncio program."""

    def __init__(self, layer: BaseLayer, settings: Settings | None = None) -> None:
        self.layer = layer
        self.settings = settings or Settings()
        if not (self.settings.domains or self.settings.addresses):
            raise ValueError("give at least one --domain or --address to accept mail for")
        chunks = -(-self.settings.max_message_size // layer.chunk_size)
        capacity = layer.capacity_for("email.chunk?")
        if chunks > capacity:
            # Otherwise the biggest messages allowed could never be put on the layer: 451 forever.
            raise ValueError(
                f"a message of --max-message-size {self.settings.max_message_size} bytes needs {chunks} "
                f"chunks of {layer.chunk_size} bytes on one channel, and the layer's "
                f"email.chunk? channels hold {capacity}: lower --max-message-size or raise the layer's "
                "max_message_size or capacity"
            )
        self.handler = LayerHandler(layer, self.settings)
        self.outbox = Outbox(layer, self.settings)
        self.sessions = Sessions(self.settings.max_connections_per_ip)
        self.server: asyncio.Server | None = None
        self._tls: ssl.SSLContext | None = None
        self._auth: FileAuthenticator | None = None

    def protocol(self) -> LimitedSMTP:
        s = self.settings
        kwargs: dict[str, Any] = {
            "hostname": s.hostname,
            "data_size_limit": s.max_message_size,
            "timeout": s.command_timeout,
            "enable_SMTPUTF8": True,
            "tls_context": self._tls,
            "require_starttls": s.require_starttls and self._tls is not None,
            "auth_require_tls": not s.auth_without_tls,
        }
        if self._auth is not None:
            kwargs["authenticator"] = self._auth
            kwargs["auth_required"] = True
        return LimitedSMTP(self.handler, self.sessions, s, **kwargs)

    async def start(self) -> None:
        """Listen for SMTP and start delivering ``email.send`` messages."""
        self._tls = tls_context(self.settings)
        auth_file = self.settings.auth_file or os.environ.get("SWITCHROOM_SMTP_AUTH_FILE")
        self._auth = FileAuthenticator(auth_file) if auth_file else None
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self.protocol, self.settings.bind, self.settings.port)
        self.outbox.start()
        metrics.email_servers.add(self)
        log.info(
            "listening for SMTP on %s:%d for %s",
            self.settings.bind,
            self.port,
            ", ".join([*self.settings.domains, *self.settings.addresses]),
        )

    async def not_ready(self) -> str | None:
        """None while taking mail; otherwise why not."""
        if self.sessions.stopping:
            return "stopping"
        return None if self.server is not None else "not listening"

    def served_channels(self) -> list[str]:
        """The channel of outbound mail."""
        return ["email.send"]

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting connections; a session in the middle of a message may finish it
        within ``grace`` seconds (default: the ``shutdown_grace`` setting), idle ones get
        421 at once; deliveries in progress get the same time."""
        grace = self.settings.shutdown_grace if grace is None else grace
        if self.server is not None:
            self.server.close()
            await self.sessions.end(grace)
            self.server = None
        await self.outbox.stop(grace)
        metrics.email_servers.discard(self)
