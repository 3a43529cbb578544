"""Runs ``switchroom email`` as a subprocess, and a relay sink for its outbound mail."""

import asyncio
import ssl
import subprocess
import time
import uuid
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from switchroom.servers.email import received
from switchroom.shared.redisproc import free_port

from ..processes import ROOT, SwitchroomProcess

__all__ = ["ROOT", "EmailProcess", "RelaySink", "receive_email", "self_signed"]


class EmailProcess(SwitchroomProcess):
    """A ``switchroom email`` process on a free port, its log in a file. ``layer_url``
    names the layer (a fresh key prefix on ``redis_url`` unless given) so a second process
    can take over from one that was stopped or killed."""

    name = "email"

    def __init__(
        self,
        redis_url: str,
        *args: str,
        env: dict[str, str] | None = None,
        layer_query: str = "",
        layer_url: str | None = None,
    ) -> None:
        self.layer_url = layer_url or f"{redis_url}?prefix=em{uuid.uuid4().hex[:10]}{layer_query}"
        self.port = free_port()
        command = ["email", "--port", str(self.port), "--layer", self.layer_url, *args]
        super().__init__(command, env, ready="listening for SMTP")


async def receive_email(layer, timeout: float = 10) -> dict | None:
    """The next ``email.receive``, parsed as the worker runtime parses it (None if none came)."""
    _, message = await layer.receive(["email.receive"], timeout=timeout)
    return None if message is None else received(message)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, made with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class SinkHandler:
    """A relay that keeps what it receives; addresses starting with ``reject`` get 550 and
    ``later`` 451, and while ``busy`` is above zero every message gets 451 (and counts down);
    with ``hold`` it keeps a message and answers only that many seconds later."""

    def __init__(self) -> None:
        self.messages: list = []
        self.busy = 0
        self.hold = 0.0
        self.logins: list[str] = []
        self.helos: list[str] = []
        # When each DATA arrived (monotonic), taken or not.
        self.attempts: list[float] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("reject"):
            return "550 5.1.1 No such user"
        if address.startswith("later"):
            return "451 4.2.0 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.helos.append(session.host_name)
        self.attempts.append(time.monotonic())
        if self.busy > 0:
            self.busy -= 1
            return "451 4.3.0 Busy, try again later"
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.original_content, policy=policy.default),
            )
        )
        if self.hold:
            await asyncio.sleep(self.hold)
        return "250 OK"


class RelaySink:
    """An aiosmtpd relay on a free loopback port (its own thread); with ``tls`` (certificate
    and key paths) it offers STARTTLS, and with ``users`` it requires AUTH after it."""

    def __init__(self, tls: tuple[Path, Path] | None = None, users: dict[str, str] | None = None) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        kwargs = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            kwargs["tls_context"] = context
        if users is not None:

            def check(server, session, envelope, mechanism, auth_data):
                login = auth_data.login.decode()
                ok = users.get(login) == auth_data.password.decode()
                if ok:
                    self.handler.logins.append(login)
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=check, auth_required=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def wait_for(self, count: int, timeout: float = 20) -> list:
        deadline = time.monotonic() + timeout
        while len(self.handler.messages) < count:
            assert time.monotonic() < deadline, f"the relay got {len(self.handler.messages)} of {count}"
            time.sleep(0.05)
        return self.handler.messages

    def stop(self) -> None:
        self.controller.stop()
