"""Hostile input for the email and Slack servers: generated SMTP command lines, MIME
messages, slow clients, Socket Mode envelopes and bad worker messages, against real
``switchroom email`` and ``switchroom slack`` processes on a real Redis (and the pure
translations in process with many more examples). Whatever comes in, the answer is a
well-formed refusal or a valid message on the layer, nothing is lost after it was taken,
and the server stays up. Figures go to ``test-artifacts/reliability-email-slack.json``
(summed up in docs/reliability.md).

The network tests run hypothesis on a worker thread (``check`` below) while the test's
event loop keeps serving the layer and the Slack stand-in.
"""

import asyncio
import json
import re
import select
import smtplib
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from switchroom.layers import BaseLayer, LayerError, get_layer
from switchroom.servers.slack import translate
from switchroom.servers.slack.standin import StandIn
from switchroom.shared.mail import parse
from switchroom.shared.messages import validate

from ..email.harness import ROOT, EmailProcess, RelaySink
from ..slack.test_server import SlackProcess

FIGURES = ROOT / "test-artifacts" / "reliability-email-slack.json"
T = TypeVar("T")

# Network tests: few examples (each is a real round trip), no per-example deadline.
NETWORK = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def record(name: str, figures: dict[str, Any]) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[name] = figures
    FIGURES.write_text(json.dumps(data, indent=2))


class Loop:
    """Runs coroutines on the test's event loop from the hypothesis thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


async def check(test: Callable[[], None]) -> None:
    """Run a hypothesis test on a thread, so the loop goes on serving meanwhile."""
    await asyncio.to_thread(test)


async def drain(layer: BaseLayer, channel: str, timeout: float = 0.05) -> list[dict[str, Any]]:
    """Every message waiting on ``channel``."""
    taken = []
    while batch := await layer.receive_many([channel], 100, timeout=timeout):
        taken += [message for _, message in batch]
    return taken


# -- MIME messages ------------------------------------------------------------------------

CRLF = b"\r\n"
# One line of a message: any bytes but LF (a bare CR is data in SMTP and a line end to the parser).
line_bytes = st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" "))
CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "x-unknown", "", "utf-7", "gb2312", "bogus\x00", "utf-16"]
encoded_word = st.builds(
    lambda charset, encoding, payload: f"=?{charset}?{encoding}?{payload}?=".encode(),
    st.sampled_from(CHARSETS),
    st.sampled_from(["B", "Q", "b", "q", "X", ""]),
    st.text(alphabet="ABCDEFabcdef0123456789+/=_?!\u00e9 ", max_size=40),
)
content_types = st.one_of(
    st.sampled_from(
        [
            b"text/plain",
            b"text/html",
            b"text/plain; charset=x-unknown",
            b'text/plain; charset="utf-8',
            b"text/plain; charset=utf-16",
            b"text/plain; charset*=utf-8''%ff%fe",
            b"application/octet-stream; name==?x?=",
            b"message/rfc822",
            b"message/partial",
            b"multipart/mixed",
            b'multipart/alternative; boundary=""',
            b"text/",
            b";;;",
        ]
    ),
    line_bytes,
)
header_values = st.one_of(
    line_bytes,
    encoded_word,
    st.lists(encoded_word, max_size=4).map(b" ".join),
    st.sampled_from([b'<<a@b>>, @@, "unterminated', b"<>", b'"x" <y@z>', b"(((", b"undisclosed:;", b"["]),
    st.lists(line_bytes, min_size=2, max_size=5).map(b"\r\n ".join),  # folded
    st.integers(990, 3000).map(lambda n: b"x" * n),  # one line over SMTP's 1000
)
HEADER_NAMES = [
    b"Subject",
    b"From",
    b"To",
    b"Cc",
    b"Reply-To",
    b"Date",
    b"Message-ID",
    b"Content-Type",
    b"Content-Transfer-Encoding",
    b"Content-Disposition",
    b"Content-ID",
    b"MIME-Version",
]
header_names = st.one_of(
    st.sampled_from(HEADER_NAMES),
    st.binary(min_size=1, max_size=20).filter(lambda b: not set(b) & set(b":\r\n")),
)
encodings = st.sampled_from([b"base64", b"quoted-printable", b"7bit", b"8bit", b"x-uuencode", b"bogus"])
leaf_bodies = st.one_of(
    st.lists(line_bytes, max_size=5),
    st.lists(st.text(alphabet="ABCxyz0129+/=!-", max_size=80).map(str.encode), max_size=5),  # bad base64
    st.lists(st.text(alphabet="=0123456789ABCDEFabc \t", max_size=80).map(str.encode), max_size=5),  # bad QP
)


@st.composite
def mime_lines(draw: st.DrawFn, depth: int = 0) -> list[bytes]:
    """A message (or part) as lines: random headers, then a leaf, a forwarded message, or
    a multipart with right, wrong, missing or unclosed boundaries, nested."""
    lines = [
        name + b": " + value
        for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=4))
    ]
    kind = draw(st.sampled_from(["leaf", "leaf", "multipart", "rfc822"])) if depth < 3 else "leaf"
    if kind == "leaf":
        lines += [
            b"Content-Type: " + draw(content_types),
            b"Content-Transfer-Encoding: " + draw(encodings),
            b"",
        ]
        lines += draw(leaf_bodies)
    elif kind == "rfc822":
        lines += [b"Content-Type: message/rfc822", b""]
        lines += draw(mime_lines(depth + 1))
    else:
        boundary = draw(st.sampled_from([b"b1", b"==", b"", b" ", b"a" * 80, b"x y"]))
        declared = draw(st.sampled_from([boundary, b"other", None]))
        subtype = draw(st.sampled_from([b"mixed", b"alternative", b"related", b"signed", b"weird"]))
        lines.append(
            b"Content-Type: multipart/" + subtype + (b'; boundary="' + declared + b'"' if declared else b"")
        )
        lines += [b"", *draw(st.lists(line_bytes, max_size=2))]
        for part in draw(st.lists(mime_lines(depth + 1), max_size=3)):
            lines += [b"--" + boundary, *part]
        if draw(st.booleans()):
            lines.append(b"--" + boundary + b"--")
        lines += draw(st.lists(line_bytes, max_size=2))
    return lines


mime_messages = mime_lines().map(lambda lines: CRLF.join(lines) + CRLF)

ENVELOPE = {"mail_from": "ann@sender.example", "rcpt_to": ["room@example.com"], "peer": ["127.0.0.1", 1]}


# A forwarded message holding a multipart whose boundary never comes, with 8-bit data.
FORWARDED_8BIT = (
    b'Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n\x80\r\n'
)


@settings(max_examples=400, deadline=None)
@given(mime_messages)
@example(FORWARDED_8BIT)
def test_any_mime_message_parses_into_a_valid_email_receive(raw):
    """Every structure gives a valid message that travels, keeps every byte, and loses no
    field to one part the standard library cannot write back."""
    sent = parse.incoming(raw, helo="mx.example", **ENVELOPE)
    validate("email.receive", sent)
    message = parse.received(sent)
    validate("email.receive", message)
    msgpack.packb(message, use_bin_type=True)
    assert not [defect for defect in message["defects"] if "unreadable" in defect], message["defects"]
    assert message["raw"] == raw
    for item in message["attachments"]:
        assert len(item["content"]) == item["size"]


# -- Slack events --------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
SLACK_KEYS = [
    "type",
    "team",
    "channel",
    "user",
    "text",
    "ts",
    "thread_ts",
    "subtype",
    "bot_id",
    "message",
    "item",
    "event_id",
    "team_id",
    "channel_id",
    "user_id",
    "command",
    "response_url",
    "trigger_id",
]
slack_objects = st.dictionaries(
    st.sampled_from(SLACK_KEYS) | st.text(max_size=5),
    json_values | st.dictionaries(st.sampled_from(SLACK_KEYS), json_values, max_size=5),
    max_size=8,
)
ENVELOPE_KINDS = ["events_api", "slash_commands", "interactive", "hello", "", "block_actions"]
slack_payloads = st.one_of(
    slack_objects,
    st.fixed_dictionaries({}, optional={"event": slack_objects | json_values, "event_id": json_values}),
)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ENVELOPE_KINDS) | st.text(max_size=10), slack_payloads | json_values, json_values)
@example("events_api", {"event": {"type": "message", "channel": 5}, "event_id": []}, "e1")
def test_any_envelope_translates_into_a_valid_slack_event(kind, payload, envelope_id):
    """Missing fields and wrong types never reach the layer as a message off its spec, and
    an id that could not key the redelivery filter or name a channel is not used."""
    event, event_id = translate.envelope_event(kind, payload, envelope_id)
    assert event_id is None or re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", event_id)
    message = translate.event_message(
        event, reply_channel="slack.send.abc!x", mode="socket", team="T1", event_id=event_id
    )
    validate("slack.event", message)
    assert re.fullmatch(r"slack\.[A-Za-z0-9_.-]{1,60}", translate.event_channel(message["type"]))
    translate.is_own(event, "U0BOT", "B0BOT")


# -- SMTP command lines ------------------------------------------------------------------

VERBS = [b"HELO", b"EHLO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"VRFY", b"HELP", b"EXPN", b"AUTH"]
KNOWN = {*VERBS, b"QUIT", b"STARTTLS"}
# An argument: anything but LF (one line is one command), NUL and 8-bit bytes included.
arguments = st.one_of(
    line_bytes,
    st.sampled_from([b"FROM:<ann@sender.example>", b"TO:<room@example.com>", b"FROM:<>", b"LOGIN", b"PLAIN"]),
    st.tuples(st.sampled_from([b"(", b"<", b'"', b"[", b"FROM:<", b"TO:<"]), line_bytes).map(b"".join),
    st.binary(max_size=30).map(lambda b: b"TO:<" + b.replace(b"\n", b"") + b"@elsewhere.example>"),
    st.integers(400, 70_000).map(lambda n: b"FROM:<" + b"a" * n + b"@example.com>"),
)
garbage_verbs = st.one_of(
    st.binary(min_size=1, max_size=12),
    st.text(st.characters(max_codepoint=127), min_size=1, max_size=12).map(str.encode),
).filter(lambda b: not set(b) & set(b" \n") and b.rstrip(b"\r").upper() not in KNOWN)
command_lines = st.one_of(
    st.tuples(st.just("any"), st.builds(lambda v, a: v + b" " + a, st.sampled_from(VERBS), arguments)),
    st.tuples(st.just("garbage"), st.builds(lambda v, a: v + b" " + a, garbage_verbs, line_bytes)),
    st.tuples(st.just("garbage"), st.integers(600, 70_000).map(lambda n: b"NOOP " + b"x" * n)),
)
# A reply line as RFC 5321 4.2 has it: three digits, then (after " " or "-") printable text.
REPLY_LINE = re.compile(rb"[2-5]\d\d(?:[ -][\t\x20-\x7e]*)?\r\n\Z")


class RawSMTP:
    """One SMTP session on a plain socket: write any bytes, read whole replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.lines = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> list[bytes]:
        """The next reply's lines; fewer (or none) when the server hangs up or misbehaves."""
        lines = []
        try:
            while line := self.lines.readline(100_000):
                lines.append(line)
                if not REPLY_LINE.match(line) or line[3:4] != b"-":
                    break
        except ConnectionResetError:
            # The server closed with our next command unread (after "502 ... goodbye"):
            # the kernel resets the connection, which is a hang-up like any other.
            pass
        return lines

    def command(self, line: bytes) -> list[bytes]:
        try:
            self.sock.sendall(line + CRLF)
        except OSError:
            return []
        return self.reply()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


def good_mail(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.sendmail(
            "ann@sender.example", ["room@example.com"], f"Subject: {subject}\r\n\r\nok\r\n".encode()
        )


async def receive_subject(layer: BaseLayer, subject: str) -> dict[str, Any]:
    """The email.receive with this subject (others before it are skipped)."""
    while True:
        _, message = await layer.receive(["email.receive"], timeout=10)
        assert message is not None, f"no email {subject!r} on the layer"
        message = parse.received(message)
        if message["subject"] == subject:
            return message


@pytest.fixture
def email_server(redis_server):
    proc = EmailProcess(redis_server.url, "--domain", "example.com", "--max-connections-per-ip", "50")
    yield proc
    proc.stop()


@pytest.mark.slow
async def test_generated_smtp_commands_get_well_formed_refusals(email_server):
    """Random verbs, NUL and 8-bit bytes, foreign addresses and overlong lines, one at a
    time and pipelined: each reply is a well-formed reply line, garbage gets a 5xx, and
    afterwards the server still takes a good message, with no traceback in its log."""
    port, counts = email_server.port, {"examples": 0, "lines": 0}

    def converse(session: RawSMTP, kind: str, line: bytes) -> RawSMTP:
        reply = session.command(line)
        if not reply:  # the server hung up (too many unknown commands): go on in a new session
            session.close()
            session = RawSMTP(port)
            reply = session.command(line)
        assert reply and all(REPLY_LINE.match(each) for each in reply), (line[:200], reply)
        code = reply[-1][:3]
        assert code != b"451", (line[:200], reply)  # the layer is up: a 451 is an internal error
        if kind == "garbage" or b"@elsewhere.example" in line and line.startswith(b"RCPT"):
            assert code[:1] in b"45", (line[:200], reply)
        if code == b"354":  # DATA went through: end it empty
            assert session.command(b".")[-1][:1] in b"245"
        elif code == b"334":  # an AUTH challenge: cancel it
            assert session.command(b"*")[-1][:1] in b"45"
        elif code in (b"221", b"421"):
            session.close()
            session = RawSMTP(port)
        return session

    @NETWORK
    @given(st.lists(command_lines, min_size=1, max_size=8), st.booleans())
    @example([("any", b"VRFY (\xff")], False)
    @example([("any", b"EHLO x"), ("any", b"MAIL FROM:<"), ("any", b"RCPT TO:<")], False)
    @example([("garbage", b"X\x00Y"), ("garbage", b"AB\rCD")], False)
    @example([("any", b"HELO "), *[("garbage", b"\x00 ")] * 5, ("any", b"HELO ")], False)
    def commands(lines: list[tuple[str, bytes]], pipelined: bool) -> None:
        counts["examples"] += 1
        counts["lines"] += len(lines)
        session = RawSMTP(port)
        try:
            assert session.greeting[-1].startswith(b"220 ")
            if pipelined:
                # All at once; a stray "." ends a DATA the garbage may have opened.
                session.sock.sendall(b"".join(line + CRLF for _, line in lines) + b".\r\nQUIT\r\n")
                session.sock.shutdown(socket.SHUT_WR)
                rest = session.lines.read()
                assert all(REPLY_LINE.match(each) for each in rest.splitlines(keepends=True)), rest[:500]
            else:
                for kind, line in lines:
                    session = converse(session, kind, line)
        finally:
            session.close()

    await check(commands)
    await asyncio.to_thread(good_mail, port, "still here")
    layer = get_layer(email_server.layer_url)
    try:
        await receive_subject(layer, "still here")
    finally:
        await layer.close()
    assert email_server.proc.poll() is None
    assert "Traceback" not in email_server.log_text(), email_server.log_text()[-3000:]
    record("smtp_commands", counts)


@pytest.mark.slow
async def test_generated_mime_over_smtp_is_taken_whole_or_refused(email_server):
    """Each generated message is either answered 250 and then on the layer, valid and with
    every byte, or refused with 500 because a line is over SMTP's 1000; never a 4xx."""
    layer = get_layer(email_server.layer_url)
    loop = Loop()
    counts = {"examples": 0, "accepted": 0, "refused": 0}

    @NETWORK
    @given(mime_messages)
    @example(FORWARDED_8BIT)
    def messages(raw: bytes) -> None:
        counts["examples"] += 1
        fits = max(map(len, raw.split(CRLF))) + 2 <= 1001
        with smtplib.SMTP("127.0.0.1", email_server.port, timeout=20) as client:
            try:
                client.sendmail("ann@sender.example", ["room@example.com"], raw)
            except smtplib.SMTPDataError as exc:
                assert (exc.smtp_code, fits) == (500, False), exc
                counts["refused"] += 1
                return
        assert fits
        counts["accepted"] += 1
        _, message = loop.run(layer.receive(["email.receive"], timeout=10))
        assert message is not None, "a message answered 250 is not on the layer"
        validate("email.receive", message)
        assert message["raw"] == raw

    try:
        await check(messages)
    finally:
        await layer.close()
    assert "Traceback" not in email_server.log_text(), email_server.log_text()[-3000:]
    record("mime_over_smtp", counts)


# -- slow SMTP clients ---------------------------------------------------------------------


def trickle(port: int, opening: list[bytes], stream: bytes, interval: float) -> tuple[float, bytes]:
    """Say the ``opening`` commands, then send ``stream`` (over and over) one byte every
    ``interval`` s; the seconds until the server closed the connection, and what it said."""
    session = RawSMTP(port)
    said = b"".join(session.greeting)
    for line in opening:
        said += b"".join(session.command(line))
    sock, started, sent = session.sock, time.monotonic(), 0
    try:
        while time.monotonic() - started < 15:
            if select.select([sock], [], [], interval)[0]:
                try:
                    chunk = sock.recv(4096)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return time.monotonic() - started, said
                said += chunk
            else:
                try:
                    sock.sendall(stream[sent % len(stream) :][:1])
                except OSError:
                    return time.monotonic() - started, said
                sent += 1
        raise AssertionError(f"a slow client was never cut off: {said!r}")
    finally:
        session.close()


@pytest.mark.slow
async def test_slow_clients_are_cut_off_and_give_their_slot_back(redis_server):
    """A command sent a byte at a time and a DATA that stops arriving are cut off at the
    command timeout (restarted by a complete command, or by any bytes during DATA); slow
    but complete commands and a DATA trickle at the session timeout. While they hold every
    slot, one more connection gets 421; once they are gone a good message is taken, and
    nothing of the unfinished DATA."""
    proc = EmailProcess(
        redis_server.url,
        "--domain",
        "example.com",
        "--command-timeout",
        "1",
        "--session-timeout",
        "3",
        "--max-connections-per-ip",
        "4",
    )
    layer = get_layer(proc.layer_url)
    envelope = [
        b"EHLO slow.example",
        b"MAIL FROM:<ann@sender.example>",
        b"RCPT TO:<room@example.com>",
        b"DATA",
    ]
    try:
        slow = [
            asyncio.to_thread(trickle, proc.port, [], b"NOOP", 0.25),
            asyncio.to_thread(trickle, proc.port, envelope, b"x", 0.25),
            asyncio.to_thread(trickle, proc.port, [], b"NOOP\r\n", 0.05),
            asyncio.to_thread(trickle, proc.port, envelope, b"x", 60),
        ]
        cut = asyncio.gather(*slow)
        await asyncio.sleep(0.5)
        extra = await asyncio.to_thread(RawSMTP, proc.port)
        assert extra.greeting[-1].startswith(b"421 4.7.0"), extra.greeting
        extra.close()
        (command, _), (data, in_data), (session, complete), (stalled, _) = await cut
        assert b"354" in in_data
        assert 0.9 <= command < 2.5 and 0.9 <= stalled < 2.5, (command, stalled)
        assert 2.9 <= data < 4.5 and b"421 4.4.2" in in_data, (data, in_data[-200:])
        assert 2.9 <= session < 4.5 and b"421 4.4.2" in complete, (session, complete[-200:])
        await asyncio.to_thread(good_mail, proc.port, "after the slow ones")
        _, message = await layer.receive(["email.receive"], timeout=10)
        assert parse.received(message)["subject"] == "after the slow ones"
        assert "Traceback" not in proc.log_text(), proc.log_text()[-3000:]
        record(
            "slow_smtp_clients",
            {
                "command_timeout": 1.0,
                "session_timeout": 3.0,
                "byte_per_0.25s_command_cut_after_s": round(command, 2),
                "trickled_data_cut_after_s": round(data, 2),
                "stalled_data_cut_after_s": round(stalled, 2),
                "slow_complete_commands_cut_after_s": round(session, 2),
            },
        )
    finally:
        await layer.close()
        proc.stop()


# -- bad messages from workers -----------------------------------------------------------

addresses = st.one_of(
    st.sampled_from(
        [
            "ann@sender.example",
            "Zoë <zoe@sender.example>",
            "jürgen@sender.example",
            "",
            "@",
            "<>",
            "0@",
            "[",
            "a@b.example\r\nRCPT TO:<x@sender.example>",
            "x" * 300 + "@sender.example",
            "a\x00@sender.example",
        ]
    ),
    st.text(max_size=20),
)
huge_text = st.integers(100_000, 900_000).map(lambda n: "x" * n)
texts = st.one_of(
    st.text(max_size=50), huge_text, st.sampled_from(["\r\nBcc: x@y.example", "=?utf-8?b?zz?="])
)
# Shapes the validator refuses (missing fields, wrong types) ...
badly_shaped = st.fixed_dictionaries(
    {},
    optional={
        "to": st.lists(addresses, max_size=3) | json_values,
        "cc": st.lists(addresses, max_size=2) | json_values,
        "bcc": st.lists(addresses, max_size=2) | json_values,
        "from": addresses | json_scalars,
        "reply_to": addresses | json_scalars,
        "subject": texts | json_scalars,
        "text": texts | json_scalars,
        "html": texts | json_scalars,
        "attachments": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "filename": texts | json_scalars,
                    "content_type": st.sampled_from(["text/plain", "a/b", "/", "multipart/mixed"])
                    | json_scalars,
                    "content": st.binary(max_size=100) | json_scalars,
                },
            ),
            max_size=2,
        )
        | json_values,
        "in_reply_to": addresses | json_scalars,
        "references": st.lists(addresses, max_size=2) | json_values,
        "headers": st.lists(st.lists(st.text(max_size=12) | json_scalars, max_size=3), max_size=2)
        | json_values,
    },
)
# ... and valid shapes with hostile values, which get as far as composing and delivering.
well_shaped = st.fixed_dictionaries(
    {"to": st.lists(addresses, min_size=1, max_size=3), "text": texts},
    optional={
        "cc": st.lists(addresses, max_size=2),
        "bcc": st.lists(addresses, max_size=2),
        "from": addresses,
        "reply_to": addresses,
        "subject": texts,
        "html": texts,
        "in_reply_to": addresses,
        "references": st.lists(addresses, max_size=2),
        "headers": st.lists(st.tuples(st.text(max_size=12), texts).map(list), max_size=2),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {"filename": texts, "content": st.binary(max_size=100)},
                optional={"content_type": st.sampled_from(["text/plain", "a/b", "/", "multipart/mixed", ""])},
            ),
            max_size=2,
        ),
    },
)
email_sends = st.one_of(badly_shaped, well_shaped, well_shaped)


@pytest.mark.slow
async def test_bad_email_sends_from_workers_are_delivered_or_reported(redis_server):
    """Each generated email.send is delivered to the relay or reported on
    email.send.failed (with its id); none is lost, and a good one is still delivered."""
    relay = RelaySink()
    proc = EmailProcess(
        redis_server.url,
        "--domain",
        "example.com",
        "--relay-host",
        "127.0.0.1",
        "--relay-port",
        str(relay.port),
        "--retry-for",
        "0.5",
        "--retry-backoff",
        "0.1",
    )
    layer = get_layer(proc.layer_url)
    loop = Loop()
    reports: dict[str, dict[str, Any]] = {}
    counts = {"examples": 0, "delivered": 0, "reported": 0, "refused_by_the_layer": 0}

    @NETWORK
    @given(email_sends)
    @example({"to": ["0@"], "text": "the header parser raises IndexError"})
    @example({"to": ["ann@sender.example"], "from": "[", "text": "and AttributeError"})
    @example(
        {"to": ["ann@sender.example"], "bcc": ["b@sender.example\r\nRSET"], "text": "smtplib: ValueError"}
    )
    def sends(generated: dict[str, Any]) -> None:
        ident = uuid.uuid4().hex
        before = len(relay.handler.messages)
        try:
            loop.run(layer.send("email.send", {**generated, "id": ident}))
        except LayerError:  # too large for the layer: the worker is told at once
            counts["refused_by_the_layer"] += 1
            return
        counts["examples"] += 1
        deadline = time.monotonic() + 15
        while len(relay.handler.messages) == before and ident not in reports:
            assert time.monotonic() < deadline, (
                f"an email.send was neither delivered nor reported: {proc.log_text()[-2000:]}"
            )
            for report in loop.run(drain(layer, "email.send.failed")):
                validate("email.send.failed", report)
                reports[report["message"]["id"]] = report
        counts["delivered" if len(relay.handler.messages) > before else "reported"] += 1

    try:
        await check(sends)
        await layer.send(
            "email.send", {"to": ["ann@sender.example"], "subject": "still delivering", "text": "x"}
        )
        _, _, delivered = (await asyncio.to_thread(relay.wait_for, len(relay.handler.messages) + 1))[-1]
        assert delivered["Subject"] == "still delivering"
        assert proc.proc.poll() is None
        log = proc.log_text()
        assert "Traceback" not in log and "never retrieved" not in log, log[-3000:]
        record("email_send_from_workers", counts)
    finally:
        await layer.close()
        proc.stop()
        relay.stop()


# -- Slack ---------------------------------------------------------------------------------


@pytest.fixture
async def standin():
    server = await StandIn(ack_timeout=0.5).start()
    yield server
    await server.stop()


@pytest.fixture
async def slack(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url, "--post-interval", "0", "--max-attempts", "2")
    await proc.wait_for_log("connected to default")
    layer = get_layer(proc.layer_url)
    yield proc, layer
    await layer.close()
    proc.stop()


async def event_with_text(layer: BaseLayer, text: str) -> dict[str, Any]:
    """The slack.message with this text (others before it are skipped)."""
    while True:
        _, message = await layer.receive(["slack.message"], timeout=10)
        assert message is not None, f"no event {text!r} on the layer"
        if message["text"] == text:
            return message


# A huge event: larger than a layer message, so it can never be put on the layer.
huge_events = st.integers(1, 2).map(lambda n: {"event": {"type": "message", "text": "x" * (n * 700_000)}})


@pytest.mark.slow
async def test_generated_socket_mode_envelopes_are_acknowledged_and_events_still_flow(slack, standin):
    """Envelopes with missing fields, wrong types, unknown kinds and huge events: each one
    slack-sdk hands over is acknowledged (on the layer, dropped as a redelivery, or logged
    as too large), every message on the layer keeps to the slack.event spec, and a good
    event still arrives afterwards, with no traceback from our code."""
    proc, layer = slack
    loop = Loop()
    counts = {"examples": 0, "acknowledged": 0, "on_the_layer": 0}

    @NETWORK
    @given(
        st.sampled_from(ENVELOPE_KINDS) | st.text(max_size=10).filter(lambda kind: kind != "disconnect"),
        slack_payloads | huge_events | json_values,
    )
    @example("events_api", {"event": {"type": "message", "channel": 5}, "event_id": []})
    def envelopes(kind: str, payload: Any) -> None:
        counts["examples"] += 1
        envelope_id = loop.run(standin.push_envelope(kind, payload))
        # slack-sdk itself refuses a payload that is neither an object nor a string (and logs it).
        if isinstance(payload, dict | str):
            deadline = time.monotonic() + 10
            while envelope_id not in standin.acks:
                assert time.monotonic() < deadline, f"envelope not acknowledged: {proc.log_text()[-2000:]}"
                time.sleep(0.02)
            counts["acknowledged"] += 1
        for message in loop.run(drain(layer, "slack.event")):
            validate("slack.event", message)
            counts["on_the_layer"] += 1

    await check(envelopes)
    await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "still here"})
    message = await event_with_text(layer, "still here")
    validate("slack.event", message)
    assert proc.proc.poll() is None
    assert "servers/slack/" not in proc.log_text(), proc.log_text()[-3000:]
    record("slack_envelopes", counts)


slack_sends = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            key: json_values | st.text(max_size=30)
            for key in ("channel", "team", "text", "blocks", "thread_ts", "reaction", "ts", "id")
        },
    ),
    st.fixed_dictionaries(
        {"channel": st.sampled_from(["C1", "C2", ""]) | st.text(max_size=10)},
        optional={
            "text": texts | st.integers(100_000, 400_000).map(lambda n: "é" * n),
            "blocks": st.lists(json_values, max_size=3),
            "thread_ts": st.text(max_size=10),
            "reaction": st.text(max_size=10),
            "ts": st.text(max_size=10),
        },
    ),
)


@pytest.mark.slow
async def test_bad_slack_sends_from_workers_are_posted_or_reported(slack, standin):
    """Each generated slack.send, on slack.send or on an event's reply channel, is posted
    or reported on slack.send.failed, never both and never neither; a good post follows."""
    proc, layer = slack
    loop = Loop()
    await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "reply here"})
    reply_channel = (await event_with_text(layer, "reply here"))["reply_channel"]
    counts = {"examples": 0, "posted": 0, "reported": 0, "refused_by_the_layer": 0}

    @NETWORK
    @given(slack_sends, st.booleans())
    @example({"channel": "C1", "text": "é" * 400_000}, False)  # over the API's 1 MiB as JSON: a 413
    @example({"channel": "C1", "text": "the channel still posts"}, False)
    def sends(message: dict[str, Any], as_reply: bool) -> None:
        before = len(standin.posts)
        try:
            loop.run(layer.send(reply_channel if as_reply else "slack.send", message))
        except LayerError:
            counts["refused_by_the_layer"] += 1
            return
        counts["examples"] += 1
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, f"neither posted nor reported: {proc.log_text()[-2000:]}"
            if len(standin.posts) > before:
                counts["posted"] += 1
                return
            _, report = loop.run(layer.receive(["slack.send.failed"], timeout=0.05))
            if report is not None:
                validate("slack.send.failed", report)
                counts["reported"] += 1
                return

    await check(sends)
    assert await drain(layer, "slack.send.failed", timeout=0.5) == [], "a message was posted and reported"
    before = len(standin.posts)
    await layer.send("slack.send", {"channel": "C1", "text": "still posting"})
    posts = await standin.wait_for_posts(before + 1)
    assert posts[-1]["text"] == "still posting"
    assert proc.proc.poll() is None
    assert "Traceback" not in proc.log_text(), proc.log_text()[-3000:]
    record("slack_send_from_workers", counts)
