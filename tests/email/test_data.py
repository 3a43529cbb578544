"""The DATA reader on a stream fed in arbitrary pieces, without sockets."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchroom.servers.email.data import TOO_LONG, TOO_MUCH, read_data

NEXT = b"QUIT\r\n"


async def read(
    stream: bytes, pieces: list[int] | None = None, *, max_size: int | None = None, max_line: int = 1001,
    limit: int = 64 * 1024,
) -> tuple[bytes | None, str | None, bytes]:
    """Feed ``stream`` in pieces of the given sizes; return the result and what is left unread."""
    reader = asyncio.StreamReader(limit=limit)

    async def feed() -> None:
        rest = stream
        for size in pieces or [len(stream)]:
            reader.feed_data(rest[:size])
            rest = rest[size:]
            await asyncio.sleep(0)
        if rest:
            reader.feed_data(rest)
        reader.feed_eof()

    feeder = asyncio.ensure_future(feed())
    data, error = await read_data(reader, max_size, max_line)
    await feeder
    return data, error, await reader.read()


def stuffed(lines: list[bytes]) -> bytes:
    """Lines as an SMTP client sends them: leading dots doubled, CRLF, then the end line."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


async def test_an_empty_message():
    assert await read(b".\r\n" + NEXT) == (b"", None, NEXT)


async def test_lines_come_back_unstuffed_and_the_next_command_stays_unread():
    lines = [b"Subject: x", b"", b".leading dot", b"..two dots", b"ends with a dot.", b"."]
    data, error, rest = await read(stuffed(lines) + NEXT)
    assert error is None
    assert data == b"".join(line + b"\r\n" for line in lines)
    assert rest == NEXT


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\r\n"),  # a bare LF never ends the message
        (b"a\r\n..\nb\r\n.\r\n", b"a\r\n.\nb\r\n"),
        (b"a\n.\r\nb\r\n.\r\n", b"a\n.\r\nb\r\n"),
        (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n"),
    ],
)
async def test_only_crlf_dot_crlf_ends_the_message(stream, message):
    assert await read(stream + NEXT) == (message, None, NEXT)
    assert await read(stream + NEXT, [1] * len(stream), limit=8) == (message, None, NEXT)


async def test_a_long_line_is_refused_after_the_whole_message():
    stream = b"short\r\n" + b"x" * 1000 + b"\r\n.\r\n"
    assert (await read(stream + NEXT, max_line=1001))[1:] == (TOO_LONG, NEXT)
    assert (await read(stream + NEXT, max_line=1001, limit=64))[1:] == (TOO_LONG, NEXT)
    assert (await read(stream, max_line=1002))[:2] == (stream[:-3], None)


async def test_bare_lf_text_is_one_long_line():
    stream = b"line\n" * 300 + b"\r\n.\r\n"
    assert (await read(stream))[1] == TOO_LONG


async def test_too_much_data_is_read_to_the_end_and_refused():
    stream = b"0123456789\r\n" * 1000 + b".\r\n"
    assert await read(stream + NEXT, [100] * 200, max_size=11_999, limit=32) == (None, TOO_MUCH, NEXT)
    assert (await read(stream + NEXT, max_size=12_000))[1] is None


async def test_a_client_that_goes_away_mid_message():
    with pytest.raises(asyncio.IncompleteReadError):
        await read(b"Subject: x\r\n\r\nhalf a mess")


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).filter(lambda line: b"\r\n" not in line), max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=60),
    limit=st.integers(min_value=8, max_value=200),
)
def test_any_message_in_any_pieces_comes_back_whole(lines, cuts, limit):
    stream = stuffed(lines) + NEXT
    data, error, rest = asyncio.run(read(stream, cuts, limit=limit))
    assert error is None
    assert data == b"".join(line + b"\r\n" for line in lines)
    assert rest == NEXT
