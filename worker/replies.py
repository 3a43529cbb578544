"""Pure builders of the messages a worker sends back: HTTP responses (split into chunks
that fit the layer), WebSocket frames, email replies, and Slack posts (bounces are
``switchroom.shared.mail.dsn``'s)."""

import json
from email.utils import parseaddr
from typing import Any

from switchroom.layers.streams import pieces


def encode_body(body: Any, content_type: str | None) -> tuple[bytes, str]:
    """Bytes and content type for a body given as bytes, str or JSON-able data."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), content_type or "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), content_type or "text/plain; charset=utf-8"
    return json.dumps(body).encode("utf-8"), content_type or "application/json"


def http_response(
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | list[list[bytes]],
    chunk_size: int,
) -> list[dict[str, Any]]:
    """One ``http.response`` and as many ``http.response.chunk`` messages as the body needs,
    each with at most ``chunk_size`` (the layer's ``chunk_size``) body bytes."""
    parts = pieces(body, chunk_size)
    first = {
        "status": status,
        "headers": [[bytes(k), bytes(v)] for k, v in headers],
        "content": parts[0],
        "more_content": len(parts) > 1,
    }
    rest = [{"content": p, "more_content": i < len(parts) - 2} for i, p in enumerate(parts[1:])]
    return [first, *rest]


def plain_response(status: int, text: str, chunk_size: int) -> list[dict[str, Any]]:
    """A short text/plain response, e.g. 404 or 500."""
    body = text.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    return http_response(status, body, headers, chunk_size)


def websocket_frame(
    text: str | None = None,
    data: bytes | None = None,
    accept: bool | None = None,
    close: bool | int | None = None,
    subprotocol: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A ``websocket.send`` message with only the fields that are set."""
    fields = {
        "text": text,
        "bytes": data,
        "accept": accept,
        "close": close,
        "subprotocol": subprotocol,
        "reason": reason,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _address(value: str | None) -> str:
    return parseaddr(value or "")[1]


def email_reply(original: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An ``email.send`` answering ``original``: to its Reply-To/From, threaded by Message-ID."""
    to = [a for a in (_address(x) for x in original.get("reply_to") or []) if a]
    if not to:
        to = [a for a in (_address(original.get("from")), original.get("mail_from")) if a][:1]
    if not to:
        raise ValueError("the email has no sender address to reply to")
    subject = original.get("subject") or ""
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}".strip()
    message_id = original.get("message_id")
    references = [*_references(original), message_id] if message_id else _references(original)
    message = {"to": to, "subject": subject, "in_reply_to": message_id, "references": references}
    message.update(fields)
    return message


def _references(original: dict[str, Any]) -> list[str]:
    for name, value in original.get("headers") or []:
        if name.lower() == "references":
            return value.split()
    return []


def slack_post(event: dict[str, Any], text: str | None, thread: bool, **fields: Any) -> dict[str, Any]:
    """A ``slack.send`` answering ``event`` in its channel (in its thread if ``thread``)."""
    message = {"channel": event.get("channel"), "team": event.get("team"), "text": text}
    if thread:
        message["thread_ts"] = event.get("thread_ts") or event.get("ts")
    message.update(fields)
    return message
