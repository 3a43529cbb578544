"""Outbound mail: consume ``email.send``, deliver through the relay, retry temporary
failures with backoff for a bounded time, and report what cannot be delivered on
``email.send.failed`` — never drop a message silently.

``email.send`` is a durable channel: an entry is acknowledged only once it was delivered
or reported, and the retry state (attempts, next attempt, recipients still to do, the
Message-ID) is saved with it before each back-off. A server that stops gives its
entries back, one that dies has them taken after the visibility timeout: either way the
server that takes them next carries on where the last one stopped.
"""

import asyncio
import hashlib
import logging
import os
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from email.message import Message
from typing import Any

import msgpack

from switchroom.layers import BaseLayer, Delivery, LayerError, Leases, MessageTooLarge
from switchroom.layers.cancelling import cancel_and_wait, raise_if_cancelled
from switchroom.layers.durable import fit_report
from switchroom.shared import metrics
from switchroom.shared.mail import dsn
from switchroom.shared.mail.compose import compose, recipients
from switchroom.shared.messages import EMAIL_SEND, EMAIL_SEND_FAILED, apply_defaults, validate

from .settings import Settings

log = logging.getLogger("switchroom.email")

CHANNEL = EMAIL_SEND
DEAD_LETTERS = EMAIL_SEND_FAILED
MAX_BACKOFF = 60.0
# Seconds a stop waits for cancelled deliveries and reads to end before abandoning them.
CANCEL_WAIT = 2.0


class PermanentFailure(Exception):
    """The relay refused the message for good (a 5xx answer)."""


def build(message: Any, settings: Settings) -> tuple[Message | bytes, str, list[str]]:
    """What to hand the relay for an ``email.send``: the message (MIME, or bytes to relay
    as they are), the envelope sender (``""`` for a bounce) and the recipients. Raises on
    a message that cannot be sent (``MessageFormatError``, or the standard library's
    header parser failing on a malformed address)."""
    message = apply_defaults(EMAIL_SEND, validate(EMAIL_SEND, message))
    if message["raw"] is not None:
        return message["raw"], message["mail_from"] or "", recipients(message)
    if message["dsn"] is not None:
        return dsn.report(message, settings.hostname), "", recipients(message)
    return compose(message, settings.sender)


def relay_context() -> ssl.SSLContext:
    """The TLS context for the relay: the system's CAs, or ``SWITCHROOM_RELAY_CAFILE``'s."""
    context = ssl.create_default_context()
    if os.environ.get("SWITCHROOM_RELAY_CAFILE"):
        context.load_verify_locations(os.environ["SWITCHROOM_RELAY_CAFILE"])
    return context


def deliver(settings: Settings, payload: Message | bytes, sender: str, rcpts: list[str]) -> dict[str, str]:
    """One blocking delivery attempt. Returns the recipients the relay refused for now
    (4xx) with its answer; raises PermanentFailure on a 5xx for the whole message or for
    every recipient, and smtplib/OS errors for temporary failures."""
    context = relay_context() if settings.relay_tls or settings.relay_starttls else None
    client_class = smtplib.SMTP_SSL if settings.relay_tls else smtplib.SMTP
    kwargs: dict[str, Any] = {
        "timeout": settings.relay_timeout,
        "local_hostname": settings.relay_helo or settings.hostname,
    }
    if settings.relay_tls:
        kwargs["context"] = context
    try:
        with client_class(settings.relay_host, settings.relay_port, **kwargs) as client:
            if settings.relay_starttls:
                client.starttls(context=context)
            user = os.environ.get("SWITCHROOM_RELAY_USER")
            if user:
                client.login(user, os.environ.get("SWITCHROOM_RELAY_PASSWORD", ""))
            if isinstance(payload, bytes):
                client.ehlo_or_helo_if_needed()
                options = []
                if not payload.isascii() and client.has_extn("8bitmime"):
                    options.append("BODY=8BITMIME")
                if not all(a.isascii() for a in (sender, *rcpts)) and client.has_extn("smtputf8"):
                    options.append("SMTPUTF8")
                refused = client.sendmail(sender, rcpts, payload, mail_options=options)
            else:
                refused = client.send_message(payload, from_addr=sender, to_addrs=rcpts)
    except smtplib.SMTPRecipientsRefused as exc:
        if all(code >= 500 for code, _ in exc.recipients.values()):
            raise PermanentFailure(f"recipients refused: {_refusals(exc.recipients)}") from None
        return _refusals(exc.recipients)
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            raise PermanentFailure(f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        raise
    return _refusals(refused)


async def in_daemon_thread(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)`` in a daemon thread of its own: a delivery stuck on a relay that does
    not answer holds neither the event loop nor, once abandoned, the process's exit (a
    default executor's threads are joined at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (call(*args), None)
        except BaseException as exc:
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # The loop closed: the stop abandoned this delivery and said so.

    threading.Thread(target=run, name="switchroom-email-delivery", daemon=True).start()
    return await future


def _refusals(refused: dict[str, tuple[int, bytes]]) -> dict[str, str]:
    return {rcpt: f"{code} {_text(text)}" for rcpt, (code, text) in refused.items()}


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class Outbox:
    """Reads ``email.send`` and runs at most ``max_deliveries`` deliveries at once."""

    def __init__(self, layer: BaseLayer, settings: Settings) -> None:
        self.layer = layer
        self.store = layer.durable
        self.settings = settings
        self.leases = Leases(self.store)
        self.slots = asyncio.Semaphore(settings.max_deliveries)
        self.running: dict[asyncio.Task[None], Delivery] = {}
        # Deliveries sleeping until their next attempt: a stop ends these at once.
        self.waiting: set[asyncio.Task[None]] = set()
        # Entries whose delivery a stop cut short: given back at the end of the stop.
        self.unfinished: list[Delivery] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name="switchroom-email-outbox")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking mail; deliveries mid-transaction get ``grace`` seconds, those waiting
        to retry stop at once; every unfinished entry is given back with its retry state.
        A delivery that has not ended ``CANCEL_WAIT`` seconds after its cancellation (a relay
        that does not answer) is abandoned, and logged: its entry returns to ``email.send``
        after the visibility timeout."""
        if self.task is not None:
            await cancel_and_wait([self.task], CANCEL_WAIT)
        for task in self.waiting:
            task.cancel()
        if self.running:
            await asyncio.wait(set(self.running), timeout=grace)
        abandoned = await cancel_and_wait(set(self.running), CANCEL_WAIT)
        if abandoned:
            log.warning(
                "abandoned %d outbound emails still being delivered %.1f s after the stop: "
                "they stay on %s and are sent again after the visibility timeout",
                len(abandoned),
                grace + CANCEL_WAIT,
                CHANNEL,
            )
        await self.leases.close(CANCEL_WAIT)
        unfinished, self.unfinished = self.unfinished, []
        if unfinished:
            log.info("%d outbound emails not delivered yet stay queued on %s", len(unfinished), CHANNEL)
            try:
                await self.store.release(unfinished)
            except LayerError as exc:
                log.warning(
                    "could not give back %d outbound emails (%s): they return after the visibility timeout",
                    len(unfinished),
                    exc,
                )

    async def run(self) -> None:
        while True:
            raise_if_cancelled()
            await self.slots.acquire()
            try:
                deliveries = await self.store.read([CHANNEL], 1, timeout=5)
            except LayerError as exc:
                self.slots.release()
                log.debug("reading %s failed (%s); retrying", CHANNEL, exc)
                await asyncio.sleep(1)
                continue
            if not deliveries:
                self.slots.release()
                continue
            delivery = deliveries[0]
            self.leases.hold(delivery)
            task = asyncio.get_running_loop().create_task(self.send(delivery))
            self.running[task] = delivery
            task.add_done_callback(self._done)

    def _done(self, task: "asyncio.Task[None]") -> None:
        self.slots.release()
        delivery = self.running.pop(task, None)
        if delivery is not None:
            self.leases.drop(delivery)
            if task.cancelled():
                self.unfinished.append(delivery)

    async def send(self, delivery: Delivery) -> None:
        """Deliver one entry, or report it; then acknowledge it."""
        await self._send(delivery)
        for attempt in range(3):
            try:
                await self.store.ack([delivery])
                return
            except LayerError as exc:
                log.warning("could not acknowledge an outbound email (%s)", exc)
                raise_if_cancelled()
                await asyncio.sleep(1 + attempt)
        log.error("an outbound email %s may be delivered again: it could not be acknowledged", delivery.key)

    async def _send(self, delivery: Delivery) -> None:
        message = delivery.message
        try:
            payload, sender, rcpts = build(message, self.settings)
        except Exception as exc:
            # Not only MessageFormatError: the standard library's header parser raises
            # IndexError, AttributeError or HeaderParseError on some malformed addresses.
            error = f"invalid email.send message: {type(exc).__name__}: {exc}"
            await self.dead_letter(message, error, 0, None, None, [])
            return
        if not self.settings.relay_host:
            await self.dead_letter(message, "no relay configured (--relay-host)", 0, None, None, rcpts)
            return
        state = delivery.note or {}
        first = state.get("first") or time.time()
        deadline = first + self.settings.retry_for
        delay = state.get("delay") or self.settings.retry_backoff
        attempts = state.get("attempts", 0)
        pending = state.get("pending") or rcpts
        refused_for_good: dict[str, str] = state.get("refused") or {}
        message_id = _stable_id(payload, state.get("message_id"), entry_message_id(delivery, self.settings))
        if state.get("next", 0) > time.time():
            await self._wait(state["next"] - time.time())
        while True:
            attempts += 1
            try:
                refused = await in_daemon_thread(deliver, self.settings, payload, sender, pending)
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
                    log.info(
                        "delivered %s to %s via %s", message_id or delivery.key, ",".join(delivered), relay
                    )
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
            if time.time() + delay > deadline:
                break
            metrics.EMAIL_OUTBOUND.labels("deferred").inc()
            log.warning(
                "delivery of %s failed (%s); retrying in %.1f s", message_id or delivery.key, error, delay
            )
            state = {
                "first": first,
                "attempts": attempts,
                "next": time.time() + delay,
                "delay": min(delay * 2, MAX_BACKOFF),
                "pending": pending,
                "refused": refused_for_good,
                "message_id": message_id,
            }
            await self._save(delivery, state)
            await self._wait(delay)
            delay = state["delay"]
        await self.dead_letter(message, error, attempts, first, time.time(), [*pending, *refused_for_good])

    async def _save(self, delivery: Delivery, state: dict[str, Any]) -> None:
        """Keep the retry state with the entry, so whoever takes it next carries on."""
        try:
            await self.store.save_note(delivery, state)
        except LayerError as exc:
            log.warning(
                "could not save the retry state of %s (%s): a restart would retry at once", delivery.key, exc
            )

    async def _wait(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.waiting.add(task)  # type: ignore[arg-type]
        try:
            raise_if_cancelled()
            await asyncio.sleep(seconds)
        finally:
            self.waiting.discard(task)  # type: ignore[arg-type]

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
                # The report holds the whole message: without the attachments' bytes (and,
                # if need be, its largest fields, named in ``truncated``) it fits.
                slim = {**report["message"], "attachments": _without_content(report["message"])}
                if "raw" in slim:
                    slim["raw"] = None
                report = fit_report({**report, "message": slim}, self.layer.max_message_size - 1024)
                await self.layer.send(DEAD_LETTERS, report)
        except LayerError as exc:
            log.error("could not report the failed email on %s: %s", DEAD_LETTERS, exc)


def entry_message_id(delivery: Delivery, settings: Settings) -> str:
    """The Message-ID of a composed message, the same on every delivery of its entry: a
    relay that took it while this server died before its acknowledgement gets it again
    under the same Message-ID, which the receiving side can recognise."""
    digest = hashlib.sha256(msgpack.packb(delivery.message, use_bin_type=True)).hexdigest()[:16]
    return f"<{delivery.id}.{digest}@{settings.hostname}>"


def _stable_id(payload: Message | bytes, saved: str | None, fallback: str) -> str | None:
    """The Message-ID every attempt sends: the one a previous attempt used, else one from
    the message's own ``headers``, else ``fallback`` (relayed bytes keep theirs: None)."""
    if isinstance(payload, bytes):
        return saved
    given = payload.get_all("Message-ID") or []
    # compose's own comes first; one from the message's ``headers`` follows and wins.
    chosen = saved or (given[-1] if len(given) > 1 else fallback)
    del payload["Message-ID"]
    payload["Message-ID"] = chosen
    return chosen


def _without_content(message: dict[str, Any]) -> list[Any]:
    attachments = message.get("attachments")
    if not isinstance(attachments, list):
        return []
    return [
        {**item, "content": None, "size": len(item.get("content") or b"")} if isinstance(item, dict) else item
        for item in attachments
    ]
