"""Hostile bytes on the wire, generated: HTTP request heads and WebSocket frames from
hypothesis, sent over raw sockets to a real ``switchroom http`` process. Every one gets an
HTTP status, a WebSocket close code or a closed connection — never a hang, a 2xx for a
broken request or a traceback — and the server keeps serving."""

import asyncio
import base64
import os
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchroom.layers import get_layer

from ..http_ws.harness import ServerProcess
from ..http_ws.responder import Responder

WIRE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")
# What a client may see when its frames break the protocol or the limits.
CLOSE_CODES = {1000, 1002, 1003, 1007, 1009}


class Worker:
    """The tests' responder (tests/http_ws/responder.py) on its own loop in a thread."""

    def __init__(self, layer_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(layer_url,), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self, layer_url: str) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.layer = get_layer(layer_url)
            self.responder = Responder(self.layer).start()
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def stop(self) -> None:
        async def close() -> None:
            await self.responder.stop()
            await self.layer.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(redis_server) -> Iterator[ServerProcess]:
    """One server for the module, answered by the responder; timeouts short so a request
    that can never complete is answered within the tests' patience."""
    server = ServerProcess(
        redis_server.url, "--read-timeout", "1", "--request-timeout", "1", "--max-frame-size", "4096"
    )
    worker = Worker(server.layer_url)
    try:
        yield server
    finally:
        worker.stop()
        server.stop()
        assert "Traceback" not in server.stopped_log, server.stopped_log[-3000:]


def read_all(sock: socket.socket, limit: int = 1 << 16) -> bytes:
    """Everything the server sends until it closes the connection (the socket times out
    instead if the server never does — which fails the test)."""
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


# ---------------------------------------------------------------------------- HTTP heads

tokens = st.one_of(
    st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"get", b""]),
    st.binary(min_size=1, max_size=12),
)
targets = st.one_of(
    st.sampled_from([b"/hello", b"/hello?x=1", b"*", b"http://127.0.0.1/hello", b"/%ff%00", b"/a/../../etc"]),
    st.binary(max_size=80),
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1 extra", b"http/1.1", b""])
header_names = st.one_of(
    st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Upgrade", b"X-A"]),
    st.binary(max_size=20),
)
header_values = st.one_of(
    st.sampled_from([b"127.0.0.1", b"chunked", b"-1", b"99999999999999999999", b"close", b"websocket", b"0"]),
    st.binary(max_size=60),
)
statuses: Counter[str] = Counter()
heads = st.tuples(tokens, targets, versions, st.lists(st.tuples(header_names, header_values), max_size=6))


@WIRE
@given(head=heads)
def test_any_request_head_gets_a_status_or_a_close(served: ServerProcess, head) -> None:
    method, target, version, headers = head
    raw = method + b" " + target + b" " + version + b"\r\n"
    raw += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    raw += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            return  # refused while still sending: a close is an answer
        answer = read_all(sock)
    if not answer:
        statuses["closed"] += 1
        return
    match = STATUS.match(answer)
    assert match, answer[:200]
    status = int(match.group(1))
    statuses[str(status)] += 1
    assert 200 <= status < 600
    if status < 300:
        # Only a well-formed request for a path the responder answers gets a success.
        assert well_formed(raw), raw


TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
REQUEST_LINE = re.compile(TOKEN + rb" (/hello|http://127\.0\.0\.1/hello)(\?\S*)? HTTP/1\.[01]")
FIELD_LINE = re.compile(TOKEN + rb":[\t\x20-\x7e\x80-\xff]*")


def well_formed(raw: bytes) -> bool:
    """Whether the first request in ``raw`` follows RFC 9112's request-line and field-line
    syntax (a bare LF may end a line) and asks for a path the responder answers."""
    lines = [line.removesuffix(b"\r") for line in raw.split(b"\n")]
    head = lines[: lines.index(b"")] if b"" in lines else lines
    return bool(REQUEST_LINE.fullmatch(head[0])) and all(FIELD_LINE.fullmatch(line) for line in head[1:])


# ---------------------------------------------------------------------------- WebSocket frames


def frame(fin: bool, rsv: int, opcode: int, payload: bytes, masked: bool = True) -> bytes:
    """One WebSocket frame as a client would write it (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, (0x80 if masked else 0) | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, length)
    else:
        head = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each complete unmasked frame the server sent."""
    frames = []
    while len(data) >= 2:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if length == 126:
            (length,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif length == 127:
            (length,) = struct.unpack("!Q", data[2:10])
            offset = 10
        if len(data) < offset + length:
            break
        frames.append((opcode, data[offset : offset + length]))
        data = data[offset + length :]
    return frames


def open_socket(port: int) -> tuple[socket.socket, bytes]:
    """A raw socket past the WebSocket handshake on /ws/echo; returns it and any bytes after
    the 101 response."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


payloads = st.one_of(
    st.text(max_size=200).map(lambda t: t.encode()),
    st.binary(max_size=200),
    st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80", b"x" * 5000, b"\x03\xe8", b"\x00"]),
)
frames = st.builds(
    frame,
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 1, 4, 7]),
    opcode=st.sampled_from([0, 1, 2, 8, 9, 10, 3, 7, 11, 15]),
    payload=payloads,
    masked=st.sampled_from([True, True, True, False]),
)
outcomes: Counter[str] = Counter()


@WIRE
@given(sent=st.lists(frames, min_size=1, max_size=3))
def test_any_frames_get_a_close_code_or_a_closed_connection(served: ServerProcess, sent: list[bytes]) -> None:
    sock, early = open_socket(served.port)
    with sock:
        try:
            sock.sendall(b"".join(sent) + frame(True, 0, 8, struct.pack("!H", 1000)))
        except (BrokenPipeError, ConnectionResetError):
            outcomes["reset while sending"] += 1
            return
        received = server_frames(early + read_all(sock))
    closes = [payload for opcode, payload in received if opcode == 8]
    assert closes, f"closed without a close frame after {sent}"
    code = struct.unpack("!H", closes[0][:2])[0] if len(closes[0]) >= 2 else 1005
    outcomes[f"close {code}"] += 1
    assert code in CLOSE_CODES, (code, closes[0], sent)


@pytest.mark.parametrize(
    "connection",
    [[b"keep-alive", b"close"], [b"upgrade, close"], [b"close,foo"]],
    ids=["second-header", "in-a-list", "no-space"],
)
def test_a_connection_header_listing_close_closes_after_the_answer(
    served: ServerProcess, connection: list[bytes]
) -> None:
    """Every Connection header counts, as a comma-separated list (RFC 9110 7.6.1)."""
    headers = b"".join(b"Connection: " + value + b"\r\n" for value in connection)
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200") and b"Hello, world!" in answer


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(True, 0, 1, b"not masked", masked=False), 1002),
        (frame(True, 0, 1, b"x" * 5000), 1009),
        (frame(True, 0, 1, b"\xff\xfe"), 1007),
        (frame(True, 0, 3, b"reserved opcode"), 1002),
        (frame(True, 0, 8, struct.pack("!H", 999)), 1002),
        (frame(False, 0, 1, b"begun") + frame(True, 0, 1, b"not a continuation"), 1002),
    ],
    ids=[
        "unmasked",
        "over-max-frame-size",
        "bad-utf8",
        "reserved-opcode",
        "bad-close-code",
        "new-in-fragmented",
    ],
)
def test_a_bad_frame_and_the_close_after_it_in_one_write_still_get_the_close_code(
    served: ServerProcess, bad: bytes, code: int
) -> None:
    """The client's close arriving with the bad frame must not reset our close frame away."""
    sock, early = open_socket(served.port)
    with sock:
        sock.sendall(bad + frame(True, 0, 8, struct.pack("!H", 1000)))
        received = server_frames(early + read_all(sock))
    assert received and received[0][0] == 8
    assert struct.unpack("!H", received[0][1][:2])[0] == code


def test_frames_in_any_split_and_mix_reach_the_worker_whole_and_in_order(served: ServerProcess) -> None:
    """Whole frames, a fragmented message with a ping inside it, and a ping and a binary
    frame each split across two reads whose second part looks like a frame of its own: each
    message arrives as sent."""
    unmasked = b"\x00\x00\x00\x00"
    tail = b"\x81\x84" + unmasked + b"abcd" + b"y" * 50
    split = b"x" * 200 + tail
    split_frame = struct.pack("!BBH", 0x82, 0x80 | 126, len(split)) + unmasked + split
    split_ping = struct.pack("!BB", 0x89, 0x80 | 20 + len(tail)) + unmasked + b"p" * 20 + tail
    sock, data = open_socket(served.port)
    with sock:
        sock.sendall(
            frame(True, 0, 1, b"a")
            + frame(False, 0, 1, b"b")
            + frame(True, 0, 9, b"ping")
            + frame(True, 0, 0, b"c")
            + frame(True, 0, 2, b"\x01\x02")
            + frame(True, 0, 1, "é".encode() * 100)
            + split_ping[: -len(tail)]
        )
        data = read_frames(sock, data, 5)
        sock.sendall(tail + split_frame[: -len(tail)])
        data = read_frames(sock, data, 6)
        sock.sendall(tail)
        data = read_frames(sock, data, 7)
        sock.sendall(frame(True, 0, 8, struct.pack("!H", 1000)))
        received = server_frames(data + read_all(sock))
    assert received[:7] == [
        (10, b"ping"),
        (1, b"1:a"),
        (1, b"2:bc"),
        (2, b"\x02\x01"),
        (1, b"4:" + "é".encode() * 100),
        (10, b"p" * 20 + tail),
        (2, split[::-1]),
    ]
    assert received[-1][0] == 8 and struct.unpack("!H", received[-1][1][:2])[0] == 1000


def read_frames(sock: socket.socket, data: bytes, count: int) -> bytes:
    """``data`` and what the server sends after it, until it holds ``count`` whole frames."""
    while len(server_frames(data)) < count:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {server_frames(data)}"
        data += chunk
    return data


def test_the_server_still_serves_after_the_hostile_bytes(served: ServerProcess) -> None:
    """Runs after the generated tests in this module: the same server answers normally."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200")
    sock, _ = open_socket(served.port)
    with sock:
        sock.sendall(frame(True, 0, 1, b"still here"))
        (opcode, payload), *_ = server_frames(sock.recv(4096))
        assert (opcode, payload) == (1, b"1:still here")
    assert served.proc.poll() is None
    print(f"HTTP answers to the generated heads: {dict(statuses)}")
    print(f"WebSocket outcomes over the generated frames: {dict(outcomes)}")


def test_no_channel_is_ever_named_from_client_input(served: ServerProcess, redis_server) -> None:
    """Paths, queries and headers that look like reply channels only ever land in message
    fields. A message sent to a channel named from input would stay on the layer (nothing
    reads it) until it expires; after everything this module sent, none is there."""
    import redis

    lookalikes = [
        b"/websocket.send.abc!def",
        b"/http.response.abc!def",
        b"/x?reply_channel=http.response.q!r",
    ]
    for target in lookalikes:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(
                b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nReply-Channel: x!y\r\nConnection: close\r\n\r\n"
            )
            read_all(sock)
    prefix = served.layer_url.split("prefix=")[1].split("&")[0]
    client = redis.Redis(port=redis_server.port)
    try:
        names = {key.decode().rsplit(":", 1)[-1] for key in client.scan_iter(f"{prefix}:*")}
    finally:
        client.close()
    # The layer's own channels, a process's inbox queue and its liveness keys ({id}).
    allowed = re.compile(
        r"(http\.request|http\.disconnect|websocket\.(connect|receive|disconnect)|[0-9a-f]{12}!|\{[0-9a-f]{12}\})"
    )
    assert all(allowed.fullmatch(name) for name in names), names
