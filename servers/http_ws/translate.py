"""HTTP and WebSocket ↔ channel messages, as pure functions over plain data.

Nothing here touches a socket, a timer or the layer: the Twisted driver in ``http.py``
and ``websocket.py`` feeds it what it read and writes what it returns, so every rule
(limits, hosts, proxy headers, message shapes, reply parsing) is tested without I/O.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from switchroom.shared.messages import (
    HTTP_RESPONSE,
    HTTP_RESPONSE_CHUNK,
    WEBSOCKET_SEND,
    MessageFormatError,
    apply_defaults,
    validate,
)

Headers = list[list[bytes]]


class BadRequest(ValueError):
    """The request cannot be translated; ``status`` is the answer to give the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BadReply(ValueError):
    """A worker sent something that is not a valid answer here; the text says why."""


# -- requests ----------------------------------------------------------------------


def split_target(target: bytes) -> tuple[str, bytes]:
    """The percent-decoded path and the raw query string of a request target."""
    if target.startswith((b"http://", b"https://")):
        slash = target.find(b"/", target.index(b"//") + 2)
        target = target[slash:] if slash != -1 else b"/"
    raw_path, _, query = target.partition(b"?")
    raw_path = raw_path.partition(b"#")[0]
    query = query.partition(b"#")[0]
    if not raw_path.startswith(b"/") and raw_path != b"*":
        raise BadRequest(400, "the request target must be a path")
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "the path is not valid UTF-8") from None
    return path, query


# Bytes a path needs no escape for: what the worker's re-encoding of ``path`` leaves as is.
_PLAIN_PATH = re.compile(rb"[A-Za-z0-9/:@!$&'()*+,;=\-._~]*\Z")


def raw_path(target: bytes) -> bytes | None:
    """The path of a request target as sent, for the ``raw_path`` extension; None when the
    percent-decoded path re-encodes to the same bytes (the worker does that itself)."""
    if target.startswith((b"http://", b"https://")):
        slash = target.find(b"/", target.index(b"//") + 2)
        target = target[slash:] if slash != -1 else b"/"
    raw = target.partition(b"?")[0].partition(b"#")[0]
    return None if _PLAIN_PATH.match(raw) else raw


# A target in origin form whose path needs no decoding or re-encoding, with any query and no
# fragment: what most requests send, read with one match.
_PLAIN_TARGET = re.compile(rb"(/[A-Za-z0-9/:@!$&'()*+,;=\-._~]*)(?:\?([^#]*))?\Z")


def target_parts(target: bytes) -> tuple[str, bytes, bytes | None]:
    """``split_target(target)`` and ``raw_path(target)`` together (BadRequest as there)."""
    plain = _PLAIN_TARGET.match(target)
    if plain is not None:
        path, query = plain.groups()
        return path.decode("ascii"), query or b"", None
    path, query = split_target(target)
    return path, query, raw_path(target)


# Control characters other than HTAB: RFC 9110's field values never hold them, and passed on
# they would reach applications and their logs (Twisted lets them through).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def check_headers(headers: Sequence[Sequence[bytes]], max_count: int, max_bytes: int) -> None:
    """Raise 431 when there are too many headers or they are too large together, 400 when
    a value holds a control character."""
    if len(headers) > max_count:
        raise BadRequest(431, f"more than {max_count} request headers")
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if _CONTROL.search(value):
            raise BadRequest(400, f"a control character in the {name.decode('latin-1')} header")
    if size > max_bytes:
        raise BadRequest(431, f"request headers larger than {max_bytes} bytes")


def header(headers: Iterable[Sequence[bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def host_allowed(host: bytes | None, allowed: Sequence[str]) -> bool:
    """Whether the Host header names one of ``allowed`` (empty = any; ``*.x.com`` patterns)."""
    if not allowed:
        return True
    if not host:
        return False
    text = host.decode("latin-1").lower()
    if text.startswith("["):
        name = text[: text.find("]") + 1]
    else:
        name = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    return any(_glob(pattern).match(name) for pattern in allowed)


def _glob(pattern: str) -> "re.Pattern[str]":
    """A pattern in which only ``*`` is special (hosts and origins contain ``[`` and ``?``)."""
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.lower().split("*")) + "$")


def behind_proxy(
    headers: Iterable[Sequence[bytes]], client: list[Any] | None, scheme: str
) -> tuple[list[Any] | None, str]:
    """Client address and scheme as ``X-Forwarded-For``/``-Proto`` tell (only call when trusted)."""
    forwarded_for = header(headers, b"x-forwarded-for")
    if forwarded_for:
        first = forwarded_for.split(b",")[0].strip().decode("latin-1")
        if first:
            client = [first, 0]
    proto = header(headers, b"x-forwarded-proto")
    if proto:
        value = proto.split(b",")[0].strip().decode("latin-1").lower()
        if value in ("http", "https", "ws", "wss"):
            secure = value in ("https", "wss")
            if scheme in ("ws", "wss"):
                scheme = "wss" if secure else "ws"
            else:
                scheme = "https" if secure else "http"
    return client, scheme


def request_message(
    *,
    reply_channel: str,
    method: bytes,
    target: bytes,
    http_version: str,
    headers: Headers,
    scheme: str,
    client: list[Any] | None,
    server: list[Any] | None,
    root_path: str = "",
    body: bytes = b"",
    body_channel: str | None = None,
    parts: tuple[str, bytes, bytes | None] | None = None,
) -> dict[str, Any]:
    """The ``http.request`` message for a request whose headers have been read
    (``parts``: what ``target_parts(target)`` returned, when already known)."""
    path, query, raw = parts or target_parts(target)
    message = {
        "reply_channel": reply_channel,
        "http_version": http_version,
        "method": method.decode("latin-1").upper(),
        "scheme": scheme,
        "path": path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "body": body,
        "body_channel": body_channel,
        "client": client,
        "server": server,
    }
    if raw is not None:
        message["raw_path"] = raw
    return message


def disconnect_message(reply_channel: str, path: str) -> dict[str, Any]:
    """The ``http.disconnect`` message for a client that went away mid-request."""
    return {"reply_channel": reply_channel, "path": path}


# -- responses ---------------------------------------------------------------------


@dataclass
class ResponseStart:
    """The status line, headers and first part of a response."""

    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes
    more: bool


@dataclass
class ResponseChunk:
    """A further part of a streamed response."""

    content: bytes
    more: bool


HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"))


def parse_response(message: Any, started: bool) -> ResponseStart | ResponseChunk:
    """Read a worker's reply to an HTTP request; raise BadReply if it does not fit here."""
    if not isinstance(message, dict):
        raise BadReply(f"a reply must be a dict, not {type(message).__name__}")
    if not started:
        return plain_start(message) or checked_start(message)
    if "status" in message:
        raise BadReply("a second response start arrived for a response already under way")
    content = message.get("content", b"")
    more = message.get("more_content", False)
    if type(content) is bytes and type(more) is bool:
        return ResponseChunk(content, more)
    try:
        message = apply_defaults(HTTP_RESPONSE_CHUNK, validate(HTTP_RESPONSE_CHUNK, message))
    except MessageFormatError as exc:
        raise BadReply(str(exc)) from None
    return ResponseChunk(message["content"], message["more_content"])


_HEADER_LISTS = (list, tuple)


def _forbidden(name: bytes, value: bytes) -> bool:
    """True for a header that would split the response (CR or LF) or a name with a colon."""
    return b"\n" in name or b"\r" in name or b"\n" in value or b"\r" in value or b":" in name


def plain_start(message: dict[str, Any]) -> ResponseStart | None:
    """The response start of a reply whose fields all have their plain types (what workers
    send) and pass every check of ``checked_start``; None for anything else, which
    ``checked_start`` reads and refuses with its reasons."""
    status = message.get("status")
    content = message.get("content", b"")
    more = message.get("more_content", False)
    headers = message.get("headers", ())
    if (
        type(status) is not int
        or not 100 <= status <= 599
        or type(content) is not bytes
        or type(more) is not bool
        or type(headers) not in _HEADER_LISTS
    ):
        return None
    kept = []
    for pair in headers:
        if type(pair) not in _HEADER_LISTS or len(pair) != 2:
            return None
        name, value = pair
        if type(name) is not bytes or type(value) is not bytes:
            return None
        if _forbidden(name, value):
            return None
        if name.lower() not in HOP_BY_HOP:
            kept.append((name, value))
    return ResponseStart(status, kept, content, more)


def checked_start(message: dict[str, Any]) -> ResponseStart:
    """A response start read by the message spec of ``http.response``; BadReply says what
    is wrong with it."""
    try:
        message = apply_defaults(HTTP_RESPONSE, validate(HTTP_RESPONSE, message))
    except MessageFormatError as exc:
        raise BadReply(str(exc)) from None
    status = message["status"]
    if not 100 <= status <= 599:
        raise BadReply(f"status {status} is not an HTTP status code")
    headers = []
    for pair in message["headers"]:
        if len(pair) != 2 or not all(isinstance(part, bytes) for part in pair):
            raise BadReply("each header must be a [name, value] pair of bytes")
        name, value = pair
        if _forbidden(name, value):
            raise BadReply(f"header {name!r} contains a forbidden character")
        if name.lower() in HOP_BY_HOP:
            continue
        headers.append((name, value))
    return ResponseStart(status, headers, message["content"], message["more_content"])


# -- WebSocket ---------------------------------------------------------------------


def connect_message(
    *,
    reply_channel: str,
    target: bytes,
    headers: Headers,
    scheme: str,
    client: list[Any] | None,
    server: list[Any] | None,
    subprotocols: list[str],
    root_path: str = "",
) -> dict[str, Any]:
    """The ``websocket.connect`` message for a handshake (``order`` 0)."""
    path, query = split_target(target)
    message = {
        "reply_channel": reply_channel,
        "scheme": scheme,
        "path": path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "subprotocols": subprotocols,
        "order": 0,
    }
    raw = raw_path(target)
    if raw is not None:
        message["raw_path"] = raw
    return message


def receive_message(reply_channel: str, path: str, payload: bytes, is_binary: bool, order: int) -> dict:
    """The ``websocket.receive`` message for one client message."""
    message: dict[str, Any] = {"reply_channel": reply_channel, "path": path, "order": order}
    if is_binary:
        message["bytes"] = payload
    else:
        message["text"] = payload.decode("utf-8")
    return message


def socket_disconnect_message(reply_channel: str, path: str, code: int, order: int) -> dict[str, Any]:
    """The ``websocket.disconnect`` message once a socket has closed."""
    return {"reply_channel": reply_channel, "path": path, "code": code, "order": order}


@dataclass
class SocketReply:
    """What a ``websocket.send`` message asks for, in the order to carry it out."""

    accept: bool | None = None
    subprotocol: str | None = None
    text: str | None = None
    data: bytes | None = None
    close: int | None = None
    reason: str | None = None
    worker: str | None = None
    status: int | None = None
    headers: list[tuple[bytes, bytes]] | None = None
    body: bytes | None = None

    def is_plain_frame(self) -> bool:
        """Data to send and nothing else to do to an open socket (what a broadcast is)."""
        has_data = self.text is not None or self.data is not None
        return has_data and self.close is None and self.accept is not False


def parse_socket_reply(message: Any) -> SocketReply:
    """Read a worker's ``websocket.send`` message; raise BadReply if it is malformed."""
    try:
        message = apply_defaults(WEBSOCKET_SEND, validate(WEBSOCKET_SEND, message))
    except MessageFormatError as exc:
        raise BadReply(str(exc)) from None
    close = message["close"]
    code = None
    if close is True:
        code = 1000
    elif close is not False and close is not None:
        code = close
    reply = SocketReply(
        accept=message["accept"],
        subprotocol=message["subprotocol"],
        text=message["text"],
        data=message["bytes"],
        close=code,
        reason=message["reason"],
        worker=message["worker"],
        status=message["status"],
        headers=_header_pairs(message["headers"]),
        body=message["body"],
    )
    if reply.accept is None and (reply.text is not None or reply.data is not None):
        reply.accept = True
    return reply


def plain_frame(message: Any) -> tuple[bytes, bool] | None:
    """The payload and whether it is binary of a ``websocket.send`` that carries only
    ``text`` or only ``bytes`` (an echo, a push); None for any other message, which
    ``parse_socket_reply`` reads (and rejects if malformed)."""
    if type(message) is not dict or len(message) != 1:
        return None
    text = message.get("text")
    if type(text) is str:
        return text.encode("utf-8"), False
    data = message.get("bytes")
    if type(data) is bytes:
        return data, True
    return None


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>`` for a response written by hand (a WebSocket denial)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"HTTP/1.1 {status} {phrase}".encode("ascii")


def _header_pairs(headers: list[Any] | None) -> list[tuple[bytes, bytes]] | None:
    """A denial response's headers as byte pairs; BadReply if they are not pairs of bytes."""
    if headers is None:
        return None
    if not all(isinstance(h, list | tuple) and len(h) == 2 for h in headers):
        raise BadReply("'headers' must be [name, value] pairs")
    pairs = [(bytes(k), bytes(v)) for k, v in headers if isinstance(k, bytes) and isinstance(v, bytes)]
    if len(pairs) != len(headers):
        raise BadReply("denial header names and values must be bytes")
    return pairs


def choose_subprotocol(offered: Sequence[str], chosen: str | None) -> str | None:
    """The subprotocol to confirm: the worker's choice, which must be one the client offered."""
    if chosen is None:
        return None
    if chosen not in offered:
        raise BadReply(f"subprotocol {chosen!r} was not offered by the client ({', '.join(offered)})")
    return chosen


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """Whether a browser's Origin is on the allow-list (empty = any; no Origin = not a browser)."""
    if not allowed or origin is None:
        return True
    origin = origin.lower()
    return any(_glob(pattern).match(origin) for pattern in allowed)


def peer_address(host: str | None, port: int | None) -> list[Any] | None:
    """A [host, port] pair for ``client``/``server``, or None for a Unix socket."""
    return None if host is None else [host, port or 0]
