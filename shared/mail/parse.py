"""An SMTP transaction → the ``email.receive`` message, as pure code.

The server puts on the layer what it needs no parsing for: the envelope, the Message-ID
(found by a scan of the header lines) and the raw message (``incoming``). Its reader
fills in the rest (``received``; the worker runtime does it before a consumer sees the
message): the standard library's modern email API (``policy.default``) parses the
message; headers and bodies are decoded to str (body newlines turned into ``\\n``),
attachments kept as bytes. Any bytes at all give a message: what cannot be decoded is
replaced (U+FFFD) and named in ``defects``, and the raw message always keeps every byte.
"""

import hashlib
import re
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from io import BytesIO
from typing import Any

# Messages larger than this are parsed on a worker thread instead of the event loop.
PARSE_ON_A_THREAD = 256 * 1024
# What ``received`` adds to the message the server sent.
PARSED_FIELDS = (
    "subject",
    "from",
    "to",
    "cc",
    "reply_to",
    "date",
    "text",
    "html",
    "headers",
    "attachments",
    "defects",
)


class CachedHeaders(HeaderRegistry):
    """The standard header registry, remembering the MIME structure headers it made.

    ``policy.default`` parses a header again each time it is read, and the parser itself
    reads every part's Content-Type several times. Header objects never change, so each
    distinct short value of the headers that describe parts is parsed once; the values
    that repeat across messages (``text/plain; charset=utf-8``, ``base64``, ``1.0``)
    then cost a dict look-up.
    """

    NAMES = frozenset({"content-type", "content-transfer-encoding", "content-disposition", "mime-version"})
    MAX_VALUE = 256
    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: str) -> BaseHeader:
        if len(value) > self.MAX_VALUE or name.lower() not in self.NAMES:
            return super().__call__(name, value)
        key = (name, value)
        header = self.made.get(key)
        if header is None:
            if len(self.made) >= self.MAX_ENTRIES:
                self.made.clear()
            header = self.made[key] = super().__call__(name, value)
        return header


POLICY = policy.default.clone(header_factory=CachedHeaders())
_parser = BytesParser(policy=POLICY)


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def clean(text: str) -> str:
    """``text`` as valid Unicode: raw 8-bit bytes the parser kept as surrogates become
    UTF-8 when they are UTF-8 (SMTPUTF8 mail), U+FFFD otherwise."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _header(msg: EmailMessage, name: str) -> str | None:
    """A header decoded (RFC 2047 words, UTF-8), or its raw text if it cannot be parsed."""
    try:
        value = msg.get(name)
        return None if value is None else clean(str(value)).strip()
    except Exception:
        for key, raw in msg.raw_items():
            if key.lower() == name:
                return clean(_FOLD.sub("", raw)).strip()
        return None


def _addresses(msg: EmailMessage, name: str) -> list[str]:
    try:
        header = msg.get(name)
        if header is None:
            return []
        return [clean(str(address)) for address in header.addresses]
    except Exception:
        value = _header(msg, name) or ""
        return [part.strip() for part in value.split(",") if part.strip()]


def _date(msg: EmailMessage) -> str | None:
    try:
        header = msg.get("date")
        moment = getattr(header, "datetime", None)
        return moment.isoformat() if moment is not None else None
    except Exception:
        return None


def _decode(part: EmailMessage) -> str:
    """A text part as str: its charset when Python knows it, else UTF-8 with replacement."""
    try:
        content = part.get_content()
        if isinstance(content, str):
            return clean(content).replace("\r\n", "\n")
    except (LookupError, UnicodeError, ValueError, AssertionError, KeyError):
        pass
    payload = part.get_payload(decode=True) or b""
    try:
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _bodies(msg: EmailMessage) -> tuple[str | None, str | None, set[int]]:
    """The text and HTML bodies the standard library picks, and the ids of their parts."""
    chosen: set[int] = set()
    texts: list[str | None] = []
    for kind in ("plain", "html"):
        try:
            part = msg.get_body(preferencelist=(kind,))
        except Exception:
            part = None
        if part is not None and part.get_content_type() == f"text/{kind}":
            chosen.add(id(part))
            texts.append(_decode(part))
        else:
            texts.append(None)
    return texts[0], texts[1], chosen


def _leaves(part: EmailMessage) -> list[EmailMessage]:
    """The parts that hold content, in order; an attached email counts as one."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        return [leaf for sub in part.iter_parts() for leaf in _leaves(sub)]
    return [part]


class _AsReceived(BytesGenerator):
    """Writes a wrapped (forwarded) message back as it came: header lines unrefolded
    (refolding an 8-bit or broken encoded-word header can fail), and a multipart whose
    boundary was never found written as its text, bytes kept, as the generator does for
    text parts (its own multipart writer decodes that text with the declared charset,
    which fails on 8-bit data or an unknown charset)."""

    def _handle_multipart(self, msg: EmailMessage) -> None:
        if msg.is_multipart():
            super()._handle_multipart(msg)
        else:
            self._handle_text(msg)


_AS_RECEIVED = policy.SMTP.clone(refold_source="none")


def _flatten(message: EmailMessage) -> bytes:
    """A wrapped message's bytes (see ``_AsReceived``)."""
    out = BytesIO()
    _AsReceived(out, policy=_AS_RECEIVED).flatten(message)
    return out.getvalue()


def _attachment(part: EmailMessage) -> dict[str, Any] | None:
    """One non-body part as an attachment, or None for loose text that is not one."""
    try:
        filename = part.get_filename()
        filename = clean(filename) if filename is not None else None
    except Exception:
        filename = None
    content_type = part.get_content_type()
    if part.get_content_disposition() != "attachment" and not filename and content_type.startswith("text/"):
        return None
    if part.is_multipart():  # message/rfc822 and other wrapped messages
        inner = part.get_payload()
        content = b"".join(_flatten(sub) for sub in inner if isinstance(sub, EmailMessage))
    else:
        content = part.get_payload(decode=True)
        if content is None:
            payload = part.get_payload()
            content = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    content_id = _header(part, "content-id")
    return {
        "filename": filename,
        "content_type": content_type,
        "content_id": content_id.strip("<>") if content_id else None,
        "size": len(content),
        "content": content,
    }


def fields(raw: bytes) -> dict[str, Any]:
    """What the message itself says: headers, bodies, attachments, and parser defects."""
    msg = _parser.parsebytes(raw)
    text, html, bodies = _bodies(msg)
    attachments = []
    unreadable = []
    for index, part in enumerate(_leaves(msg)):
        if id(part) in bodies:
            continue
        try:
            item = _attachment(part)
        except Exception as exc:  # one part the standard library cannot write must not cost the others
            unreadable.append(clean(f"part {index} unreadable: {type(exc).__name__}: {exc}"))
            continue
        if item is not None:
            attachments.append(item)
    defects = [type(defect).__name__ for defect in msg.defects]
    for part in msg.walk():
        if part is not msg:
            defects.extend(type(defect).__name__ for defect in part.defects)
    defects.extend(unreadable)
    return {
        "message_id": _header(msg, "message-id"),
        "subject": _header(msg, "subject") or "",
        "from": _header(msg, "from"),
        "to": _addresses(msg, "to"),
        "cc": _addresses(msg, "cc"),
        "reply_to": _addresses(msg, "reply-to"),
        "date": _date(msg),
        "text": text,
        "html": html,
        "headers": [[name, clean(_FOLD.sub("", value))] for name, value in msg.raw_items()],
        "attachments": attachments,
        "defects": defects,
    }


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID header of a raw message, found without parsing it; None if absent."""
    end = raw.find(b"\r\n\r\n")
    found = _MESSAGE_ID.search(raw if end < 0 else raw[: end + 2])
    if found is None:
        return None
    value = _FOLD.sub("", found.group(1).decode("utf-8", "surrogateescape")).strip()
    return clean(value) or None


def incoming(
    raw: bytes, *, mail_from: str, rcpt_to: list[str], peer: list[Any], helo: str | None
) -> dict[str, Any]:
    """The ``email.receive`` the server puts on the layer: the envelope, Message-ID, size
    and raw message. ``MAIL FROM:<>`` (a bounce) is the empty sender ``""``."""
    return {
        "mail_from": "" if mail_from in ("<>", None) else clean(mail_from),
        "rcpt_to": [clean(address) for address in rcpt_to],
        "peer": peer,
        "helo": clean(helo) if helo is not None else None,
        "message_id": message_id_of(raw),
        "size": len(raw),
        "raw": raw,
    }


def received(message: dict[str, Any]) -> dict[str, Any]:
    """An ``email.receive`` with every field: those the message lacks are parsed from its
    ``raw`` bytes (a message without ``raw``, or with every field, is returned as is)."""
    raw = message.get("raw")
    if not isinstance(raw, bytes) or all(name in message for name in PARSED_FIELDS):
        return message
    try:
        found = fields(raw)
    except Exception as exc:  # the standard library failing on hostile input: keep the raw bytes
        found = {"defects": [clean(f"unreadable: {type(exc).__name__}: {exc}")]}
    return {**found, **message}


def idempotency_key(message: dict[str, Any]) -> str:
    """What identifies an email across redeliveries: its Message-ID, else a digest of it."""
    return message["message_id"] or "sha256:" + hashlib.sha256(message["raw"]).hexdigest()[:32]
