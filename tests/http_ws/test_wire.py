"""The pure HTTP/1.1 reader and response encoder (``wire.py``): limits, pipelining,
upgrades and the shape of answers, with no socket."""

from switchroom.servers.http_ws import wire


def read(*data: bytes, count: int = 100, size: int = 16 * 1024, body: int = 1000) -> list[wire.Event]:
    reader = wire.RequestReader(count, size, body)
    return [event for part in data for event in reader.feed(part)]


def kinds(events: list[wire.Event]) -> list[str]:
    return [type(event).__name__ for event in events]


def refusal(events: list[wire.Event]) -> tuple[int, str]:
    assert isinstance(events[-1], wire.Refused), events
    return events[-1].status, events[-1].reason


def test_a_request_comes_out_as_begin_head_body_end():
    events = read(b"POST /a?b=1 HTTP/1.1\r\nHost: x \r\nContent-Length: 3\r\n\r\nabc")
    assert kinds(events) == ["Begin", "Head", "Body", "End"]
    head = events[1]
    assert (head.method, head.target, head.version) == (b"POST", b"/a?b=1", "1.1")
    assert head.headers == [[b"host", b"x"], [b"content-length", b"3"]]
    assert head.keep_alive and not head.expect_continue


def test_pieces_of_a_request_make_the_same_events():
    whole = read(b"GET /abc HTTP/1.1\r\nX-A: 1\r\n\r\n")
    raw = b"GET /abc HTTP/1.1\r\nX-A: 1\r\n\r\n"
    pieces = read(*(raw[i : i + 1] for i in range(len(raw))))
    assert whole == pieces


def test_pipelined_requests_come_out_in_order_until_one_says_close():
    events = read(
        b"GET /1 HTTP/1.1\r\n\r\n",
        b"GET /2 HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\nGET /3 HTTP/1.1\r\n\r\n",
    )
    heads = [event for event in events if isinstance(event, wire.Head)]
    assert [head.target for head in heads] == [b"/1", b"/2"]
    assert [head.keep_alive for head in heads] == [True, False]
    assert kinds(events)[-1] == "End"


def test_http_1_0_is_the_last_request_of_its_connection():
    events = read(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert events[1].keep_alive is False


def test_a_chunked_body_comes_decoded():
    events = read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert b"".join(event.data for event in events if isinstance(event, wire.Body)) == b"abcde"
    assert kinds(events)[-1] == "End"


def test_too_many_headers_are_refused_with_431_as_they_arrive():
    head = b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 6 + b"\r\n"
    assert refusal(read(head, count=5)) == (431, "more than 5 request headers")


def test_headers_over_the_size_limit_are_refused_with_431_as_they_arrive():
    assert refusal(read(b"GET / HTTP/1.1\r\nX-A: " + b"v" * 200 + b"\r\nX-B: 1\r\n", size=100))[0] == 431


def test_a_header_that_never_ends_is_refused_once_twice_the_limit_arrived():
    reader = wire.RequestReader(100, 100, 1000)
    assert kinds(reader.feed(b"GET / HTTP/1.1\r\nX-A: ")) == ["Begin"]
    assert reader.feed(b"v" * 150) == []
    assert refusal(reader.feed(b"v" * 60))[0] == 431


def test_a_long_target_is_refused_with_414():
    assert refusal(read(b"GET /" + b"a" * 200, size=100))[0] == 414


def test_a_declared_body_over_the_limit_is_refused_before_it_arrives():
    events = read(b"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")
    assert refusal(events) == (413, "body of 1001 bytes is over the limit")


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives():
    events = read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"3e9\r\n" + b"x" * 1001)
    assert refusal(events) == (413, "body over the limit")


def test_other_http_versions_are_refused_with_505():
    assert refusal(read(b"GET / HTTP/2.0\r\n\r\n"))[0] == 505


def test_malformed_input_is_refused_with_400_and_nothing_is_read_after():
    reader = wire.RequestReader(100, 1000, 1000)
    events = reader.feed(b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n")
    assert refusal(events)[0] == 400
    assert reader.feed(b"GET / HTTP/1.1\r\n\r\n") == []


def test_an_upgrade_hands_on_what_followed_its_head_before_its_end():
    events = read(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00")
    assert kinds(events) == ["Begin", "Head", "Upgrade", "End"]
    assert events[2].rest == b"\x81\x00"


def test_expect_100_continue_is_noticed_on_http_1_1():
    events = read(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
    assert events[1].expect_continue


def test_a_response_without_length_is_chunked_on_http_1_1_only():
    head, chunked, has_body = wire.response_head("1.1", 200, [(b"x-a", b"1")], head=False, keep_alive=True)
    assert head == b"HTTP/1.1 200 OK\r\nx-a: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert chunked and has_body
    head, chunked, _ = wire.response_head("1.0", 200, [], head=False, keep_alive=False)
    assert head == b"HTTP/1.0 200 OK\r\n\r\n" and not chunked


def test_a_response_with_a_length_is_not_chunked_and_says_when_the_connection_closes():
    head, chunked, _ = wire.response_head(
        "1.1", 404, [(b"content-length", b"2")], head=False, keep_alive=False
    )
    assert head == b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\nConnection: close\r\n\r\n"
    assert not chunked


def test_head_answers_and_204_carry_no_body():
    assert wire.response_head("1.1", 200, [], head=True, keep_alive=True)[1:] == (False, False)
    assert wire.response_head("1.1", 204, [], head=False, keep_alive=True)[1:] == (False, False)
    assert wire.response_head("1.1", 599, [], head=False, keep_alive=True)[0].startswith(
        b"HTTP/1.1 599 Unknown"
    )


def test_chunks():
    assert wire.chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
