"""Hostile input: whatever workers send back and whatever clients send in, the
translation answers with a clear error and the server stays up."""

import asyncio
import os
import socket

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchroom.servers.http_ws import translate

from ..http_ws.harness import ServerProcess

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
replies = st.one_of(
    values,
    st.fixed_dictionaries(
        {},
        optional={
            "status": values,
            "headers": values,
            "content": values,
            "more_content": values,
            "accept": values,
            "text": values,
            "bytes": values,
            "close": values,
            "subprotocol": values,
            "reason": values,
        },
    ),
)


@given(replies, st.booleans())
def test_any_http_reply_is_parsed_or_refused_cleanly(message, started):
    try:
        part = translate.parse_response(message, started)
    except translate.BadReply:
        return
    assert isinstance(part, (translate.ResponseStart, translate.ResponseChunk))
    if isinstance(part, translate.ResponseStart):
        assert 100 <= part.status <= 599
        assert all(b"\n" not in name + value and b"\r" not in name + value for name, value in part.headers)


header_bytes = st.sampled_from([b"x-a", b"Content-Length", b"connection", b"a:b", b"v\r\nx", b"ok\n", b""])
header_pairs = st.one_of(
    st.tuples(header_bytes, header_bytes),
    st.lists(header_bytes, min_size=2, max_size=2),
    st.lists(st.one_of(header_bytes, st.text(max_size=2)), max_size=3),
)
# Mostly well-formed response starts, each field sometimes of another type or value.
near_plain_starts = st.fixed_dictionaries(
    {"status": st.one_of(st.integers(90, 610), st.integers(200, 204), st.sampled_from([True, "200", 200.0]))},
    optional={
        "headers": st.one_of(st.lists(header_pairs, max_size=3), st.tuples(header_pairs), values),
        "content": st.one_of(st.binary(max_size=4), st.binary(max_size=4), st.text(max_size=2), st.none()),
        "more_content": st.one_of(st.booleans(), st.booleans(), st.none(), st.integers(0, 1)),
        "x-extra": values,
    },
)


@given(near_plain_starts)
@settings(max_examples=300)
def test_the_fast_reading_of_a_response_start_agrees_with_the_checked_one(message):
    """A reply the fast path reads is one the spec-checked path reads the same way; every
    reply it does not read goes to the checked path, which gives the reasons."""
    try:
        checked = translate.checked_start(message)
    except translate.BadReply:
        checked = None
    plain = translate.plain_start(message)
    assert plain is None or plain == checked


@given(replies)
def test_any_socket_reply_is_parsed_or_refused_cleanly(message):
    try:
        reply = translate.parse_socket_reply(message)
    except translate.BadReply:
        return
    assert reply.text is None or reply.data is None


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_any_request_target_is_translated_or_refused_with_400(target):
    try:
        path, query = translate.split_target(target)
    except translate.BadRequest as exc:
        assert exc.status == 400
        return
    assert isinstance(path, str) and isinstance(query, bytes)


target_pieces = st.sampled_from(
    [b"/", b"a", b"%41", b"%2F", b"%c3%a9", b"%ff", b"?", b"#", b"~", b" ", b"\xe9", b"http://h"]
)


@given(st.one_of(st.binary(max_size=60), st.lists(target_pieces, max_size=8).map(b"".join)))
@settings(max_examples=300)
def test_reading_a_target_at_once_agrees_with_split_target_and_raw_path(target):
    try:
        expected = (*translate.split_target(target), translate.raw_path(target))
    except translate.BadRequest as exc:
        expected = (exc.status, exc.reason)
    try:
        got = translate.target_parts(target)
    except translate.BadRequest as exc:
        got = (exc.status, exc.reason)
    assert got == expected


GARBAGE = [
    b"\x00\x01\x02\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcde",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /%ff%fe HTTP/1.1\r\nHost: a\r\n\r\n",
]


@pytest.mark.slow
async def test_garbage_from_clients_gets_an_error_and_the_server_stays_up(redis_server):
    server = ServerProcess(redis_server.url, "--read-timeout", "1", "--request-timeout", "1")
    try:
        answers = []
        for payload in [*GARBAGE, *(os.urandom(300) for _ in range(20))]:
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.settimeout(10)
                try:
                    sock.sendall(payload)
                    answer = sock.recv(200)
                except (ConnectionResetError, BrokenPipeError):
                    answer = b""
                answers.append(answer)
        # Every answer is an HTTP error status or a closed connection, never a 2xx.
        for answer in answers:
            assert answer == b"" or answer.startswith((b"HTTP/1.1 4", b"HTTP/1.1 5", b"HTTP/1.0 4")), answer
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(server.url + "/still-alive")
        assert response.status_code == 503  # no worker here: the server itself answers
        assert server.proc.poll() is None
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()


@pytest.mark.slow
async def test_bad_replies_from_a_worker_never_crash_the_server(redis_server):
    from switchroom.layers import get_layer

    server = ServerProcess(redis_server.url)
    layer = get_layer(server.layer_url)
    bad = [
        {"status": "x"},
        {"status": 200, "headers": "nope"},
        {"status": 200, "content": 5},
        "a string",
        [1, 2],
    ]
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for reply in bad:
                pending = asyncio.ensure_future(client.get(server.url + "/"))
                _, request = await layer.receive(["http.request"], timeout=10)
                await layer.send(
                    request["reply_channel"], reply if isinstance(reply, dict) else {"junk": reply}
                )
                assert (await pending).status_code == 502
        assert server.proc.poll() is None
    finally:
        await layer.close()
        server.stop()
