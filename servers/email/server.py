"""``EmailServer``: inbound SMTP and outbound delivery on the asyncio loop it is started from."""

import asyncio
import logging
import os
import ssl
from typing import Any

from switchroom.layers import BaseLayer, Delivery, Janitor
from switchroom.layers.durable import human_age
from switchroom.shared import metrics
from switchroom.shared.mail.dsn import dsn_send
from switchroom.shared.messages import EMAIL_RECEIVE, EMAIL_SEND

from .inbound import FileAuthenticator, LayerHandler, LimitedSMTP, Sessions
from .outbound import Outbox
from .settings import Settings

log = logging.getLogger("switchroom.email")

# Room in a durable entry for the envelope and field names besides the raw message.
ENVELOPE_ROOM = 64 * 1024


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
        s = self.settings
        if not (s.domains or s.addresses):
            raise ValueError("give at least one --domain or --address to accept mail for")
        if s.auth_file and s.submission_port is None:
            raise ValueError("--auth-file sets up the submission listener: give --submission-port too")
        room = layer.durable.settings.max_message_size - ENVELOPE_ROOM
        if s.max_message_size > room:
            # Otherwise the biggest messages allowed could never be put on the layer: 451 forever.
            raise ValueError(
                f"a message of --max-message-size {s.max_message_size} bytes does not fit in a durable "
                f"entry of the layer (durable_max_message_size {layer.durable.settings.max_message_size}, "
                f"less {ENVELOPE_ROOM} bytes for the envelope): lower --max-message-size or raise the "
                "layer's durable_max_message_size"
            )
        self.handler = LayerHandler(layer, s)
        self.submission = LayerHandler(layer, s, submission=True)
        self.outbox = Outbox(layer, s)
        self.janitor = Janitor(
            layer.durable,
            EMAIL_RECEIVE,
            s.max_queue_age,
            self.expire,
            warn_after=s.queue_warn_after,
            interval=s.queue_check_interval,
        )
        self.sessions = Sessions(s.max_connections_per_ip)
        self.servers: list[asyncio.Server] = []
        self._tls: ssl.SSLContext | None = None
        self._auth: FileAuthenticator | None = None

    def protocol(self, submission: bool = False) -> LimitedSMTP:
        s = self.settings
        kwargs: dict[str, Any] = {
            "hostname": s.hostname,
            "ident": "ESMTP",
            "data_size_limit": s.max_message_size,
            "timeout": s.command_timeout,
            "enable_SMTPUTF8": True,
            "tls_context": self._tls,
            "require_starttls": s.require_starttls and self._tls is not None,
            "auth_require_tls": not s.auth_without_tls,
        }
        if submission:
            kwargs["authenticator"] = self._auth
            kwargs["auth_required"] = True
        else:
            # The MX listener takes no AUTH at all (504), rather than failing every attempt.
            kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
        return LimitedSMTP(self.submission if submission else self.handler, self.sessions, s, **kwargs)

    async def start(self) -> None:
        """Listen for SMTP (MX, and submission if set up), start delivering ``email.send``
        and watching ``email.receive`` for mail nobody reads."""
        self._tls = tls_context(self.settings)
        auth_file = self.settings.auth_file or os.environ.get("SWITCHROOM_SMTP_AUTH_FILE")
        if self.settings.submission_port is not None:
            if not auth_file:
                raise ValueError("the submission listener needs users: give --auth-file")
            self._auth = FileAuthenticator(auth_file)
        loop = asyncio.get_running_loop()
        bind = self.settings.bind
        self.servers = [await loop.create_server(self.protocol, bind, self.settings.port)]
        if self.settings.submission_port is not None:
            submission = await loop.create_server(
                lambda: self.protocol(True), bind, self.settings.submission_port
            )
            self.servers.append(submission)
        # Once listening: a server that cannot bind says only that.
        try:
            await self.layer.durable.persistence()
        except ValueError:
            for server in self.servers:
                server.close()
            self.servers = []
            raise
        self.outbox.start()
        self.janitor.start()
        metrics.email_servers.add(self)
        log.info(
            "listening for SMTP on %s:%d for %s%s",
            bind,
            self.port,
            ", ".join([*self.settings.domains, *self.settings.addresses]),
            f"; submission (AUTH required) on {bind}:{self.submission_port}" if self.submission_port else "",
        )

    async def not_ready(self) -> str | None:
        """None while taking mail; otherwise why not."""
        if self.sessions.stopping:
            return "stopping"
        return None if self.servers else "not listening"

    def served_channels(self) -> list[str]:
        """The channels of outbound mail and of mail waiting for a worker."""
        return [EMAIL_SEND, EMAIL_RECEIVE]

    @property
    def port(self) -> int:
        """The MX listener's port."""
        return self.servers[0].sockets[0].getsockname()[1]

    @property
    def submission_port(self) -> int | None:
        """The submission listener's port, if there is one."""
        return self.servers[1].sockets[0].getsockname()[1] if len(self.servers) > 1 else None

    async def expire(self, deliveries: list[Delivery]) -> None:
        """Mail nobody read within ``max_queue_age``: a bounce (DSN) to its sender, unless
        it is itself a bounce, and a dead letter on ``email.receive.failed``."""
        age = human_age(self.settings.max_queue_age)
        for delivery in deliveries:
            message = delivery.message
            error = f"not read from email.receive within {age}"
            await self.layer.durable.dead_letter(delivery, error)
            bounce = dsn_send(
                {**message, "arrival": delivery.added},
                list(message.get("rcpt_to") or []),
                "4.4.7",
                f"451 4.4.7 Message not delivered within {age}: no mail handler took it",
                f"The message waited {age} for the application that handles these addresses, "
                "which did not take it. It has not been delivered and will not be.",
            )
            if bounce is None:
                log.warning("not bouncing %s: its sender is empty (a bounce is never bounced)", delivery.key)
                continue
            # The entry's id makes a second bounce (after a crash right here) a duplicate.
            await self.layer.durable.add(EMAIL_SEND, bounce, key=f"dsn:{delivery.id}", dedupe=True)
            log.warning("bounced %s to <%s>: %s", delivery.key, message.get("mail_from"), error)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting connections; a session in the middle of a message may finish it
        within ``grace`` seconds (default: the ``shutdown_grace`` setting), idle ones get
        421 at once; deliveries in progress get the same time."""
        grace = self.settings.shutdown_grace if grace is None else grace
        if self.servers:
            for server in self.servers:
                server.close()
            await self.sessions.end(grace)
            self.servers = []
        await self.janitor.stop()
        await self.outbox.stop(grace)
        metrics.email_servers.discard(self)
