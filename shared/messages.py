"""The message formats every server and worker speaks, with a fast validator.

HTTP and WebSocket messages are the ASGI 1.0 "HTTP & WebSocket" format field for field;
Switchroom's compatible extensions are marked ``extension=True``. Email and Slack
messages are Switchroom's own, in the same style: flat dicts, bytes for raw data, a
``reply_channel`` where an answer is expected. ``docs/messages.md`` is generated from
``SPECS`` (``python -m switchroom.shared.messages --markdown``), so the two never drift.
"""

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NONE = type(None)


class MessageFormatError(ValueError):
    """A message does not match its spec; the text names the kind and every problem."""


@dataclass(frozen=True)
class Field:
    """One field of a message: its name, allowed types, whether required, default, meaning."""

    name: str
    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    doc: str = ""
    extension: bool = False
    item: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class MessageSpec:
    """A message kind: where it travels, which way, its fields and any cross-field rule."""

    kind: str
    channels: str
    direction: str
    doc: str
    fields: tuple[Field, ...]
    check: Callable[[Mapping[str, Any]], str | None] | None = None
    names: frozenset[str] = field(init=False)
    # What the fast path of ``validate`` and ``apply_defaults`` read, derived from ``fields``:
    # (name, required, the exact types allowed, item check) per field, and (name, default)
    # per optional field.
    plan: tuple[tuple[str, bool, frozenset[type], Callable[[Any], str | None] | None], ...] = field(
        init=False, repr=False, compare=False
    )
    defaults: tuple[tuple[str, Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(f.name for f in self.fields))
        plan = tuple((f.name, f.required, frozenset(f.types), f.item) for f in self.fields)
        object.__setattr__(self, "plan", plan)
        defaults = tuple((f.name, f.default) for f in self.fields if not f.required)
        object.__setattr__(self, "defaults", defaults)


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and int not in types and float in types:
        return True
    return isinstance(value, types)


_ABSENT = object()


def _passes(spec: MessageSpec, message: dict[str, Any]) -> bool:
    """True when every field of a plain dict is absent but optional, or of exactly one of
    its types and passing its item check, and the cross-field rule holds. False does not
    mean invalid (a subclass, an int for a float): the full check then decides and names
    every problem."""
    get = message.get
    for name, required, exact, item in spec.plan:
        value = get(name, _ABSENT)
        if value is _ABSENT:
            if required:
                return False
        elif type(value) not in exact or (item is not None and value is not None and item(value)):
            return False
    return spec.check is None or not spec.check(message)


def validate(kind: str, message: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return ``message`` if it matches the spec of ``kind``; else raise MessageFormatError.

    Unknown keys are allowed (other implementations may add their own).
    """
    spec = SPECS[kind]
    if type(message) is dict and _passes(spec, message):
        return message
    if not isinstance(message, Mapping):
        raise MessageFormatError(f"{kind}: message must be a dict, not {type(message).__name__}")
    found = problems(kind, message)
    if found:
        raise MessageFormatError(f"{kind}: " + "; ".join(found))
    return message


def problems(kind: str, message: Mapping[str, Any]) -> list[str]:
    """Every way a mapping breaks the spec of ``kind``, in the words of ``validate``'s error
    (the full check, without the fast path)."""
    spec = SPECS[kind]
    found: list[str] = []
    for f in spec.fields:
        if f.name not in message:
            if f.required:
                found.append(f"missing required field {f.name!r}")
            continue
        value = message[f.name]
        if not _type_ok(value, f.types):
            found.append(f"{f.name!r} must be {_type_names(f.types)}, not {type(value).__name__}")
        elif f.item is not None and value is not None:
            problem = f.item(value)
            if problem:
                found.append(f"{f.name!r}: {problem}")
    if not found and spec.check is not None:
        problem = spec.check(message)
        if problem:
            found.append(problem)
    return found


def apply_defaults(kind: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict with every optional field that is absent set to its default."""
    out = dict(message)
    for name, default in SPECS[kind].defaults:
        if name not in out:
            out[name] = list(default) if isinstance(default, list) else default
    return out


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join("None" if t is NONE else t.__name__ for t in types)


# -- item checks for list fields ---------------------------------------------------------


def _header_pairs(kind: type) -> Callable[[Any], str | None]:
    def check(value: list[Any]) -> str | None:
        for pair in value:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                return "each header must be a [name, value] pair"
            if not (isinstance(pair[0], kind) and isinstance(pair[1], kind)):
                return f"header names and values must be {kind.__name__}"
        return None

    return check


def _address(value: list[Any]) -> str | None:
    if (
        len(value) != 2
        or not isinstance(value[0], str)
        or isinstance(value[1], bool)
        or not isinstance(value[1], int)
    ):
        return "must be [host, port]"
    return None


def _strings(value: list[Any]) -> str | None:
    return None if all(isinstance(v, str) for v in value) else "every item must be a str"


def _dicts_with(required: dict[str, tuple[type, ...]]) -> Callable[[Any], str | None]:
    def check(value: list[Any]) -> str | None:
        for item in value:
            if not isinstance(item, dict):
                return "every item must be a dict"
            for name, types in required.items():
                if name in item and not _type_ok(item[name], types):
                    return f"item field {name!r} must be {_type_names(types)}"
        return None

    return check


# -- cross-field rules --------------------------------------------------------------------


def _one_of_text_bytes(message: Mapping[str, Any]) -> str | None:
    has_text = message.get("text") is not None
    has_bytes = message.get("bytes") is not None
    if has_text == has_bytes:
        return "exactly one of 'text' and 'bytes' must be set"
    return None


SENDABLE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 1014))
SENDABLE_CLOSE_CODES |= frozenset(range(3000, 5000))


def _websocket_send(message: Mapping[str, Any]) -> str | None:
    if message.get("text") is not None and message.get("bytes") is not None:
        return "'text' and 'bytes' cannot both be set"
    close = message.get("close")
    if isinstance(close, int) and not isinstance(close, bool) and close not in SENDABLE_CLOSE_CODES:
        return "a 'close' code must be one a server may send: 1000-1003, 1007-1009, 1011-1014 or 3000-4999"
    status = message.get("status")
    if status is not None and not 400 <= status <= 599:
        return "a denial 'status' must be an HTTP error status (400-599)"
    if message.get("worker") is not None and "!" not in message["worker"]:
        return "'worker' must be a process-specific ('!') address"
    return None


def _email_send(message: Mapping[str, Any]) -> str | None:
    if not message.get("to"):
        return "'to' needs at least one address"
    for name in ("to", "cc", "bcc"):
        if any(address in ("", "<>") for address in message.get(name) or ()):
            return f"'{name}' holds the null address, which cannot receive mail"
    if message.get("raw") is not None:
        return None
    if message.get("text") is None and message.get("html") is None:
        return "one of 'text' and 'html' is required"
    for item in message.get("attachments") or ():
        if not isinstance(item.get("filename"), str) or not isinstance(item.get("content"), bytes):
            return "each attachment needs 'filename' (str) and 'content' (bytes)"
    return None


def _slack_send(message: Mapping[str, Any]) -> str | None:
    if message.get("reaction") is not None:
        return None if message.get("ts") else "'reaction' needs the 'ts' of the message to react to"
    return None


# -- message kinds and channel names -------------------------------------------------------
# Every part names messages and channels by these constants. A kind that travels on a
# shared channel is also that channel's name; the others travel on reply channels, and
# their kind is the prefix of the process-specific addresses that carry them.

HTTP_REQUEST = "http.request"
HTTP_REQUEST_BODY = "http.request.body"
HTTP_RESPONSE = "http.response"
HTTP_RESPONSE_CHUNK = "http.response.chunk"
HTTP_DISCONNECT = "http.disconnect"
WEBSOCKET_CONNECT = "websocket.connect"
WEBSOCKET_RECEIVE = "websocket.receive"
WEBSOCKET_DISCONNECT = "websocket.disconnect"
WEBSOCKET_SEND = "websocket.send"
EMAIL_RECEIVE = "email.receive"
EMAIL_SEND = "email.send"
EMAIL_SEND_FAILED = "email.send.failed"
EMAIL_RECEIVE_FAILED = "email.receive.failed"
SLACK_EVENT = "slack.event"
SLACK_SEND = "slack.send"
SLACK_ACK = "slack.ack"
SLACK_SEND_FAILED = "slack.send.failed"
# A Slack event also goes to ``slack.<its type>`` (``slack.message``, ``slack.app_mention``).
SLACK_PREFIX = "slack."


# -- the specs ------------------------------------------------------------------------------

STR, BYTES, INT, FLOAT, BOOL, LIST, DICT = (str,), (bytes,), (int,), (float,), (bool,), (list,), (dict,)
OPT_STR, OPT_BYTES, OPT_LIST, OPT_BOOL = (str, NONE), (bytes, NONE), (list, NONE), (bool, NONE)

_REPLY = Field("reply_channel", STR, True, doc="process-specific channel (`!`) the answer goes to")
_PATH = Field("path", STR, True, doc="request path, percent-decoded")
_HEADERS = Field(
    "headers",
    (list, tuple),
    default=[],
    doc="[name, value] byte pairs, names lower-cased, order and duplicates kept",
    item=_header_pairs(bytes),
)
_SCOPE = (
    Field("scheme", STR, default="http", doc="`http`/`https` (`ws`/`wss` for WebSocket)"),
    Field("query_string", BYTES, default=b"", doc="raw query string, not decoded"),
    Field(
        "raw_path",
        OPT_BYTES,
        doc="the path as the client sent it, when `path` percent-encoded again would differ",
        extension=True,
    ),
    Field("root_path", STR, default="", doc="path prefix the application is mounted at"),
    _HEADERS,
    Field("client", (list, tuple, NONE), doc="[host, port] of the client", item=_address),
    Field("server", (list, tuple, NONE), doc="[host, port] the server received on", item=_address),
)
_ORDER = Field(
    "order", INT, True, doc="position in the socket's message sequence: 0 for connect, then 1, 2, ..."
)

_SPECS = (
    MessageSpec(
        HTTP_REQUEST,
        "`http.request`",
        "server → worker",
        "An HTTP request.",
        (
            _REPLY,
            Field("http_version", STR, True, doc='"1.0", "1.1" or "2"'),
            Field("method", STR, True, doc="upper-case method"),
            _PATH,
            *_SCOPE,
            Field("body", BYTES, default=b"", doc="the body, or its first part when `body_channel` is set"),
            Field("body_channel", OPT_STR, doc="single-reader (`?`) channel carrying the rest of the body"),
        ),
    ),
    MessageSpec(
        HTTP_REQUEST_BODY,
        "the request's `body_channel`",
        "server → worker",
        "A chunk of a large request body.",
        (
            Field("content", BYTES, True, doc="the chunk"),
            Field("closed", BOOL, default=False, doc="the client went away; no more chunks"),
            Field("more_content", BOOL, default=False, doc="more chunks follow"),
        ),
    ),
    MessageSpec(
        HTTP_RESPONSE,
        "the request's `reply_channel`",
        "worker → server",
        "The start of a response.",
        (
            Field("status", INT, True, doc="status code"),
            Field(
                "headers",
                (list, tuple),
                default=[],
                doc="[name, value] byte pairs",
                item=_header_pairs(bytes),
            ),
            Field("content", BYTES, default=b"", doc="body, or its first part"),
            Field("more_content", BOOL, default=False, doc="chunks follow as `http.response.chunk`"),
        ),
    ),
    MessageSpec(
        HTTP_RESPONSE_CHUNK,
        "the request's `reply_channel`",
        "worker → server",
        "More of a streamed response.",
        (
            Field("content", BYTES, default=b"", doc="the chunk"),
            Field("more_content", BOOL, default=False, doc="more chunks follow"),
        ),
    ),
    MessageSpec(
        HTTP_DISCONNECT,
        "`http.disconnect`",
        "server → worker",
        "The client went away before the response ended.",
        (_REPLY, _PATH),
    ),
    MessageSpec(
        WEBSOCKET_CONNECT,
        "`websocket.connect`",
        "server → worker",
        "A client opened a socket; the handshake waits for the answer on `reply_channel`.",
        (
            _REPLY,
            _PATH,
            *_SCOPE,
            _ORDER,
            Field(
                "subprotocols",
                LIST,
                default=[],
                doc="subprotocols the client offered",
                extension=True,
                item=_strings,
            ),
        ),
    ),
    MessageSpec(
        WEBSOCKET_RECEIVE,
        "`websocket.receive`, or the `worker` address of the socket's accept (socket affinity)",
        "server → worker",
        "A frame from the client.",
        (
            _REPLY,
            _PATH,
            Field("bytes", OPT_BYTES, doc="binary frame"),
            Field("text", OPT_STR, doc="text frame"),
            _ORDER,
        ),
        _one_of_text_bytes,
    ),
    MessageSpec(
        WEBSOCKET_DISCONNECT,
        "`websocket.disconnect`, or the `worker` address of the socket's accept (socket affinity)",
        "server → worker",
        "The socket closed.",
        (_REPLY, Field("code", INT, True, doc="close code"), _PATH, _ORDER),
    ),
    MessageSpec(
        WEBSOCKET_SEND,
        "the socket's `reply_channel`",
        "worker → server",
        "Accept or reject the handshake, send a frame, or close.",
        (
            Field("accept", OPT_BOOL, doc="during the handshake: True accepts, False rejects with HTTP 403"),
            Field("text", OPT_STR, doc="text frame to send (sending also accepts)"),
            Field("bytes", OPT_BYTES, doc="binary frame to send (sending also accepts)"),
            Field(
                "close",
                (bool, int, NONE),
                doc="True, or a close code a server may send (1000-1003, 1007-1009, 1011-1014, "
                "3000-4999), closes the socket",
            ),
            Field("subprotocol", OPT_STR, doc="with `accept`: the chosen subprotocol", extension=True),
            Field("reason", OPT_STR, doc="with `close`: the close reason", extension=True),
            Field(
                "worker",
                OPT_STR,
                doc="with `accept`: the `!` address that takes this socket's later `websocket.receive` "
                "and `websocket.disconnect` messages instead of the shared channels (socket affinity)",
                extension=True,
            ),
            Field(
                "status",
                (int, NONE),
                doc="with `accept` False: the HTTP status of the denial response (default 403)",
                extension=True,
            ),
            Field(
                "headers",
                OPT_LIST,
                doc="[name, value] byte pairs: with `accept` True, extra handshake response headers; "
                "with `status`, the denial response's headers",
                extension=True,
            ),
            Field("body", OPT_BYTES, doc="with `status`: the denial response's body", extension=True),
        ),
        _websocket_send,
    ),
    MessageSpec(
        EMAIL_RECEIVE,
        "`email.receive` (durable)",
        "server → worker",
        "An email the server accepted. The server sends the envelope, `message_id`, `size` and "
        "`raw`; the fields marked *parsed* are filled in from `raw` by the reader (the worker "
        "runtime does it before a consumer sees the message; elsewhere call "
        "`switchroom.shared.mail.received`).",
        (
            Field("mail_from", STR, True, doc='envelope sender ("" for bounces: never bounce to it)'),
            Field("rcpt_to", LIST, True, doc="envelope recipients this server accepted", item=_strings),
            Field("peer", (list, tuple), True, doc="[host, port] of the sending server", item=_address),
            Field("helo", OPT_STR, doc="the name the sender gave in HELO/EHLO"),
            Field("message_id", OPT_STR, doc="Message-ID header"),
            Field("size", INT, True, doc="size of the raw message in bytes"),
            Field("raw", OPT_BYTES, doc="the whole message as received"),
            Field("subject", STR, default="", doc="*parsed*: Subject, decoded"),
            Field("from", OPT_STR, doc="*parsed*: From header, decoded"),
            Field("to", LIST, default=[], doc="*parsed*: To addresses", item=_strings),
            Field("cc", LIST, default=[], doc="*parsed*: Cc addresses", item=_strings),
            Field("reply_to", LIST, default=[], doc="*parsed*: Reply-To addresses", item=_strings),
            Field("date", OPT_STR, doc="*parsed*: Date header as ISO 8601"),
            Field("text", OPT_STR, doc="*parsed*: plain-text body, decoded"),
            Field("html", OPT_STR, doc="*parsed*: HTML body, decoded"),
            Field(
                "headers",
                LIST,
                default=[],
                doc="*parsed*: every header as [name, value] str pairs",
                item=_header_pairs(str),
            ),
            Field(
                "attachments",
                LIST,
                default=[],
                doc="*parsed*: {filename, content_type, content_id (for `cid:` links in html), size, "
                "content (bytes)}",
                item=_dicts_with(
                    {
                        "filename": OPT_STR,
                        "content_type": STR,
                        "content_id": OPT_STR,
                        "size": INT,
                        "content": OPT_BYTES,
                    }
                ),
            ),
            Field(
                "defects",
                LIST,
                default=[],
                doc="*parsed*: what the parser found malformed (e.g. `StartBoundaryNotFoundDefect`); "
                "the raw message is kept whole whatever it holds",
                item=_strings,
            ),
        ),
    ),
    MessageSpec(
        EMAIL_SEND,
        "`email.send`",
        "worker → server",
        "An email for the server to deliver through its relay.",
        (
            Field("to", LIST, True, doc="recipients (at least one)", item=_strings),
            Field("cc", LIST, default=[], doc="Cc recipients", item=_strings),
            Field("bcc", LIST, default=[], doc="Bcc recipients (not shown in headers)", item=_strings),
            Field("from", OPT_STR, doc="sender; default: the server's configured sender"),
            Field("reply_to", OPT_STR, doc="Reply-To address"),
            Field("subject", STR, default="", doc="subject"),
            Field("text", OPT_STR, doc="plain-text body (this or `html` is required)"),
            Field("html", OPT_STR, doc="HTML body"),
            Field(
                "attachments",
                LIST,
                default=[],
                doc="{filename (str), content_type (str), content (bytes)}",
                item=_dicts_with({"filename": STR, "content_type": STR, "content": BYTES}),
            ),
            Field("in_reply_to", OPT_STR, doc="Message-ID this replies to"),
            Field("references", LIST, default=[], doc="Message-IDs of the thread", item=_strings),
            Field("headers", LIST, default=[], doc="extra [name, value] str pairs", item=_header_pairs(str)),
            Field("id", OPT_STR, doc="an id of the sender's choosing, echoed in failure reports"),
            Field(
                "mail_from",
                OPT_STR,
                doc='envelope sender; default: the From address; "" is the null sender of bounces',
            ),
            Field(
                "dsn",
                (dict, NONE),
                doc="makes the message a bounce (RFC 3464 `multipart/report`, sent from the null "
                "sender; `text` is its human-readable part): {recipients: [{address, status, action, "
                "diagnostic}], arrival (unix time), headers (bytes: the original's header lines)}",
            ),
            Field(
                "raw",
                OPT_BYTES,
                doc="a whole message to relay as it is (what the submission listener took); only "
                "the recipients and `mail_from` apply",
            ),
        ),
        _email_send,
    ),
    MessageSpec(
        EMAIL_SEND_FAILED,
        "`email.send.failed`",
        "server → anyone",
        "Dead letter: an `email.send` the server gave up on.",
        (
            Field("message", DICT, True, doc="the original `email.send`"),
            Field("error", STR, True, doc="why delivery failed"),
            Field("attempts", INT, True, doc="delivery attempts made"),
            Field("first_attempt", (float, NONE), doc="unix time of the first attempt"),
            Field("last_attempt", (float, NONE), doc="unix time of the last attempt"),
            Field(
                "undelivered",
                LIST,
                default=[],
                doc="the recipients that did not get it (some others may have)",
                item=_strings,
            ),
            Field(
                "truncated",
                LIST,
                default=[],
                doc="fields of `message` left out so the report fits in one layer message (attachments "
                "always keep their names and sizes but lose their bytes then)",
                item=_strings,
            ),
        ),
    ),
    MessageSpec(
        EMAIL_RECEIVE_FAILED,
        "`email.receive.failed` (and `slack.event.failed`, `<durable channel>.failed`)",
        "layer → anyone",
        "Dead letter of a durable channel: an entry given up on, because no worker took it "
        "within its server's max age (an email is then also bounced to its sender) or because "
        "it was handed out `max_deliveries` times without being acknowledged.",
        (
            Field("channel", STR, True, doc="the durable channel it was on"),
            Field("message", DICT, True, doc="the entry's message"),
            Field("error", STR, True, doc="why it was given up"),
            Field("attempts", INT, True, doc="times it was handed to a consumer"),
            Field("key", STR, True, doc="its idempotency key (Message-ID, event_id...)"),
            Field("added", FLOAT, True, doc="unix time it was added"),
            Field(
                "truncated",
                LIST,
                default=[],
                doc="fields of `message` left out so the report fits in one layer message",
                item=_strings,
            ),
        ),
    ),
    MessageSpec(
        SLACK_EVENT,
        "`slack.event` and `slack.<type>` (e.g. `slack.message`)",
        "server → worker",
        "A Slack event.",
        (
            Field(
                "type",
                STR,
                True,
                doc="event type (`message`, `app_mention`, ..., `slash_command`, `block_actions`, ...)",
            ),
            Field("team", OPT_STR, doc="workspace id"),
            Field("channel", OPT_STR, doc="channel id"),
            Field("user", OPT_STR, doc="user id"),
            Field("text", OPT_STR, doc="message text"),
            Field("ts", OPT_STR, doc="timestamp id of the message"),
            Field("thread_ts", OPT_STR, doc="ts of the thread's parent"),
            Field("subtype", OPT_STR, doc="message subtype (`message_changed`, `bot_message`, ...)"),
            Field("bot_id", OPT_STR, doc="set when a bot wrote it"),
            Field("event_id", OPT_STR, doc="Events API id (used to drop redeliveries)"),
            Field("event", DICT, True, doc="the raw event"),
            _REPLY,
            Field("mode", OPT_STR, doc='"socket" or "rtm"'),
        ),
    ),
    MessageSpec(
        SLACK_SEND,
        "`slack.send`, or an event's `reply_channel`",
        "worker → server",
        "Call a Web API method: `method` with every other field (but `team` and `id`) as its "
        "arguments, passed on as they are (Slack's own error, as a dead letter, for one it "
        "cannot take). Without `method`: `chat.postMessage` (text, blocks, thread_ts, "
        "attachments, metadata, unfurl_links...).",
        (
            Field(
                "method",
                OPT_STR,
                doc="Web API method (`chat.update`, `chat.postEphemeral`, `chat.delete`, `views.open`, "
                "`views.publish`, `reactions.remove`, `files.upload_v2`...); default `chat.postMessage`",
            ),
            Field(
                "channel", OPT_STR, doc="channel id; on a `reply_channel` it defaults to the event's channel"
            ),
            Field("team", OPT_STR, doc="workspace, when the server serves several"),
            Field("text", OPT_STR, doc="message text"),
            Field("blocks", OPT_LIST, doc="Block Kit blocks"),
            Field("thread_ts", OPT_STR, doc="reply in this thread"),
            Field("reaction", OPT_STR, doc="shorthand: add this reaction to message `ts` (reactions.add)"),
            Field("ts", OPT_STR, doc="the message to react to, update or delete"),
            Field("id", OPT_STR, doc="an id of the sender's choosing, echoed in failure reports"),
        ),
        _slack_send,
    ),
    MessageSpec(
        SLACK_ACK,
        "a slash command's or interaction's `reply_channel`",
        "worker → server",
        "A worker's answer to a slash command or an interaction, sent in Slack's acknowledgement "
        "when it comes within the server's `--ack-wait`; later, a message body goes to the "
        "event's `response_url`, and anything else is a dead letter.",
        (
            Field(
                "ack",
                DICT,
                True,
                doc="the ack's payload: a message ({text, blocks, response_type}) or, for a modal, "
                '{response_action: "errors" | "update" | "push" | "clear", ...}',
            ),
        ),
    ),
    MessageSpec(
        SLACK_SEND_FAILED,
        "`slack.send.failed`",
        "server → anyone",
        "Dead letter: a `slack.send` (or a late `slack.ack`) the server gave up on.",
        (
            Field("message", DICT, True, doc="the original `slack.send`"),
            Field("error", STR, True, doc="why the call failed"),
            Field("attempts", INT, True, doc="attempts made"),
            Field(
                "truncated",
                LIST,
                default=[],
                doc="fields of `message` cut short or left out so the report fits in one layer message",
                item=_strings,
            ),
        ),
    ),
)

SPECS: dict[str, MessageSpec] = {spec.kind: spec for spec in _SPECS}


def markdown() -> str:
    """The field tables of every spec, as Markdown (the generated part of docs/messages.md)."""
    out = []
    for spec in _SPECS:
        out += [
            f"### `{spec.kind}`",
            "",
            f"{spec.doc} Channel: {spec.channels}. Direction: {spec.direction}.",
            "",
        ]
        out += ["| field | type | required / default | meaning |", "|---|---|---|---|"]
        for f in spec.fields:
            need = "required" if f.required else f"default `{f.default!r}`"
            doc = f.doc + (" *(Switchroom extension)*" if f.extension else "")
            out.append(f"| `{f.name}` | {_type_names(f.types)} | {need} | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m switchroom.shared.messages --markdown")
    print(markdown())
