"""An SMTP transaction → the ``email.receive`` message, as pure code.

The standard library's modern email API parses the message; bodies are decoded to str
(with ``\\r\\n`` turned into ``\\n``), attachments kept as bytes. Whatever does not fit in
one layer message goes as ``email.chunk`` pieces on single-reader channels named in the
message, so every byte can be read back (``read_chunks``).
"""

from dataclasses import dataclass, field
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

# Room left in a layer message for headers, addresses and the rest of the envelope.
ENVELOPE_ROOM = 64 * 1024



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


@dataclass
class Parsed:
    """The ``email.receive`` message and the chunks to send first: (channel key, bytes)."""

    message: dict[str, Any]
    spills: list[tuple[str, bytes]] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(value)
    except Exception:
        return None


def _addresses(msg: EmailMessage, name: str) -> list[str]:
    header = msg.get(name)
    if header is None:
        return []
    try:
        return [str(a) for a in header.addresses]
    except Exception:
        return [part.strip() for part in str(header).split(",") if part.strip()]


def _decode(part: EmailMessage) -> str:
    """A text part as str: its charset when known, else UTF-8 with replacement."""
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content.replace("\r\n", "\n")
    except (LookupError, UnicodeError, ValueError, AssertionError, KeyError):
        pass
    payload = part.get_payload(decode=True) or b""
    try:
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _bodies(msg: EmailMessage) -> tuple[str | None, str | None, set[int]]:
    chosen: set[int] = set()
    texts = []
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


def _attachments(msg: EmailMessage, bodies: set[int]) -> list[dict[str, Any]]:
    out = []
    for part in msg.walk():
        if part.is_multipart() or id(part) in bodies:
            continue
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if disposition != "attachment" and not filename and part.get_content_maintype() == "text":
            continue
        content = part.get_payload(decode=True)
        if content is None:
            payload = part.get_payload()
            content = payload.encode("utf-8", "replace") if isinstance(payload, str) else b""
        out.append(
            {
                "filename": filename,
                "content_type": part.get_content_type(),
                "size": len(content),
                "content": content,
                "content_channel": None,
            }
        )
    return out


def parse(
    raw: bytes,
    *,
    mail_from: str,
    rcpt_to: list[str],
    peer: list[Any],
    helo: str | None,
    max_layer_message: int,
) -> Parsed:
    """Translate a received message; big parts are listed in ``spills`` to send as chunks.

    A spill's key is ``"raw"`` or ``"attachment:<index>"``; the caller names a channel for
    each and sets ``raw_channel`` / ``content_channel`` before sending.
    """
    msg = _parser.parsebytes(raw)
    text, html, bodies = _bodies(msg)
    date = None
    try:
        if msg["date"]:
            date = parsedate_to_datetime(str(msg["date"])).isoformat()
    except (TypeError, ValueError, IndexError):
        date = None
    headers = [[name, _header_text(value)] for name, value in msg.raw_items()]
    message: dict[str, Any] = {
        "mail_from": mail_from,
        "rcpt_to": list(rcpt_to),
        "peer": peer,
        "helo": helo,
        "message_id": (_text(msg.get("message-id")) or "").strip() or None,
        "subject": (_text(msg.get("subject")) or "").strip(),
        "from": _text(msg.get("from")),
        "to": _addresses(msg, "to"),
        "cc": _addresses(msg, "cc"),
        "reply_to": _addresses(msg, "reply-to"),
        "date": date,
        "text": text,
        "html": html,
        "headers": headers,
        "attachments": _attachments(msg, bodies),
        "raw": raw,
        "raw_channel": None,
        "size": len(raw),
    }
    return Parsed(message, _fit(message, max_layer_message - ENVELOPE_ROOM))


def _header_text(value: Any) -> str:
    text = _text(value)
    return text if text is not None else ""


def _fit(message: dict[str, Any], budget: int) -> list[tuple[str, bytes]]:
    """Move the largest parts out of the message until the rest fits in ``budget`` bytes."""
    spills: list[tuple[str, bytes]] = []
    for key in ("text", "html"):
        value = message[key]
        if value is not None and len(value.encode("utf-8")) > budget // 4:
            message[key] = value.encode("utf-8")[: budget // 4].decode("utf-8", "ignore")
    used = sum(len((message[k] or "").encode("utf-8")) for k in ("text", "html"))
    used += sum(len(str(v)) for _, v in message["headers"])
    attachments = message["attachments"]
    for index in sorted(range(len(attachments)), key=lambda i: attachments[i]["size"]):
        item = attachments[index]
        if used + item["size"] <= budget // 2:
            used += item["size"]
        else:
            spills.append((f"attachment:{index}", item["content"]))
            item["content"] = None
    if used + len(message["raw"]) > budget:
        spills.append(("raw", message["raw"]))
        message["raw"] = None
    return spills


def pieces(data: bytes, size: int) -> list[dict[str, Any]]:
    """``data`` as ``email.chunk`` messages of at most ``size`` bytes."""
    parts = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return [{"content": part, "more_content": i < len(parts) - 1} for i, part in enumerate(parts)]
