"""Route matching without I/O: typed path parameters, recipient patterns, Slack filters."""

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchroom.worker.app import App
from switchroom.worker.routing import (
    AddressPattern,
    PathMatcher,
    PathPattern,
    Route,
    match_address,
    match_path,
    match_slack,
)


@pytest.mark.parametrize(
    "template, path, expected",
    [
        ("/items/{id:int}", "/items/42", {"id": 42}),
        ("/items/{id:int}", "/items/-3", {"id": -3}),
        ("/items/{id:int}", "/items/4x", None),
        ("/items/{id:int}", "/items/42/", None),
        ("/p/{x:float}", "/p/1.5", {"x": 1.5}),
        ("/p/{x:float}", "/p/7", {"x": 7.0}),
        ("/u/{name}", "/u/ann", {"name": "ann"}),
        ("/u/{name}", "/u/a/b", None),
        ("/f/{rest:path}", "/f/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("/f/{rest:path}", "/f/", {"rest": ""}),
        ("/a.b/{n:int}", "/aXb/1", None),
        ("/", "/", {}),
        ("/", "/x", None),
    ],
)
def test_path_patterns(template, path, expected):
    assert PathPattern(template).match(path) == expected


def test_uuid_parameter():
    value = uuid.uuid4()
    assert PathPattern("/o/{id:uuid}").match(f"/o/{value}") == {"id": value}
    assert PathPattern("/o/{id:uuid}").match("/o/not-a-uuid") is None


@pytest.mark.parametrize("template", ["items", "/x/{id:money}", "/x/{a}/{a}"])
def test_bad_templates_are_refused(template):
    with pytest.raises(ValueError):
        PathPattern(template)


@given(st.integers())
def test_int_parameters_round_trip(n):
    assert PathPattern("/n/{n:int}").match(f"/n/{n}") == {"n": n}


@given(st.text(alphabet=st.characters(blacklist_characters="/"), min_size=1))
def test_str_parameters_take_any_segment(segment):
    assert PathPattern("/s/{v}/end").match(f"/s/{segment}/end") == {"v": segment}


def test_method_mismatch_is_told_apart_from_no_match():
    routes = [Route(print, path=PathPattern("/a"), methods=frozenset({"GET"}))]
    assert match_path(routes, "/a", "GET").route is routes[0]
    found = match_path(routes, "/a", "POST")
    assert found.route is None and found.method_not_allowed
    found = match_path(routes, "/b", "GET")
    assert found.route is None and not found.method_not_allowed


def test_path_cache_is_bounded_and_oldest_paths_go_first():
    routes = [Route(print, path=PathPattern("/items/{id:int}"))]
    matcher = PathMatcher(routes, size=3, longest=20)
    for n in range(10):
        assert matcher.match(f"/items/{n}").params == {"id": n}
    assert list(matcher._outcomes) == [("/items/7", None), ("/items/8", None), ("/items/9", None)]
    assert matcher.match("/items/" + "1" * 30).params == {"id": int("1" * 30)}
    assert len(matcher._outcomes) == 3


def test_path_cache_finds_a_route_added_later():
    routes = [Route(print, path=PathPattern("/a"), methods=frozenset({"GET"}))]
    matcher = PathMatcher(routes)
    assert matcher.match("/b", "GET").route is None
    assert matcher.match("/a", "POST").method_not_allowed
    routes.append(Route(repr, path=PathPattern("/b")))
    routes.append(Route(repr, path=PathPattern("/a"), methods=frozenset({"POST"})))
    assert matcher.match("/b", "GET").route is routes[1]
    assert matcher.match("/a", "POST").route is routes[2]


def test_app_routes_registered_after_the_dispatcher_are_served():
    from concurrent.futures import ThreadPoolExecutor

    from switchroom.layers import MemoryLayer
    from switchroom.worker.dispatch import Dispatcher

    app = App()
    app.http("/a")(print)
    dispatcher = Dispatcher(app, MemoryLayer(), ThreadPoolExecutor(1))
    assert dispatcher.http_paths.match("/b", "GET").route is None
    app.http("/b")(repr)
    assert dispatcher.http_paths.match("/b", "GET").route is app.http_routes[1]
    app.websocket("/ws")(repr)
    assert dispatcher.websocket_paths["receive"].match("/ws").route is app.websocket_routes["receive"][0]


@pytest.mark.parametrize(
    "pattern, address, expected",
    [
        ("help@example.com", "help@example.com", True),
        ("help@example.com", "HELP@Example.COM", True),
        ("help@example.com", "help2@example.com", False),
        ("*@example.com", "anyone@example.com", True),
        ("@example.com", "anyone@example.com", True),
        ("@example.com", "anyone@sub.example.com", False),
        ("*@example.com", "a@example.org", False),
        ("support-*@example.com", "support-eu@example.com", True),
        (re.compile(r"ticket-\d+@example\.com"), "ticket-12@example.com", True),
        (re.compile(r"ticket-\d+@example\.com"), "ticket-x@example.com", False),
    ],
)
def test_address_patterns(pattern, address, expected):
    assert AddressPattern(pattern).match(address) is expected


def test_first_matching_address_route_wins():
    exact = Route(print, address=AddressPattern("a@x.com"))
    domain = Route(print, address=AddressPattern("*@x.com"))
    assert match_address([exact, domain], "a@x.com") is exact
    assert match_address([exact, domain], "b@x.com") is domain
    assert match_address([exact, domain], "b@y.com") is None


def test_slack_matching_by_type_and_channel():
    c1 = Route(print, event_type="message", slack_channel="C1")
    mention = Route(print, event_type="app_mention")
    anything = Route(print, event_type=None)
    assert match_slack([c1, mention], {"type": "message", "channel": "C1"}) is c1
    assert match_slack([c1, mention], {"type": "message", "channel": "C2"}) is None
    assert match_slack([c1, mention], {"type": "app_mention", "channel": "C2"}) is mention
    assert match_slack([c1, anything], {"type": "reaction_added"}) is anything


def test_app_reads_only_channels_it_has_routes_for():
    app = App()
    assert app.channels() == []
    app.slack()(print)
    assert app.channels() == ["slack.event"]
    app.websocket("/ws", on="disconnect")(print)
    app.http("/")(print)
    assert app.channels() == [
        "http.request",
        "http.disconnect",
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
        "slack.event",
    ]
    with pytest.raises(ValueError):
        app.websocket("/ws", on="open")


def test_asgi_prefix():
    app = App()
    assert not app.asgi_serves("/x")
    app.mount_asgi(print, prefix="/api")
    assert app.asgi_serves("/api") and app.asgi_serves("/api/v1")
    assert not app.asgi_serves("/apis") and not app.asgi_serves("/")
    app.mount_asgi(print)
    assert app.asgi_serves("/anything")
