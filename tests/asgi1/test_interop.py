"""End to end: Channels 1.1.8 and Daphne 1.4.2 processes (from the interop venv) share one Redis
layer with `switchroom http` and `switchroom worker`, through switchroom.layers.asgi1."""

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.sync.client import connect

from switchroom.layers.asgi1 import ChannelLayer

from . import processes
from .processes import Process

TIMEOUT = 30


@pytest.fixture(scope="class")
def deployment(redis_server) -> Iterator[tuple[str, Callable[..., Process]]]:
    """A fresh key prefix on the session's Redis, and a starter whose processes are stopped after."""
    url = f"{redis_server.url}?prefix=asgi1-{uuid.uuid4().hex[:10]}"
    started: list[Process] = []

    def start(factory: Callable[..., Process], *args: str) -> Process:
        process = factory(*args)
        started.append(process)
        return process

    try:
        yield url, start
    finally:
        for process in reversed(started):
            process.stop()
        layer = ChannelLayer(url)
        layer.flush()
        layer.close()


def chat(url: str, room: str):
    return connect(f"{url}/chat/{room}/", open_timeout=TIMEOUT, close_timeout=TIMEOUT)


def base_url(server: Process, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.port}"


class TestChannelsWorkerBehindSwitchroomHttp:
    """A Channels 1.x project's runworker answers traffic arriving through `switchroom http`."""

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, interop_python, deployment) -> Process:
        url, start = deployment
        start(processes.runworker, interop_python, url)
        return start(processes.switchroom_http, url)

    def test_a_django_view_answers(self, server):
        response = httpx.get(f"{base_url(server)}/hello?a=1&b=two", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {
            "served_by": "channels-1",
            "method": "GET",
            "path": "/hello",
            "query": {"a": "1", "b": "two"},
        }

    def test_a_large_upload_reaches_the_view_whole_through_the_body_channel(self, server):
        body = os.urandom(3 * 1024 * 1024)
        response = httpx.post(f"{base_url(server)}/echo", content=body, timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {
            "served_by": "channels-1",
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }

    def test_a_streamed_response_arrives_whole(self, server):
        response = httpx.get(f"{base_url(server)}/download?parts=40", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.content == b"0123456789abcdef" * 4096 * 40

    def test_websocket_chat_through_a_channels_group(self, server):
        with chat(base_url(server, "ws"), "lobby") as alice, chat(base_url(server, "ws"), "lobby") as bob:
            alice.send("hello from alice")
            assert alice.recv(timeout=TIMEOUT) == "hello from alice"
            assert bob.recv(timeout=TIMEOUT) == "hello from alice"

    def test_an_unrouted_path_reaches_django_and_gets_its_404(self, server):
        response = httpx.get(f"{base_url(server)}/nowhere", timeout=TIMEOUT)
        assert response.status_code == 404


class TestDaphneInFrontOfSwitchroomWorker:
    """Daphne 1.4.2 hands requests to a `switchroom worker` app over the shared layer."""

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, interop_python, deployment) -> Process:
        url, start = deployment
        start(processes.switchroom_worker, url)
        return start(processes.daphne, interop_python, url)

    def test_http_get(self, server):
        response = httpx.get(f"{base_url(server)}/hello?a=1", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {
            "served_by": "switchroom-worker",
            "method": "GET",
            "path": "/hello",
            "query": "a=1",
            "body_length": 0,
        }

    def test_http_post_body(self, server):
        response = httpx.post(f"{base_url(server)}/hello", content=b"x" * 5000, timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.json()["body_length"] == 5000

    def test_a_large_response_arrives_whole_from_its_chunks(self, server):
        response = httpx.get(f"{base_url(server)}/download?parts=40", timeout=TIMEOUT)
        assert response.status_code == 200
        assert response.content == b"0123456789abcdef" * 4096 * 40

    def test_an_upload_over_the_message_size_limit_is_refused_not_hung(self, server):
        """Daphne 1.x sends the whole body in one message; the layer's MessageTooLarge reaches
        Daphne, which answers 500 (switchroom http would chunk it instead)."""
        response = httpx.post(f"{base_url(server)}/hello", content=b"x" * (2 * 1024 * 1024), timeout=TIMEOUT)
        assert response.status_code == 500
        assert "MessageTooLarge" in server.log_text()

    def test_unrouted_path_gets_the_workers_404(self, server):
        assert httpx.get(f"{base_url(server)}/nowhere", timeout=TIMEOUT).status_code == 404

    def test_websocket_chat_through_a_switchroom_group(self, server):
        with chat(base_url(server, "ws"), "lobby") as alice, chat(base_url(server, "ws"), "lobby") as bob:
            bob.send("hello from bob")
            assert alice.recv(timeout=TIMEOUT) == "hello from bob"
            assert bob.recv(timeout=TIMEOUT) == "hello from bob"


class SideBySide:
    """Daphne 1.4.2 and `switchroom http` on one layer, with one kind of worker behind both:
    a group broadcast reaches the sockets of both servers."""

    worker = ""
    served_by = ""

    @pytest.fixture(scope="class")
    @classmethod
    def servers(cls, interop_python, deployment) -> tuple[Process, Process]:
        url, start = deployment
        if cls.worker == "runworker":
            start(processes.runworker, interop_python, url)
        else:
            start(processes.switchroom_worker, url)
        return start(processes.daphne, interop_python, url), start(processes.switchroom_http, url)

    def test_both_servers_answer_http(self, servers):
        for server in servers:
            response = httpx.get(f"{base_url(server)}/hello", timeout=TIMEOUT)
            assert response.status_code == 200
            assert response.json()["served_by"] == self.served_by

    def test_a_broadcast_reaches_sockets_on_both_servers(self, servers):
        daphne, switchroom_http = servers
        with (
            chat(base_url(daphne, "ws"), "both") as on_daphne,
            chat(base_url(switchroom_http, "ws"), "both") as on_switchroom,
        ):
            on_daphne.send("from a Daphne socket")
            assert on_daphne.recv(timeout=TIMEOUT) == "from a Daphne socket"
            assert on_switchroom.recv(timeout=TIMEOUT) == "from a Daphne socket"
            on_switchroom.send("from a switchroom socket")
            assert on_daphne.recv(timeout=TIMEOUT) == "from a switchroom socket"
            assert on_switchroom.recv(timeout=TIMEOUT) == "from a switchroom socket"


class TestSideBySideWithChannelsWorker(SideBySide):
    worker = "runworker"
    served_by = "channels-1"


class TestSideBySideWithSwitchroomWorker(SideBySide):
    worker = "switchroom_worker"
    served_by = "switchroom-worker"
