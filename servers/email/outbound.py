"""Outbound mail: consume ``email.send``, deliver through the relay, retry temporary
failures with backoff for a bounded time, and report what cannot be delivered on
``email.send.failed`` — never drop a message silently."""

import asyncio
import logging
import os
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

from switchroom.layers import BaseLayer, LayerError, MessageTooLarge
from switchroom.shared import metrics
from switchroom.shared.messages import apply_defaults, validate

from .compose import compose
from .settings import Settings

log = logging.getLogger("switchroom.email")

DEAD_LETTERS = "email.send.failed"


class PermanentFailure(Exception):
    """The relay refused the message for good (a 5xx answer)."""


def deliver(settings: Settings, mime: EmailMessage, sender: str, recipients: list[str]) -> dict[str, str]:
    """One blocking delivery attempt. Returns the recipients the relay refused for now
    (4xx) with its answer; raises PermanentFailure on a 5xx for the whole message or for
    every recipient, and smtplib/OS errors for temporary failures."""
    context = ssl.create_default_context()
    if os.environ.get("SWITCHROOM_RELAY_CAFILE"):
        context.load_verify_locations(os.environ["SWITCHROOM_RELAY_CAFILE"])
    client_class = smtplib.SMTP_SSL if settings.relay_tls else smtplib.SMTP
    kwargs: dict[str, Any] = {"timeout": settings.relay_timeout}
    if settings.relay_tls:
        kwargs["context"] = context
    try:
        with client_class(settings.relay_host, settings.relay_port, **kwargs) as client:
            if settings.relay_starttls:
                client.starttls(context=context)
            user = os.environ.get("SWITCHROOM_RELAY_USER")
            if user:
                client.login(user, os.environ.get("SWITCHROOM_RELAY_PASSWORD", ""))
            refused = client.send_message(mime, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        if all(code >= 500 for code, _ in exc.recipients.values()):
            raise PermanentFailure(f"recipients refused: {_refusals(exc.recipients)}") from None
        return _refusals(exc.recipients)
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            raise PermanentFailure(f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        raise
    return _refusals(refused)


def _refusals(refused: dict[str, tuple[int, bytes]]) -> dict[str, str]:
    return {rcpt: f"{code} {_text(text)}" for rcpt, (code, text) in refused.items()}


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class Outbox:
    """Reads ``email.send`` and runs at most ``max_deliveries`` deliveries at once."""

    def __init__(self, layer: BaseLayer, settings: Settings) -> None:
        self.layer = layer
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.max_deliveries)
        self.running: set[asyncio.Task[None]] = set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="switchroom-email-outbox")

    async def stop(self, grace: float = 5.0) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.running:
            await asyncio.wait(set(self.running), timeout=grace)
            for task in self.running:
                task.cancel()

    async def run(self) -> None:
        while True:
            await self.slots.acquire()
            try:
                channel, message = await self.layer.receive(["email.send"], timeout=5)
            except LayerError as exc:
                self.slots.release()
                log.debug("reading email.send failed (%s); retrying", exc)
                await asyncio.sleep(1)
                continue
            if channel is None:
                self.slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self.send(message))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def send(self, message: dict[str, Any]) -> None:
        """Deliver one message with retries; report it as a dead letter if that fails."""
        try:
            await self._send(message)
        finally:
            self.slots.release()

    async def _send(self, message: dict[str, Any]) -> None:
        try:
            message = apply_defaults("email.send", validate("email.send", message))
            mime, sender, recipients = compose(message, self.settings.sender)
        except Exception as exc:
            # Not only MessageFormatError: the standard library's header parser raises
            # IndexError, AttributeError or HeaderParseError on some malformed addresses.
            error = f"invalid email.send message: {type(exc).__name__}: {exc}"
            await self.dead_letter(message, error, 0, None, None, [])
            return
        if not self.settings.relay_host:
            await self.dead_letter(message, "no relay configured (--relay-host)", 0, None, None, recipients)
            return
        first = time.time()
        deadline = time.monotonic() + self.settings.retry_for
        delay = self.settings.retry_backoff
        attempts = 0
        pending = recipients
        refused_for_good: dict[str, str] = {}
        while True:
            attempts += 1
            try:
                refused = await asyncio.to_thread(deliver, self.settings, mime, sender, pending)
            except PermanentFailure as exc:
                metrics.EMAIL_OUTBOUND.labels("bounced").inc()
                error = f"permanent failure: {exc}"
                break
            except (smtplib.SMTPException, OSError) as exc:
                error = f"temporary failure: {exc!r}"
            except Exception as exc:
                # The message itself cannot be sent (smtplib refuses a line break in a Bcc
                # address with ValueError): trying again gives the same, and an uncaught
                # error here would end the task and lose the message without a report.
                error = f"permanent failure: cannot be sent: {exc!r}"
                break
            else:
                delivered = [rcpt for rcpt in pending if rcpt not in refused]
                if delivered:
                    relay = self.settings.relay_host
                    log.info("delivered %s to %s via %s", mime["Message-ID"], ",".join(delivered), relay)
                refused_for_good.update({rcpt: why for rcpt, why in refused.items() if why.startswith("5")})
                pending = [rcpt for rcpt, why in refused.items() if not why.startswith("5")]
                if not pending:
                    if not refused_for_good:
                        metrics.EMAIL_OUTBOUND.labels("delivered").inc()
                        return
                    metrics.EMAIL_OUTBOUND.labels("bounced").inc()
                    error = f"permanent failure: recipients refused: {refused_for_good}"
                    break
                error = f"temporary failure: recipients refused for now: {refused}"
            if time.monotonic() + delay > deadline:
                break
            metrics.EMAIL_OUTBOUND.labels("deferred").inc()
            log.warning("delivery of %s failed (%s); retrying in %.1f s", mime["Message-ID"], error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
        await self.dead_letter(message, error, attempts, first, time.time(), [*pending, *refused_for_good])

    async def dead_letter(
        self,
        message: Any,
        error: str,
        attempts: int,
        first: float | None,
        last: float | None,
        undelivered: list[str],
    ) -> None:
        """Log the failure and report it on ``email.send.failed``."""
        metrics.EMAIL_OUTBOUND.labels("dead_lettered").inc()
        log.error(
            "giving up on an email to %s after %d attempts: %s",
            ",".join(undelivered) or "?",
            attempts,
            error,
        )
        report = {
            "message": message if isinstance(message, dict) else {"value": repr(message)},
            "error": error,
            "attempts": attempts,
            "first_attempt": first,
            "last_attempt": last,
            "undelivered": undelivered,
        }
        try:
            try:
                await self.layer.send(DEAD_LETTERS, report)
            except MessageTooLarge:
                # The report holds the whole message: without the attachments' bytes it fits.
                report["message"] = {**report["message"], "attachments": _without_content(report["message"])}
                await self.layer.send(DEAD_LETTERS, report)
        except LayerError as exc:
            log.error("could not report the failed email on %s: %s", DEAD_LETTERS, exc)


def _without_content(message: dict[str, Any]) -> list[Any]:
    attachments = message.get("attachments")
    if not isinstance(attachments, list):
        return []
    return [
        {**item, "content": None, "size": len(item.get("content") or b"")} if isinstance(item, dict) else item
        for item in attachments
    ]
