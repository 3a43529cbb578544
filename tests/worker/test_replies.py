"""Reply builders without I/O: response chunking, frames, email replies and bounces, Slack posts."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchroom.shared.messages import validate
from switchroom.worker import context


@given(st.binary(max_size=20_000), st.integers(min_value=1000, max_value=9000))
def test_http_response_chunks_reassemble(body, chunk_size):
    parts = context.http_response(200, body, [(b"a", b"b")], chunk_size)
    assert b"".join(p["content"] for p in parts) == body
    assert [p["more_content"] for p in parts] == [True] * (len(parts) - 1) + [False]
    assert all(len(p["content"]) <= chunk_size for p in parts)
    validate("http.response", parts[0])
    for part in parts[1:]:
        validate("http.response.chunk", part)


@pytest.mark.parametrize(
    "body, content_type, expected",
    [
        (b"\x00", None, (b"\x00", "application/octet-stream")),
        ("é", None, ("é".encode(), "text/plain; charset=utf-8")),
        ({"a": 1}, None, (b'{"a": 1}', "application/json")),
        ("<p>", "text/html", (b"<p>", "text/html")),
    ],
)
def test_encode_body(body, content_type, expected):
    assert context.encode_body(body, content_type) == expected


def test_websocket_frames_carry_only_set_fields():
    assert context.websocket_frame(accept=True) == {"accept": True}
    assert context.websocket_frame(close=1011, reason="x") == {"close": 1011, "reason": "x"}
    validate("websocket.send", context.websocket_frame(text="hi"))


ORIGINAL = {
    "mail_from": "bounce-1@lists.remote",
    "from": "Alice <alice@remote.example>",
    "reply_to": [],
    "subject": "Hello",
    "message_id": "<2@remote>",
    "headers": [["References", "<0@remote> <1@remote>"]],
}


def test_email_reply_threads_and_addresses():
    reply = context.email_reply(ORIGINAL, text="hi")
    assert reply["to"] == ["alice@remote.example"]
    assert reply["subject"] == "Re: Hello"
    assert reply["in_reply_to"] == "<2@remote>"
    assert reply["references"] == ["<0@remote>", "<1@remote>", "<2@remote>"]
    validate("email.send", reply)
    again = context.email_reply({**ORIGINAL, "subject": "RE: Hello", "reply_to": ["x@y.z"]}, text="")
    assert again["to"] == ["x@y.z"] and again["subject"] == "RE: Hello"


def test_email_reply_falls_back_to_envelope_sender_and_refuses_none():
    assert context.email_reply({"mail_from": "m@x.y", "from": None}, text="t")["to"] == ["m@x.y"]
    with pytest.raises(ValueError):
        context.email_reply({"mail_from": "", "from": None}, text="t")


def test_slack_post():
    event = {"channel": "C1", "team": "T", "ts": "1.2", "thread_ts": None}
    assert context.slack_post(event, "hi", False) == {"channel": "C1", "team": "T", "text": "hi"}
    assert context.slack_post(event, "hi", True)["thread_ts"] == "1.2"
    assert context.slack_post({**event, "thread_ts": "0.9"}, "hi", True)["thread_ts"] == "0.9"
    validate("slack.send", context.slack_post(event, None, False, blocks=[{"type": "divider"}]))
