"""Slack events ↔ channel messages, and the posting schedule, as pure code."""

import math
import re
from dataclasses import dataclass
from typing import Any

from switchroom.shared.messages import SLACK_PREFIX, SLACK_SEND, MessageFormatError, validate

_TYPE = re.compile(r"[^A-Za-z0-9_.-]")
# Ids that can key the redelivery filter and end a reply channel's name (Slack's are ~40 chars).
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


class BadSend(ValueError):
    """A ``slack.send`` message that cannot be posted; the text says why."""


def event_channel(event_type: str) -> str:
    """The per-type channel an event also goes to: ``slack.message``, ``slack.app_mention``..."""
    return SLACK_PREFIX + (_TYPE.sub("_", event_type)[:60] or "unknown")


def is_own(event: dict[str, Any], bot_user: str | None, bot_id: str | None) -> bool:
    """Whether the bot wrote this event itself (it must not come back in as a new event)."""
    if bot_id and event.get("bot_id") == bot_id:
        return True
    if bot_user and event.get("user") == bot_user and event.get("type") == "message":
        return True
    # An edit of the bot's message (message_changed) carries it inside "message".
    inner = event.get("message")
    return (
        event.get("type") == "message"
        and isinstance(inner, dict)
        and bool(bot_id)
        and inner.get("bot_id") == bot_id
    )


def event_key(value: Any) -> str | None:
    """An event or envelope id fit to drop redeliveries by and to name a reply channel;
    None for anything else (a list would break the filter, odd text the channel name)."""
    return value if isinstance(value, str) and _ID.match(value) else None


def _text(value: Any) -> str | None:
    """``value`` if it is a non-empty str, else None: a field of the wrong type is left to
    the raw ``event`` so the message keeps to its spec."""
    return value if isinstance(value, str) and value else None


def event_message(
    event: dict[str, Any], *, reply_channel: str, mode: str, team: str | None, event_id: str | None = None
) -> dict[str, Any]:
    """The ``slack.event`` message for one event (edits take their text from the new message).

    Every field is a str or None whatever types the event holds; the raw event keeps all.
    """
    # Edits (message_changed) carry the message itself inside "message".
    edited = event.get("type") == "message" and isinstance(event.get("message"), dict)
    inner = event["message"] if edited else {}
    item = event.get("item") if isinstance(event.get("item"), dict) else {}
    text = event.get("text") if isinstance(event.get("text"), str) else inner.get("text")
    return {
        "type": _text(event.get("type")) or "unknown",
        "team": _text(event.get("team")) or team,
        "channel": _text(event.get("channel")) or _text(item.get("channel")),
        "user": _text(event.get("user")) or _text(inner.get("user")),
        "text": text if isinstance(text, str) else None,
        "ts": _text(event.get("ts")) or _text(inner.get("ts")) or _text(item.get("ts")),
        "thread_ts": _text(event.get("thread_ts")) or _text(inner.get("thread_ts")),
        "subtype": _text(event.get("subtype")),
        "bot_id": _text(event.get("bot_id")) or _text(inner.get("bot_id")),
        "event_id": event_id,
        "event": event,
        "reply_channel": reply_channel,
        "mode": mode,
    }


def envelope_event(
    kind: str, payload: dict[str, Any] | None, envelope_id: str
) -> tuple[dict[str, Any], str | None]:
    """The event a Socket Mode envelope carries, and the id that identifies its redeliveries.

    ``events_api`` envelopes carry an Events API event. Slash commands become a
    ``slash_command`` event and interactive payloads an event of their own type
    (``block_actions``, ``view_submission``, ``shortcut``...), so none is acked and lost.
    """
    payload = payload if isinstance(payload, dict) else {}
    if kind == "events_api":
        event = payload.get("event")
        return (event if isinstance(event, dict) else {"type": "unknown"}), event_key(payload.get("event_id"))
    if kind == "slash_commands":
        event = {
            "type": "slash_command",
            "team": payload.get("team_id"),
            "channel": payload.get("channel_id"),
            "user": payload.get("user_id"),
            "text": payload.get("text"),
            "command": payload.get("command"),
            "response_url": payload.get("response_url"),
            "trigger_id": payload.get("trigger_id"),
        }
        return event, event_key(envelope_id)

    def ident(key: str) -> str | None:
        value = payload.get(key)
        return value.get("id") if isinstance(value, dict) else None

    inner = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    event = {
        **payload,
        "type": str(payload.get("type") or kind),
        "team": ident("team"),
        "channel": ident("channel"),
        "user": ident("user"),
        "ts": inner.get("ts"),
        "thread_ts": inner.get("thread_ts"),
    }
    return event, event_key(envelope_id)


def retry_after(header: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a 429's Retry-After header (missing or unreadable: ``default``)."""
    try:
        seconds = float(header) if header is not None else default
    except ValueError:
        return default
    return max(0.0, seconds) if math.isfinite(seconds) else default


def api_error(status: int, data: Any) -> str:
    """Why the Web API refused a call: Slack's ``error`` field, or the HTTP status when the
    answer is not Slack's JSON (a 413 or a proxy's page is plain text: reading ``error``
    from it raised, killed the channel's posting task and stalled the channel for good)."""
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {status}"


# Fields of a ``slack.send`` that say where and how to call, not arguments of the call.
ENVELOPE_FIELDS = frozenset({"method", "team", "id", "reaction", "ts"})
# Methods that post a message into a channel: at most one per ``post_interval`` per channel.
PACED = frozenset(
    {"chat.postMessage", "chat.postEphemeral", "chat.meMessage", "chat.scheduleMessage", "files.upload_v2"}
)
# Methods whose ``channel`` an event's reply channel fills in when the message names none.
_TAKES_CHANNEL = ("chat.", "reactions.", "pins.", "files.")
_METHOD = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(\.[a-zA-Z][a-zA-Z0-9_]*)+\Z")


@dataclass
class ApiCall:
    """One Web API call to make for a ``slack.send``."""

    method: str
    team: str | None
    # The posting lane: calls in one lane are made in order (a channel, or the method).
    lane: str
    arguments: dict[str, Any]
    paced: bool = False


def api_call(message: Any, default_channel: str | None = None) -> ApiCall:
    """The Web API call a ``slack.send`` asks for: ``method`` (default ``chat.postMessage``,
    or ``reactions.add`` for the ``reaction`` shorthand) with every other field as its
    arguments, unchanged: a field Slack cannot take is Slack's error, never dropped here."""
    try:
        validate(SLACK_SEND, message)
    except MessageFormatError as exc:
        raise BadSend(str(exc)) from None
    arguments = {k: v for k, v in message.items() if k not in ENVELOPE_FIELDS and v is not None}
    method = message.get("method")
    if message.get("reaction") is not None:
        if method not in (None, "reactions.add"):
            raise BadSend("'reaction' is the shorthand of reactions.add; give it no other method")
        method = "reactions.add"
        arguments.update(name=message["reaction"].strip(":"), timestamp=message.get("ts"))
    elif message.get("ts") is not None:
        arguments["ts"] = message["ts"]
    method = method or "chat.postMessage"
    if not _METHOD.match(method):
        raise BadSend(f"not a Web API method name: {method!r}")
    if "channel" not in arguments and default_channel and method.startswith(_TAKES_CHANNEL):
        arguments["channel"] = default_channel
    if method.startswith(("chat.", "reactions.")) and not arguments.get("channel"):
        raise BadSend("no channel to post to")
    if method == "chat.postMessage" and not any(arguments.get(k) for k in ("text", "blocks", "attachments")):
        raise BadSend("a message needs text, blocks or attachments")
    lane = str(arguments.get("channel") or arguments.get("channel_id") or arguments.get("user_id") or method)
    return ApiCall(method, message.get("team"), lane, arguments, method in PACED)


def sdk_method(method: str) -> str:
    """The slack-sdk method for a Web API method (``chat.postMessage`` → ``chat_postMessage``)."""
    return method.replace(".", "_")


class PostSchedule:
    """At most one post per ``interval`` seconds per Slack channel (Slack's guidance), and a
    pause for the whole workspace when Slack answers 429 with Retry-After."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.next_allowed: dict[str, float] = {}
        self.paused_until = 0.0

    def delay(self, channel: str, now: float, paced: bool = True) -> float:
        """Seconds to wait before a call in ``channel`` (one that posts a message when
        ``paced``; any call waits out a rate-limit pause)."""
        if not paced:
            return self.paused_until - now
        return max(self.next_allowed.get(channel, 0.0), self.paused_until) - now

    def posted(self, channel: str, now: float) -> None:
        self.next_allowed[channel] = now + self.interval

    def rate_limited(self, retry_after: float, now: float) -> None:
        self.paused_until = max(self.paused_until, now + retry_after)


# A field of a dead letter's message longer than this (as text) is cut or left out when the
# whole report does not fit in one layer message.
REPORT_FIELD_LIMIT = 2000


def ack_body(message: Any) -> dict[str, Any] | None:
    """The body of a worker's answer to an event (a ``slack.ack``), or None if it is not one."""
    if isinstance(message, dict) and isinstance(message.get("ack"), dict):
        return message["ack"]
    return None


def shrink_report(report: dict[str, Any]) -> dict[str, Any]:
    """A dead letter whose ``message`` keeps its short fields whole, long text cut to
    ``REPORT_FIELD_LIMIT`` characters and other large values (blocks, attachments) left out,
    each named in ``truncated``: the report of a post too large for the layer still fits."""
    message: dict[str, Any] = {}
    cut: list[str] = []
    for key, value in report["message"].items():
        if len(repr(value)) <= REPORT_FIELD_LIMIT:
            message[key] = value
        else:
            cut.append(str(key))
            if isinstance(value, str):
                message[key] = value[:REPORT_FIELD_LIMIT]
    return {**report, "message": message, "truncated": cut}
