"""Message specs: valid examples pass, every kind of mistake is named, docs stay in sync."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchroom.shared.messages import SPECS, MessageFormatError, apply_defaults, markdown, problems, validate

REPLY = "http.response.abc123!def456"

VALID = {
    "http.request": {
        "reply_channel": REPLY,
        "http_version": "1.1",
        "method": "GET",
        "path": "/caf\u00e9",
        "query_string": b"a=1",
        "headers": [[b"host", b"example.com"], (b"x-two", b"2")],
        "client": ["127.0.0.1", 5555],
        "server": ("127.0.0.1", 8000),
    },
    "http.request.body": {"content": b"chunk", "more_content": True},
    "http.response": {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": b"hi"},
    "http.response.chunk": {"content": b"more", "more_content": False},
    "http.disconnect": {"reply_channel": REPLY, "path": "/"},
    "websocket.connect": {"reply_channel": REPLY, "path": "/ws", "order": 0, "subprotocols": ["chat"]},
    "websocket.receive": {"reply_channel": REPLY, "path": "/ws", "text": "hello", "order": 1},
    "websocket.disconnect": {"reply_channel": REPLY, "path": "/ws", "code": 1001, "order": 2},
    "websocket.send": {"accept": True, "subprotocol": "chat"},
    "email.receive": {
        "mail_from": "zoe@example.org",
        "rcpt_to": ["room@chat.test"],
        "peer": ["127.0.0.1", 40000],
        "subject": "Gr\u00fc\u00dfe",
        "attachments": [{"filename": "a.png", "content_type": "image/png", "size": 3, "content": b"png"}],
        "raw": b"Subject: x\r\n\r\nbody",
        "size": 19,
    },
    "email.send": {"to": ["zoe@example.org"], "subject": "Re: hi", "text": "hello", "in_reply_to": "<1@x>"},
    "email.send.failed": {"message": {"to": ["a@b"]}, "error": "550 no such user", "attempts": 3},
    "email.receive.failed": {
        "channel": "email.receive",
        "message": {"mail_from": "a@b"},
        "error": "not read from email.receive within 5.0 d",
        "attempts": 0,
        "key": "<1@x>",
        "added": 1_700_000_000.25,
    },
    "slack.event": {
        "type": "message",
        "channel": "C1",
        "text": "hi",
        "event": {"type": "message"},
        "reply_channel": REPLY,
    },
    "slack.send": {"channel": "C1", "text": "hello", "thread_ts": "1.0"},
    "slack.ack": {"ack": {"response_action": "errors", "errors": {"name": "too short"}}},
    "slack.send.failed": {"message": {"channel": "C1"}, "error": "ratelimited", "attempts": 5},
}


def test_every_kind_has_a_valid_example():
    assert set(VALID) == set(SPECS)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_valid_examples_pass(kind):
    assert validate(kind, VALID[kind]) is VALID[kind]


@pytest.mark.parametrize(
    "kind,field", [(kind, f.name) for kind, spec in sorted(SPECS.items()) for f in spec.fields if f.required]
)
def test_missing_required_field_is_named(kind, field):
    message = dict(VALID[kind])
    message.pop(field, None)
    with pytest.raises(MessageFormatError, match=re.escape(f"missing required field {field!r}")):
        validate(kind, message)


@pytest.mark.parametrize(
    "kind,field,value",
    [
        ("http.response", "status", "200"),
        ("http.response", "status", True),
        ("http.response", "content", "text, not bytes"),
        ("http.request", "headers", [[b"host"]]),
        ("http.request", "headers", [["host", "example.com"]]),
        ("http.request", "client", ["127.0.0.1"]),
        ("http.request", "query_string", "a=1"),
        ("websocket.disconnect", "code", 1000.0),
        ("email.receive", "rcpt_to", [b"bytes@address"]),
        ("email.receive", "attachments", [{"filename": 3}]),
        ("email.send", "attachments", ["not a dict"]),
        ("slack.event", "event", "not a dict"),
    ],
)
def test_wrong_types_are_refused(kind, field, value):
    message = {**VALID[kind], field: value}
    with pytest.raises(MessageFormatError, match=re.escape(repr(field))):
        validate(kind, message)


def test_int_is_accepted_where_float_is():
    validate("email.send.failed", {**VALID["email.send.failed"], "first_attempt": 1700000000})


def test_unknown_fields_are_allowed():
    validate("http.response", {**VALID["http.response"], "x-vendor": 1})


def test_websocket_receive_needs_exactly_one_of_text_and_bytes():
    base = {"reply_channel": REPLY, "path": "/", "order": 1}
    with pytest.raises(MessageFormatError, match="exactly one"):
        validate("websocket.receive", base)
    with pytest.raises(MessageFormatError, match="exactly one"):
        validate("websocket.receive", {**base, "text": "a", "bytes": b"b"})
    validate("websocket.receive", {**base, "bytes": b"b", "text": None})


def test_websocket_send_rules():
    with pytest.raises(MessageFormatError, match="both"):
        validate("websocket.send", {"text": "a", "bytes": b"b"})
    with pytest.raises(MessageFormatError, match="close"):
        validate("websocket.send", {"close": 1006})
    validate("websocket.send", {"close": 4000, "reason": "bye"})
    validate("websocket.send", {"close": True})


def test_email_and_slack_send_rules():
    with pytest.raises(MessageFormatError, match="at least one"):
        validate("email.send", {"to": [], "text": "x"})
    with pytest.raises(MessageFormatError, match="text"):
        validate("email.send", {"to": ["a@b"]})
    with pytest.raises(MessageFormatError, match="attachment"):
        validate("email.send", {"to": ["a@b"], "text": "x", "attachments": [{"filename": "a"}]})
    for null in ("", "<>"):
        with pytest.raises(MessageFormatError, match="null address"):
            validate("email.send", {"to": ["a@b"], "bcc": [null], "text": "x"})
    validate("email.send", {"to": ["a@b"], "raw": b"Subject: as it came\r\n\r\nx\r\n", "mail_from": ""})
    with pytest.raises(MessageFormatError, match="ts"):
        validate("slack.send", {"channel": "C1", "reaction": "wave"})
    validate("slack.send", {"channel": "C1", "reaction": "wave", "ts": "1.0"})


def test_not_a_dict():
    with pytest.raises(MessageFormatError, match="must be a dict"):
        validate("http.response", [200])


def test_apply_defaults_fills_optional_fields_with_fresh_values():
    filled = apply_defaults("http.response", {"status": 204})
    assert filled == {"status": 204, "headers": [], "content": b"", "more_content": False}
    filled["headers"].append([b"x", b"y"])
    assert apply_defaults("http.response", {"status": 204})["headers"] == []


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(kind=st.sampled_from(sorted(SPECS)), message=st.dictionaries(st.text(max_size=12), values, max_size=6))
def test_validate_only_ever_raises_message_format_error(kind, message):
    for spec_field in SPECS[kind].fields[:2]:
        message.setdefault(spec_field.name, None)
    try:
        validate(kind, message)
    except MessageFormatError:
        pass


class Text(str):
    """A str subclass: valid wherever str is, but not of the exact type the fast path knows."""


ABSENT = object()
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5000)
    | st.floats(allow_nan=False)
    | st.text(max_size=3)
    | st.sampled_from(["", "<>", "a!b", "C1"])
    | st.builds(Text, st.text(max_size=3))
    | st.binary(max_size=3)
)
near_valid = scalars | st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.sampled_from(["filename", "content", "content_type", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(data=st.data())
def test_validate_agrees_with_the_full_check(data):
    """``validate``'s fast path accepts nothing the full check refuses, and errors name every problem."""
    kind = data.draw(st.sampled_from(sorted(SPECS)))
    message = dict(VALID[kind])
    names = [spec_field.name for spec_field in SPECS[kind].fields]
    for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)):
        value = data.draw(st.just(ABSENT) | near_valid, label=name)
        if value is ABSENT:
            message.pop(name, None)
        else:
            message[name] = value
    found = problems(kind, message)
    if found:
        with pytest.raises(MessageFormatError) as raised:
            validate(kind, message)
        assert str(raised.value) == f"{kind}: " + "; ".join(found)
    else:
        assert validate(kind, message) is message


def test_docs_match_the_specs():
    text = (Path(__file__).resolve().parents[2] / "docs" / "messages.md").read_text()
    generated = text.split("<!-- specs:begin -->\n", 1)[1].split("<!-- specs:end -->", 1)[0]
    assert generated == markdown(), "docs/messages.md is stale: regenerate it from the specs"
