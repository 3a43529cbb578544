"""The HTTP/WebSocket translation, without sockets: every rule on plain data."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchroom.servers.http_ws import translate
from switchroom.shared.messages import validate

# -- targets and headers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/", "/", b""),
        (b"/a/b?x=1&y=2", "/a/b", b"x=1&y=2"),
        (b"/caf%C3%A9?q=caf%C3%A9", "/café", b"q=caf%C3%A9"),
        (b"/a%20b%2Fc", "/a b/c", b""),
        (b"/p?", "/p", b""),
        (b"/p#frag", "/p", b""),
        (b"/p?x=1#frag", "/p", b"x=1"),
        (b"http://example.com/abs?z=9", "/abs", b"z=9"),
        (b"https://example.com", "/", b""),
        (b"*", "*", b""),
    ],
)
def test_split_target(target, path, query):
    assert translate.split_target(target) == (path, query)


@pytest.mark.parametrize("target", [b"relative/path", b"/bad%FF%FEutf8"])
def test_split_target_refuses_bad_targets(target):
    with pytest.raises(translate.BadRequest) as caught:
        translate.split_target(target)
    assert caught.value.status == 400


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_utf8_path_round_trips_through_percent_encoding(text):
    from urllib.parse import quote

    target = b"/" + quote(text, safe="").encode("ascii")
    assert translate.split_target(target)[0] == "/" + text


def test_header_limits():
    headers = [[b"x-%d" % i, b"v"] for i in range(10)]
    translate.check_headers(headers, max_count=10, max_bytes=1000)
    with pytest.raises(translate.BadRequest) as caught:
        translate.check_headers(headers, max_count=9, max_bytes=1000)
    assert caught.value.status == 431
    with pytest.raises(translate.BadRequest) as caught:
        translate.check_headers([[b"x", b"v" * 100]], max_count=10, max_bytes=50)
    assert caught.value.status == 431


@pytest.mark.parametrize("value", [b"a\x01b", b"\x00", b"a\x1b[31m", b"\x7f", b"a\nb"])
def test_control_characters_in_a_header_value_are_refused(value):
    with pytest.raises(translate.BadRequest) as caught:
        translate.check_headers([[b"x-a", value]], max_count=10, max_bytes=1000)
    assert caught.value.status == 400


def test_tabs_and_8_bit_bytes_in_a_header_value_are_kept():
    translate.check_headers([[b"x-a", b"a\tb \xe9"]], max_count=10, max_bytes=1000)


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        (b"example.com", (), True),
        (None, (), True),
        (None, ("example.com",), False),
        (b"example.com", ("example.com",), True),
        (b"EXAMPLE.com:8000", ("example.com",), True),
        (b"evil.com", ("example.com",), False),
        (b"api.example.com", ("*.example.com",), True),
        (b"example.com.evil.com", ("*.example.com",), False),
        (b"[::1]:8000", ("[::1]",), True),
    ],
)
def test_host_allowed(host, allowed, ok):
    assert translate.host_allowed(host, allowed) is ok


def test_proxy_headers():
    headers = [[b"x-forwarded-for", b"203.0.113.7, 10.0.0.1"], [b"x-forwarded-proto", b"https"]]
    assert translate.behind_proxy(headers, ["127.0.0.1", 5000], "http") == (["203.0.113.7", 0], "https")
    assert translate.behind_proxy(headers, ["127.0.0.1", 5000], "ws") == (["203.0.113.7", 0], "wss")
    assert translate.behind_proxy([], ["127.0.0.1", 5000], "http") == (["127.0.0.1", 5000], "http")
    junk = [[b"x-forwarded-proto", b"gopher"]]
    assert translate.behind_proxy(junk, None, "http") == (None, "http")


# -- request messages ---------------------------------------------------------------


def test_request_message_is_a_valid_http_request():
    message = translate.request_message(
        reply_channel="http.response.abc!def",
        method=b"post",
        target=b"/x%2Fy?a=1",
        http_version="1.1",
        headers=[[b"host", b"h"], [b"x-a", b"1"], [b"x-a", b"2"]],
        scheme="http",
        client=["127.0.0.1", 1234],
        server=["127.0.0.1", 8000],
        root_path="/app",
        body=b"data",
    )
    validate("http.request", message)
    assert message["method"] == "POST"
    assert message["path"] == "/x/y"
    assert message["query_string"] == b"a=1"
    assert message["headers"][1:] == [[b"x-a", b"1"], [b"x-a", b"2"]]
    assert message["body_channel"] is None


def test_disconnect_message():
    validate("http.disconnect", translate.disconnect_message("http.response.a!b", "/p"))


# -- responses ----------------------------------------------------------------------


def test_response_start_and_chunks():
    start = translate.parse_response(
        {
            "status": 200,
            "headers": [[b"content-type", b"text/plain"], [b"connection", b"close"]],
            "content": b"a",
            "more_content": True,
        },
        started=False,
    )
    assert start == translate.ResponseStart(200, [(b"content-type", b"text/plain")], b"a", True)
    chunk = translate.parse_response({"content": b"b"}, started=True)
    assert chunk == translate.ResponseChunk(b"b", False)


@pytest.mark.parametrize(
    "message",
    [
        "not a dict",
        {"status": "200"},
        {"status": 99},
        {"status": 600},
        {"status": 200, "headers": [[b"x", "str value"]]},
        {"status": 200, "headers": [[b"x-injected", b"a\r\nset-cookie: evil=1"]]},
        {"status": 200, "headers": [[b"bad:name", b"v"]]},
        {"status": 200, "content": "text, not bytes"},
    ],
)
def test_bad_response_starts_are_refused(message):
    with pytest.raises(translate.BadReply):
        translate.parse_response(message, started=False)


def test_a_second_start_is_refused():
    with pytest.raises(translate.BadReply):
        translate.parse_response({"status": 200}, started=True)


@pytest.mark.parametrize(
    ("target", "raw"),
    [
        (b"/plain/path-1_x.y~z?q=%41", None),
        (b"/a%2Fb?x", b"/a%2Fb"),
        (b"/caf%c3%a9", b"/caf%c3%a9"),
        (b"/a{b}", b"/a{b}"),
        (b"http://example.com/x%41?q", b"/x%41"),
    ],
)
def test_raw_path_travels_only_when_the_decoded_path_would_not_give_it_back(target, raw):
    common = {"reply_channel": "r.a!b", "target": target, "headers": [], "scheme": "ws"}
    connect = translate.connect_message(**common, client=None, server=None, subprotocols=[])
    request = translate.request_message(**common, method=b"GET", http_version="1.1", client=None, server=None)
    assert connect.get("raw_path") == raw == request.get("raw_path")
    validate("websocket.connect", connect)
    validate("http.request", request)


# -- WebSocket ----------------------------------------------------------------------


def test_socket_messages_are_valid():
    connect = translate.connect_message(
        reply_channel="websocket.send.a!b",
        target=b"/chat/room%201?token=x",
        headers=[[b"host", b"h"]],
        scheme="ws",
        client=["127.0.0.1", 1],
        server=["127.0.0.1", 2],
        subprotocols=["v1"],
    )
    validate("websocket.connect", connect)
    assert connect["path"] == "/chat/room 1"
    assert connect["order"] == 0
    text = translate.receive_message("websocket.send.a!b", "/p", "héllo".encode(), False, 1)
    assert text["text"] == "héllo"
    validate("websocket.receive", text)
    data = translate.receive_message("websocket.send.a!b", "/p", b"\x00\xff", True, 2)
    assert data["bytes"] == b"\x00\xff"
    validate("websocket.receive", data)
    validate("websocket.disconnect", translate.socket_disconnect_message("websocket.send.a!b", "/p", 1001, 3))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"accept": True}, translate.SocketReply(accept=True)),
        ({"accept": False}, translate.SocketReply(accept=False)),
        ({"accept": True, "subprotocol": "v2"}, translate.SocketReply(accept=True, subprotocol="v2")),
        ({"text": "hi"}, translate.SocketReply(accept=True, text="hi")),
        ({"bytes": b"\x01"}, translate.SocketReply(accept=True, data=b"\x01")),
        ({"close": True}, translate.SocketReply(close=1000)),
        ({"close": 4001, "reason": "bye"}, translate.SocketReply(close=4001, reason="bye")),
        ({"close": 1011}, translate.SocketReply(close=1011)),
        ({"text": "last", "close": True}, translate.SocketReply(accept=True, text="last", close=1000)),
    ],
)
def test_parse_socket_reply(message, expected):
    assert translate.parse_socket_reply(message) == expected


@pytest.mark.parametrize(
    "message",
    [{"text": "a", "bytes": b"b"}, {"close": 1005}, {"close": 999}, {"text": 5}, "nope"],
)
def test_bad_socket_replies_are_refused(message):
    with pytest.raises(translate.BadReply):
        translate.parse_socket_reply(message)


def test_subprotocol_must_have_been_offered():
    assert translate.choose_subprotocol(["a", "b"], "b") == "b"
    assert translate.choose_subprotocol(["a"], None) is None
    with pytest.raises(translate.BadReply):
        translate.choose_subprotocol(["a"], "z")


@pytest.mark.parametrize(
    ("origin", "allowed", "ok"),
    [
        ("https://evil.example", (), True),
        (None, ("https://good.example",), True),
        ("https://good.example", ("https://good.example",), True),
        ("https://app.good.example", ("https://*.good.example",), True),
        ("https://evil.example", ("https://good.example",), False),
        ("null", ("https://good.example",), False),
    ],
)
def test_origin_allowed(origin, allowed, ok):
    assert translate.origin_allowed(origin, allowed) is ok


@pytest.mark.parametrize(
    "message, plain",
    [
        ({"text": "hi"}, True),
        ({"bytes": b"\x00"}, True),
        ({"text": "hi", "accept": True}, True),
        ({"text": "bye", "close": True}, False),
        ({"accept": True}, False),
        ({"close": 1000}, False),
    ],
)
def test_a_broadcast_frame_is_data_and_nothing_else(message, plain):
    """Only such frames are encoded once and written to many sockets alike."""
    assert translate.parse_socket_reply(message).is_plain_frame() is plain


@pytest.mark.parametrize(
    "message",
    [
        {"text": "hi"},
        {"text": "café ☕"},
        {"bytes": b"\x00\xff"},
        {"bytes": b""},
        {"text": ""},
    ],
)
def test_a_plain_frame_is_what_the_full_reading_sends(message):
    """The short way for data-only replies gives the payload the full reading would send."""
    reply = translate.parse_socket_reply(message)
    expected = reply.text.encode("utf-8") if reply.text is not None else reply.data
    assert translate.plain_frame(message) == (expected, reply.text is None)


@pytest.mark.parametrize(
    "message",
    [
        {"text": "bye", "close": True},
        {"text": "hi", "accept": True},
        {"text": None},
        {"text": 5},
        {"bytes": bytearray(b"x")},
        {"text": "a", "bytes": b"b"},
        {"accept": True},
        ["text", "hi"],
        "nope",
    ],
)
def test_anything_else_takes_the_full_reading(message):
    """Replies with more to do than one frame, and malformed ones, are not plain frames."""
    assert translate.plain_frame(message) is None
