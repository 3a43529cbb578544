"""Slack events ↔ channel messages, and the posting schedule, as pure code."""

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from switchroom.layers import InvalidMessage, LayerError, MessageTooLarge
from switchroom.shared.messages import MessageFormatError, apply_defaults, validate

_TYPE = re.compile(r"[^A-Za-z0-9_.-]")
# Ids that can key the redelivery filter and end a reply channel's name (Slack's are ~40 chars).
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


class BadSend(ValueError):
    """A ``slack.send`` message that cannot be posted; the text says why."""


def event_channel(event_type: str) -> str:
    """The per-type channel an event also goes to: ``slack.message``, ``slack.app_mention``..."""
    return "slack." + (_TYPE.sub("_", event_type)[:60] or "unknown")


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


def delivery(errors: list[LayerError | None]) -> str:
    """What sending an event to ``slack.event`` and its per-type channel came to.

    ``taken`` when at least one channel took it (a channel nobody reads fills up, and must
    not stop events reaching the readers of the other); ``undeliverable`` when no channel
    can ever take it (too large, or not serialisable); else ``retry`` (channels full, or the layer down).
    """
    if any(error is None for error in errors):
        return "taken"
    if all(isinstance(error, (MessageTooLarge, InvalidMessage)) for error in errors):
        return "undeliverable"
    return "retry"


@dataclass
class ApiCall:
    """One Web API call to make for a ``slack.send``."""

    method: str
    team: str | None
    channel: str
    arguments: dict[str, Any]


def api_call(message: Any, default_channel: str | None = None) -> ApiCall:
    """The Web API call a ``slack.send`` asks for: a reaction, or a message (optionally threaded)."""
    try:
        message = apply_defaults("slack.send", validate("slack.send", message))
    except MessageFormatError as exc:
        raise BadSend(str(exc)) from None
    channel = message["channel"] or default_channel
    if not channel:
        raise BadSend("no channel to post to")
    if message["reaction"]:
        if not message["ts"]:
            raise BadSend("a reaction needs the ts of the message to react to")
        arguments = {"channel": channel, "name": message["reaction"].strip(":"), "timestamp": message["ts"]}
        return ApiCall("reactions.add", message["team"], channel, arguments)
    if not message["text"] and not message["blocks"]:
        raise BadSend("a message needs text or blocks")
    arguments = {"channel": channel}
    for key in ("text", "blocks", "thread_ts"):
        if message[key]:
            arguments[key] = message[key]
    return ApiCall("chat.postMessage", message["team"], channel, arguments)


class PostSchedule:
    """At most one post per ``interval`` seconds per Slack channel (Slack's guidance), and a
    pause for the whole workspace when Slack answers 429 with Retry-After."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.next_allowed: dict[str, float] = {}
        self.paused_until = 0.0

    def delay(self, channel: str, now: float) -> float:
        """Seconds to wait before posting to ``channel``."""
        return max(self.next_allowed.get(channel, 0.0), self.paused_until) - now

    def posted(self, channel: str, now: float) -> None:
        self.next_allowed[channel] = now + self.interval

    def rate_limited(self, retry_after: float, now: float) -> None:
        self.paused_until = max(self.paused_until, now + retry_after)


class Recent:
    """The last ``size`` keys seen (event ids, to drop Slack's redeliveries)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self.keys: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True if ``key`` was seen before; remembers it either way."""
        if key in self.keys:
            self.keys.move_to_end(key)
            return True
        self.keys[key] = None
        if len(self.keys) > self.size:
            self.keys.popitem(last=False)
        return False


# A field of a dead letter's message longer than this (as text) is cut or left out when the
# whole report does not fit in one layer message.
REPORT_FIELD_LIMIT = 2000


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
