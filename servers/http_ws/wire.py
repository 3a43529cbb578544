"""HTTP/1.1 on the wire as pure data in, data out: ``RequestReader`` turns the bytes a
client sent into request events, enforcing the head and body limits as they arrive, and
``response_head``/``chunk`` encode an answer. No socket, timer or layer here.

Parsing is llhttp's (through httptools); what to do with each event is the driver's
(``http.py``).
"""

from dataclasses import dataclass
from http import HTTPStatus

import httptools

from .translate import Headers

# Response status codes that never carry a body (RFC 9110 6.4.1).
NO_BODY = frozenset((204, 304))
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
VERSIONS = frozenset(("1.0", "1.1"))


@dataclass(slots=True)
class Begin:
    """A request began: its method and the start of its target arrived."""


@dataclass(slots=True)
class Head:
    """A request's line and headers, complete (names lower case, order and repeats kept)."""

    method: bytes
    target: bytes
    version: str
    headers: Headers
    keep_alive: bool
    expect_continue: bool


@dataclass(slots=True)
class Body:
    """Some of a request's body (a chunked body arrives decoded)."""

    data: bytes


@dataclass(slots=True)
class End:
    """The request is complete."""


@dataclass(slots=True)
class Upgrade:
    """The request asked to switch protocols; ``rest`` is what followed its head. Comes
    just before that request's ``End``."""

    rest: bytes


@dataclass(slots=True)
class Refused:
    """The input cannot be read on: answer ``status`` and close. Nothing follows."""

    status: int
    reason: str


Event = Begin | Head | Body | End | Upgrade | Refused
# The events without fields, made once.
BEGIN = Begin()
END = End()


class _Stop(Exception):
    """Raised in a parser callback to stop reading; the reason is kept in ``refused``."""


class RequestReader:
    """Reads the requests of one connection, in order.

    ``feed`` returns the events the bytes completed. A refusal (malformed input, over a
    limit) is the last event; so is ``Upgrade``; and a request the client marked as its
    last (``Connection: close``, or HTTP/1.0) is the last one read.
    """

    def __init__(self, max_header_count: int, max_header_bytes: int, max_body_size: int) -> None:
        self.max_header_count = max_header_count
        self.max_header_bytes = max_header_bytes
        self.max_body_size = max_body_size
        self.parser = httptools.HttpRequestParser(self)
        self.events: list[Event] = []
        self.done = False
        self.refused: Refused | None = None
        self._last = False
        self._in_head = False
        self._reset()

    def _reset(self) -> None:
        """Start a request's counts and collected parts afresh."""
        self._target: list[bytes] = []
        self._target_size = 0
        self._headers: Headers = []
        self._header_bytes = 0
        self._body_size = 0
        self._declared = 0
        self._closing = False
        self._expect = False
        self._begun = False
        self._head_bytes = 0

    def feed(self, data: bytes) -> list[Event]:
        """The events ``data`` completes (empty once the reader is done)."""
        if self.done:
            return []
        events = self.events = []
        begun = self._in_head
        try:
            self.parser.feed_data(data)
            if begun and self._in_head:
                # llhttp holds a header until it ends: bound what a head may hold back.
                self._head_bytes += len(data)
                if self._head_bytes > 2 * self.max_header_bytes:
                    self.done = True
                    events.append(Refused(431, f"request headers larger than {self.max_header_bytes} bytes"))
        except httptools.HttpParserUpgrade as upgrade:
            self.done = True
            at = len(events) - 1 if events and isinstance(events[-1], End) else len(events)
            events.insert(at, Upgrade(data[upgrade.args[0] :]))
        except httptools.HttpParserError as exc:
            self.done = True
            if self.refused is not None:
                events.append(self.refused)
            elif not self._last:
                events.append(Refused(400, f"malformed request: {exc}"))
        return events

    def refuse(self, status: int, reason: str) -> None:
        """Stop reading with ``status`` (called from a parser callback)."""
        self.refused = Refused(status, reason)
        raise _Stop(reason)

    # -- httptools callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._last:
            raise _Stop("data after the last request")
        self._reset()
        self._in_head = True

    def _begin(self) -> None:
        if not self._begun:
            self._begun = True
            self.events.append(BEGIN)

    def on_url(self, part: bytes) -> None:
        self._begin()
        self._target_size += len(part)
        if self._target_size > self.max_header_bytes:
            self.refuse(414, f"request target longer than {self.max_header_bytes} bytes")
        self._target.append(part)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._begin()
        name = name.lower()
        value = value.rstrip(b" \t")
        headers = self._headers
        headers.append([name, value])
        self._header_bytes += len(name) + len(value) + 4
        if len(headers) > self.max_header_count:
            self.refuse(431, f"more than {self.max_header_count} request headers")
        if self._header_bytes > self.max_header_bytes:
            self.refuse(431, f"request headers larger than {self.max_header_bytes} bytes")
        if name == b"content-length" and value.isdigit():
            self._declared = int(value)
        elif name == b"connection" and any(t.strip().lower() == b"close" for t in value.split(b",")):
            self._closing = True
        elif name == b"expect" and value.lower() == b"100-continue":
            self._expect = True

    def on_headers_complete(self) -> None:
        self._begin()
        self._in_head = False
        parser = self.parser
        version = parser.get_http_version()
        if version not in VERSIONS:
            self.refuse(505, f"HTTP/{version} is not supported")
        if self._declared > self.max_body_size:
            self.refuse(413, f"body of {self._declared} bytes is over the limit")
        keep_alive = version == "1.1" and not self._closing
        self._last = not keep_alive
        expect = self._expect and version == "1.1"
        target = self._target[0] if len(self._target) == 1 else b"".join(self._target)
        self.events.append(Head(parser.get_method(), target, version, self._headers, keep_alive, expect))

    def on_body(self, data: bytes) -> None:
        self._body_size += len(data)
        if self._body_size > self.max_body_size:
            self.refuse(413, "body over the limit")
        self.events.append(Body(data))

    def on_message_complete(self) -> None:
        self.events.append(END)


def response_head(
    version: str, status: int, headers: list[tuple[bytes, bytes]], *, head: bool, keep_alive: bool
) -> tuple[bytes, bool, bool]:
    """A response's status line and headers: ``(bytes, chunked, has_body)``.

    A body without ``Content-Length`` is sent chunked on HTTP/1.1 (on HTTP/1.0 the
    connection's close ends it); a HEAD answer or a 204/304 has none. A connection that
    closes after this response says so.
    """
    has_body = not head and status not in NO_BODY and status >= 200
    line = _STATUS_LINES.get((version, status))
    if line is None:
        line = _STATUS_LINES[version, status] = b"HTTP/%s %d %s\r\n" % (
            version.encode(),
            status,
            reason_phrase(status),
        )
    lines = [line]
    length = False
    for name, value in headers:
        if not length and name.lower() == b"content-length":
            length = True
        lines.append(b"%s: %s\r\n" % (name, value))
    chunked = has_body and not length and version == "1.1"
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive and version == "1.1":
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), chunked, has_body


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body (never empty: an empty chunk would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


_REASONS: dict[int, bytes] = {}
# Status lines made so far, by version and status (at most two versions of 500 codes).
_STATUS_LINES: dict[tuple[str, int], bytes] = {}


def reason_phrase(status: int) -> bytes:
    """The reason phrase of ``status`` (``Unknown Status`` for codes without one)."""
    reason = _REASONS.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b"Unknown Status"
        _REASONS[status] = reason
    return reason
