"""Delivery status notifications (RFC 3464): what a bounce looks like, as pure code.

A bounce is an ``email.send`` with a ``dsn`` field and the null envelope sender; this
module builds its ``dsn`` from an ``email.receive`` (``dsn_send``) and, in the server,
the ``multipart/report`` message from it (``report``): a human-readable part, the
``message/delivery-status`` part a mail program reads, and the original's headers.
"""

import time
from datetime import UTC, datetime
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formatdate, make_msgid
from typing import Any

from .compose import one_line

SUBJECT = "Undelivered Mail Returned to Sender"


def header_block(raw: bytes | None) -> bytes:
    """The header lines of a raw message (up to the blank line), CRLF-ended."""
    if not raw:
        return b""
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


def dsn_send(
    original: dict[str, Any],
    recipients: list[str],
    status: str,
    diagnostic: str,
    explanation: str,
    sender: str | None = None,
) -> dict[str, Any] | None:
    """The ``email.send`` bouncing ``original`` (an ``email.receive``) for ``recipients``
    with an RFC 3463 ``status`` (``5.1.1``...), or None when its envelope sender is empty:
    a bounce is never bounced. ``sender`` is the From header (default: MAILER-DAEMON of
    the domain of the first recipient)."""
    mail_from = original.get("mail_from") or ""
    if mail_from in ("", "<>"):
        return None
    domain = recipients[0].rpartition("@")[2] if recipients else "localhost"
    lines = [
        "This is the mail system. Your message could not be delivered to the following recipients:",
        "",
        *(f"  <{address}>: {diagnostic}" for address in recipients),
        "",
        explanation,
        "",
        f"Original subject: {original.get('subject') or '(none)'}",
        f"Original Message-ID: {original.get('message_id') or '(none)'}",
    ]
    return {
        "to": [mail_from],
        "mail_from": "",
        "from": sender or f"Mail Delivery System <MAILER-DAEMON@{domain or 'localhost'}>",
        "subject": SUBJECT,
        "text": "\n".join(lines) + "\n",
        "in_reply_to": original.get("message_id"),
        "headers": [["Auto-Submitted", "auto-replied"]],
        "dsn": {
            "recipients": [
                {"address": address, "status": status, "action": "failed", "diagnostic": diagnostic}
                for address in recipients
            ],
            "arrival": original.get("arrival"),
            "headers": header_block(original.get("raw")),
        },
    }


def _fields(pairs: list[tuple[str, str]]) -> Message:
    block = Message()
    for name, value in pairs:
        block[name] = one_line(value)
    return block


def report(message: dict[str, Any], reporting_mta: str) -> MIMEMultipart:
    """The ``multipart/report`` MIME message of an ``email.send`` carrying ``dsn``."""
    dsn = message["dsn"]
    mime = MIMEMultipart("report", report_type="delivery-status")
    mime["From"] = one_line(message.get("from") or f"MAILER-DAEMON@{reporting_mta}")
    mime["To"] = ", ".join(message["to"])
    mime["Subject"] = one_line(message.get("subject") or SUBJECT)
    mime["Date"] = formatdate(localtime=False)
    mime["Message-ID"] = make_msgid(domain=reporting_mta)
    if message.get("in_reply_to"):
        mime["In-Reply-To"] = message["in_reply_to"]
        mime["References"] = message["in_reply_to"]
    for name, value in message.get("headers") or []:
        mime[name] = one_line(value)
    mime.attach(MIMEText(message.get("text") or "", "plain", "utf-8"))
    per_message = [("Reporting-MTA", f"dns; {reporting_mta}")]
    arrival = dsn.get("arrival")
    if isinstance(arrival, int | float):
        per_message.append(("Arrival-Date", format_datetime(datetime.fromtimestamp(arrival, UTC))))
    blocks = [_fields(per_message)]
    for item in dsn.get("recipients") or []:
        fields = [
            ("Final-Recipient", f"rfc822; {item['address']}"),
            ("Action", item.get("action") or "failed"),
            ("Status", item.get("status") or "5.0.0"),
        ]
        if item.get("diagnostic"):
            fields.append(("Diagnostic-Code", f"smtp; {item['diagnostic']}"))
        fields.append(("Last-Attempt-Date", formatdate(time.time(), localtime=False)))
        blocks.append(_fields(fields))
    status = MIMEBase("message", "delivery-status")
    status.set_payload(blocks)
    mime.attach(status)
    headers = (dsn.get("headers") or b"").decode("utf-8", "replace")
    if headers:
        charset = "us-ascii" if headers.isascii() else "utf-8"
        mime.attach(MIMEText(headers, "rfc822-headers", charset))
    return mime
