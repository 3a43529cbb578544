"""Inbound SMTP on aiosmtpd, on two kinds of listener: MX (no AUTH, mail for our domains
only) and submission (AUTH required; mail for anywhere, the rest relayed). Each message is
answered 250 only once all of it is a durable entry on the layer (451 otherwise, so the
sending server keeps it and retries)."""

import asyncio
import hmac
import logging
import re
import time
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, syntax

from switchroom.layers import BaseLayer, ChannelFull, LayerError
from switchroom.shared import metrics
from switchroom.shared.mail.parse import idempotency_key, incoming
from switchroom.shared.messages import EMAIL_RECEIVE, EMAIL_SEND

from . import aiosmtpd_compat as private
from .data import read_data
from .settings import Settings

log = logging.getLogger("switchroom.email")

# The ESMTP extensions aiosmtpd does not list itself (it handles pipelined commands in order).
EXTRA_EXTENSIONS = ("250-PIPELINING", "250-ENHANCEDSTATUSCODES")


class Recipients:
    """Which addresses this server accepts mail for: whole domains and single addresses."""

    def __init__(self, domains: tuple[str, ...], addresses: tuple[str, ...]) -> None:
        self.domains = {d.lower().lstrip("@") for d in domains}
        self.addresses = {a.lower() for a in addresses}

    def accepts(self, address: str) -> bool:
        address = address.lower()
        return address in self.addresses or address.rpartition("@")[2] in self.domains


class LayerHandler:
    """aiosmtpd hooks of one listener: recipient checks, then durable entries per message:
    one ``email.receive`` for local recipients, and on a submission listener one
    ``email.send`` relaying the message as it is to the others."""

    def __init__(self, layer: BaseLayer, settings: Settings, submission: bool = False) -> None:
        self.layer = layer
        self.settings = settings
        self.submission = submission
        self.recipients = Recipients(settings.domains, settings.addresses)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """aiosmtpd's EHLO lines, with PIPELINING and ENHANCEDSTATUSCODES, and AUTH only
        where mail is submitted."""
        session.host_name = hostname
        lines = [line for line in responses[:-1] if self.submission or not line.startswith("250-AUTH")]
        return [*lines, *EXTRA_EXTENSIONS, responses[-1]]

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list) -> str:
        if address in ("", "<>"):
            return "553 5.1.3 The null address <> cannot receive mail"
        if not self.recipients.accepts(address):
            if not self.submission:
                log.info("550 for %s from %s: not a local address", address, session.peer[0])
                return "550 5.1.1 No such user here"
            if not self.settings.relay_host:
                log.info("550 for %s from %s: no relay to send it on", address, session.peer[0])
                return "550 5.7.1 Relaying is not available here"
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            log.info("452 for %s from %s: too many recipients", address, session.peer[0])
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or b""
        started = time.monotonic()
        local = [a for a in envelope.rcpt_tos if self.recipients.accepts(a)]
        remote = [a for a in envelope.rcpt_tos if not self.recipients.accepts(a)]
        peer = list(session.peer[:2]) if isinstance(session.peer, tuple) else [str(session.peer), 0]
        message = incoming(
            raw, mail_from=envelope.mail_from or "", rcpt_to=local, peer=peer, helo=session.host_name
        )
        key = idempotency_key(message)
        entries: list[tuple[str, dict[str, Any], str | None]] = []
        if local:
            entries.append((EMAIL_RECEIVE, message, key))
        if remote:
            relay = {"to": remote, "mail_from": message["mail_from"], "raw": raw, "id": message["message_id"]}
            entries.append((EMAIL_SEND, relay, key))
        try:
            outcomes = await self.layer.durable.add_many(entries)
        except LayerError as exc:
            outcomes = [exc] * len(entries)
        failed = next((o for o in outcomes if isinstance(o, LayerError)), None)
        if failed is not None:
            metrics.EMAIL_RECEIVED.labels("deferred").inc()
        if isinstance(failed, ChannelFull):
            log.warning("451 for a message from %s: %s", message["mail_from"], failed)
            return "451 4.3.1 Busy, try again later"
        if failed is not None:
            log.warning(
                "451 for a message from %s: the channel layer failed: %s", message["mail_from"], failed
            )
            return "451 4.3.0 Temporarily unable to accept mail, try again later"
        metrics.EMAIL_RECEIVED.labels("accepted").inc()
        metrics.EMAIL_ACCEPT_DURATION.observe(time.monotonic() - started)
        log.info(
            "250 %s from <%s> to %s%s, %d bytes, durable in %.1f ms",
            message["message_id"],
            message["mail_from"],
            ",".join(local),
            f" (relaying to {','.join(remote)})" if remote else "",
            len(raw),
            (time.monotonic() - started) * 1000,
        )
        return "250 2.0.0 OK: queued"

    async def handle_exception(self, error: Exception) -> str:
        """An unexpected error is a temporary failure: the sender keeps the mail and retries."""
        log.exception("SMTP session error", exc_info=error)
        metrics.EMAIL_RECEIVED.labels("deferred").inc()
        return "451 4.3.0 Temporary server error"


# Bytes a connection's stream buffers before reading pauses (aiosmtpd sizes its buffer by
# the line length limit, 1001 bytes, which makes a 1 MB message take a thousand pauses).
READ_BUFFER = 64 * 1024
_UNPRINTABLE = re.compile(r"[^\t\x20-\x7e]")
# ``<dot-atom@dot-atom>`` and what follows (RFC 5321 Mailbox without quoting or literals):
# groups are the address, its local part and the rest of the command.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(
    rf" *<(({_ATOM}(?:\.{_ATOM})*)@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>(.*)\Z",
    re.DOTALL,
)
SHUTTING_DOWN = b"421 4.3.2 Service shutting down, try again later\r\n"
# RFC 3463 codes for replies aiosmtpd gives without one (ENHANCEDSTATUSCODES promises one
# on every 2xx, 4xx and 5xx reply but the greeting and the HELO/EHLO answer).
ENHANCED = {
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "251": "2.1.5",
    "252": "2.1.5",
    "421": "4.3.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "550": "5.0.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}
_HAS_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(\s|$)")


def enhanced(status: str) -> str:
    """A reply with an RFC 3463 enhanced status code after its basic code."""
    code, sep, text = status[:3], status[3:4], status[4:]
    if code[:1] not in ("2", "4", "5") or sep not in (" ", "-", "") or _HAS_ENHANCED.match(text):
        return status
    detail = ENHANCED.get(code, f"{code[0]}.0.0")
    return f"{code}{sep or ' '}{detail} {text}".rstrip()


class Sessions:
    """The open SMTP sessions of one server: counted per client IP, and ended on stop."""

    def __init__(self, max_per_ip: int) -> None:
        self.max_per_ip = max_per_ip
        self.per_ip: dict[str, int] = {}
        self.open: set[LimitedSMTP] = set()
        self.stopping = False
        self.ended = asyncio.Event()

    def admit(self, session: "LimitedSMTP") -> bool:
        """Count a new connection; False when its address already has the most allowed."""
        if self.per_ip.get(session.client_ip, 0) >= self.max_per_ip:
            return False
        self.per_ip[session.client_ip] = self.per_ip.get(session.client_ip, 0) + 1
        self.open.add(session)
        return True

    def release(self, session: "LimitedSMTP") -> None:
        self.open.discard(session)
        left = self.per_ip.get(session.client_ip, 1) - 1
        if left > 0:
            self.per_ip[session.client_ip] = left
        else:
            self.per_ip.pop(session.client_ip, None)
        if self.stopping and not self.open:
            self.ended.set()

    async def end(self, grace: float) -> None:
        """Close idle sessions now and busy ones after their transaction, within ``grace`` s."""
        self.stopping = True
        for session in list(self.open):
            session.shut_down()
        if self.open:
            try:
                await asyncio.wait_for(self.ended.wait(), grace)
            except TimeoutError:
                log.warning("closing %d SMTP sessions still open after %.1f s", len(self.open), grace)
                for session in list(self.open):
                    session.goodbye()


class LimitedSMTP(SMTP):
    """aiosmtpd's SMTP with a per-IP connection limit, a whole-session time limit, a
    graceful shutdown and a DATA reader that takes many lines per call."""

    def __init__(self, handler: LayerHandler, sessions: Sessions, settings: Settings, **kwargs: Any) -> None:
        # aiosmtpd's constructor sizes the stream buffer by this attribute.
        self.line_length_limit = READ_BUFFER
        super().__init__(handler, **kwargs)
        self.line_length_limit = settings.max_line_length
        self.sessions = sessions
        self.limits = settings
        self.admitted = False
        self.in_data = False
        self.stopping = False
        self.client_ip = ""
        self.session_timer: asyncio.TimerHandle | None = None
        # The greeting and the HELO/EHLO answers go out as they are (RFC 2034).
        self.verbatim = True

    def connection_made(self, transport: Any) -> None:
        if self.admitted:
            # aiosmtpd calls this again with the TLS transport after STARTTLS.
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if isinstance(peer, tuple) else str(peer)
        if self.sessions.stopping:
            transport.write(SHUTTING_DOWN)
            transport.close()
            return
        if not self.sessions.admit(self):
            log.warning(
                "421 for %s: more than %d connections", self.client_ip, self.limits.max_connections_per_ip
            )
            transport.write(b"421 4.7.0 Too many connections from your address\r\n")
            transport.close()
            return
        self.admitted = True
        self.session_timer = asyncio.get_running_loop().call_later(self.limits.session_timeout, self.too_long)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """While a message arrives, any bytes restart the command timeout: a large message
        over a slow link is not cut off for taking longer in all than one command may. A
        client trickling DATA is still bounded by the session timeout."""
        if self.in_data:
            private.restart_timeout(self)
        super().data_received(data)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA as aiosmtpd answers it, with the message read by ``read_data``."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        self.in_data = True
        try:
            await self._data()
        finally:
            self.in_data = False
        if self.stopping:
            self.goodbye()

    async def _data(self) -> None:
        assert self.envelope is not None
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, error = await read_data(
                private.reader(self), self.data_size_limit, self.line_length_limit
            )
        except asyncio.CancelledError:
            log.info("connection from %s lost during DATA", self.client_ip)
            private.writer(self).close()
            raise
        except asyncio.IncompleteReadError:
            log.info("connection from %s closed during DATA", self.client_ip)
            private.writer(self).close()
            return
        if error is not None:
            metrics.EMAIL_RECEIVED.labels("rejected" if error.startswith("5") else "deferred").inc()
            log.info("%s for a message from %s", error[:3], self.client_ip)
            await self.push(error)
            private.end_data(self)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await private.call_data_hook(self)
        private.end_data(self)
        await self.push("250 OK" if status is MISSING else status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parsing, with an address the standard library's parser
        fails on (``MAIL FROM:<``: IndexError; a NUL before ``@[``: AttributeError) taken
        as the syntax error it is: a 501, never a 451 that a sending server would retry
        for days.

        The plain ``<local@domain>`` form that nearly all mail uses is read by a regular
        expression, much cheaper than the standard library's header parser.
        """
        plain = _PLAIN_ADDRESS.match(arg)
        if plain is not None and not (self.local_part_limit and len(plain[2]) > self.local_part_limit):
            return plain[1], plain[3].lstrip(" \t")
        try:
            return private.parse_address(self, arg)
        except Exception:
            return None, None

    async def smtp_EHLO(self, hostname: str) -> None:
        self.verbatim = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self.verbatim = False

    async def smtp_HELO(self, hostname: str) -> None:
        self.verbatim = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self.verbatim = False

    async def push(self, status: str | bytes) -> None:
        """Send a reply, with an enhanced status code; a message refused at MAIL for its
        announced size is logged too.

        aiosmtpd repeats what the client sent in some replies (an unknown verb, a VRFY
        argument): a control character there made a malformed reply, and a byte that is
        not UTF-8 made the reply fail to encode (a traceback and a 451). Reply text is
        printable ASCII (RFC 5321 4.2), so anything else becomes "?". AUTH challenges
        come as bytes (base64, so ASCII already).
        """
        if isinstance(status, bytes):
            status = status.decode("ascii", "replace")
        if status.startswith("552 Error: message size exceeds"):
            metrics.EMAIL_RECEIVED.labels("rejected").inc()
            log.info("552 for a message from %s: its announced size is over the limit", self.client_ip)
        if self.verbatim:
            if status.startswith("220 "):
                self.verbatim = False
        else:
            status = enhanced(status)
        await super().push(_UNPRINTABLE.sub("?", status))

    def shut_down(self) -> None:
        """The server is stopping: end this session now, or after the message in progress."""
        self.stopping = True
        if not self.in_data and (self.envelope is None or self.envelope.mail_from is None):
            self.goodbye()

    def goodbye(self) -> None:
        """Tell the client the service is going away (421) and close the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(SHUTTING_DOWN)
            self.transport.close()

    def too_long(self) -> None:
        self.session_timer = None
        if self.transport is not None:
            self.transport.write(b"421 4.4.2 Session too long, closing\r\n")
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return
        if self.session_timer is not None:
            self.session_timer.cancel()
        self.sessions.release(self)
        super().connection_lost(exc)


class FileAuthenticator:
    """AUTH against ``user:password`` lines read once from a file."""

    def __init__(self, path: str) -> None:
        self.users: dict[str, str] = {}
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                user, sep, password = line.rstrip("\n").partition(":")
                if sep and user:
                    self.users[user] = password

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            known = self.users.get(auth_data.login.decode("utf-8", "replace"))
            if known is not None and hmac.compare_digest(known.encode(), auth_data.password):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)
