"""Metrics scraped from real processes after real traffic (HTTP, WebSocket, email, Slack),
parsed with prometheus_client's parser: the counts match what was sent, and drops and
refusals appear with their reason."""

import asyncio
import smtplib
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from switchroom.layers import get_layer
from switchroom.servers.slack.standin import StandIn
from switchroom.shared.redisproc import free_port

from ..email.harness import RelaySink
from ..processes import SwitchroomProcess

pytestmark = pytest.mark.slow


class Scraped:
    """One scrape of a process's /metrics, by metric sample name and labels."""

    def __init__(self, port: int) -> None:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples[name, frozenset(labels.items())]


class Served(SwitchroomProcess):
    """A switchroom process with a metrics port, started and waited for."""

    def __init__(self, command: list[str], url: str, ready_line: str, env: dict[str, str] | None = None):
        self.metrics_port = free_port()
        super().__init__(
            [*command, "--layer", url, "--metrics-port", str(self.metrics_port)], env, ready=ready_line
        )

    def scrape(self) -> Scraped:
        return Scraped(self.metrics_port)


def http_server(url: str, *args: str) -> tuple[Served, str]:
    port = free_port()
    return Served(["http", "--port", str(port), *args], url, "listening on"), f"http://127.0.0.1:{port}"


async def test_http_websocket_worker_and_layer_counts(redis_server):
    """10 requests, 2 sockets, 5 frames broadcast to both sockets and to a member whose
    queue (capacity 3) nobody reads: 2 of its deliveries are dropped as full."""
    url = f"{redis_server.url}?prefix=m{uuid.uuid4().hex[:10]}"
    http, base = http_server(url)
    worker = Served(["worker", "examples.everything:app"], url + "&process_capacity=3", "worker reading")
    layer = get_layer(url)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(7):
                assert (await client.get(base + "/")).status_code == 200
            for _ in range(3):
                assert (await client.get(base + "/nope")).status_code == 404
        silent = await layer.new_channel("test.socket!")
        await layer.group_add("room-lobby", silent)
        ws = base.replace("http://", "ws://") + "/chat/lobby"
        sockets = [await connect(ws) for _ in range(2)]
        for n in range(5):
            await sockets[0].send(f"frame {n}")
            for sock in sockets:
                assert await asyncio.wait_for(sock.recv(), 10) == f"frame {n}"
        during = http.scrape()
        for sock in sockets:
            await sock.close()
        await asyncio.sleep(0.5)
        after = http.scrape()
        work = worker.scrape()
    finally:
        await layer.flush()
        await layer.close()
        http.stop()
        worker.stop()

    assert during("switchroom_http_requests_total", code="200") == 7
    assert during("switchroom_http_requests_total", code="404") == 3
    assert during("switchroom_http_request_duration_seconds_count") == 10
    assert during("switchroom_websocket_handshakes_total", outcome="accepted") == 2
    assert during("switchroom_websocket_connect_duration_seconds_count") == 2
    assert during("switchroom_websocket_connections_open") == 2
    assert during("switchroom_websocket_frames_total", direction="received") == 5
    assert during("switchroom_websocket_frames_total", direction="sent") == 10
    assert after("switchroom_websocket_connections_open") == 0
    assert after("switchroom_http_connections_open") == 0
    assert during("switchroom_http_unavailable_total", cause="full") == 0
    # What the server put on the layer: 10 requests, 2 connects, 5 frames (the disconnects follow).
    assert during("switchroom_layer_sent_total") == 17
    assert during("switchroom_ready") == 1 and during("switchroom_layer_up") == 1

    assert work("switchroom_worker_messages_total", channel="http.request", outcome="ok") == 10
    assert work("switchroom_worker_messages_total", channel="websocket.connect", outcome="ok") == 2
    assert work("switchroom_worker_messages_total", channel="websocket.receive", outcome="ok") == 5
    assert work("switchroom_worker_consumer_duration_seconds_count", channel="websocket.receive") == 5
    assert work("switchroom_layer_group_sends_total") == 5
    assert work("switchroom_layer_group_reached_total") == 5 * 2 + 3
    assert work("switchroom_layer_group_skipped_full_total") == 2
    assert work("switchroom_layer_dropped_total", reason="full") == 2
    assert work("switchroom_layer_dropped_total", reason="expired") == 0
    assert work("switchroom_layer_queue_messages", channel="http.request") == 0
    assert work("switchroom_worker_consumers_running") == 0


async def test_refused_requests_appear_with_their_cause(redis_server):
    """No worker, and an http.request channel that holds 2: of 5 requests at once, 2 wait
    and time out, 3 are refused at once as the channel is full."""
    url = f"{redis_server.url}?prefix=m{uuid.uuid4().hex[:10]}&capacity=2"
    http, base = http_server(url, "--request-timeout", "2")
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            answers = await asyncio.gather(*(client.get(base + f"/{n}") for n in range(5)))
        scraped = http.scrape()
    finally:
        http.stop()
    assert [a.status_code for a in answers] == [503] * 5
    assert scraped("switchroom_http_requests_total", code="503") == 5
    assert scraped("switchroom_http_unavailable_total", cause="full") == 3
    assert scraped("switchroom_http_unavailable_total", cause="timeout") == 2
    assert scraped("switchroom_layer_errors_total", operation="send", error="ChannelFull") == 3
    assert scraped("switchroom_layer_sent_total") == 2


def test_email_in_and_out(redis_server):
    """In: 3 accepted, 1 deferred (email.receive holds 3 and nobody reads it), 1 too large.
    Out: 2 delivered, 1 refused for good by the relay (bounced, dead-lettered)."""
    relay = RelaySink()
    url = f"{redis_server.url}?prefix=m{uuid.uuid4().hex[:10]}&durable_capacity=3"
    email = Served(
        [
            "email", "--port", str(port := free_port()), "--domain", "x.test", "--max-message-size", "5000",
            "--relay-host", "127.0.0.1", "--relay-port", str(relay.port),
        ],
        url,
        "listening for SMTP",
    )  # fmt: skip
    try:
        codes = []
        for n in range(4):
            with smtplib.SMTP("127.0.0.1", port) as client:
                try:
                    client.sendmail("a@example.com", ["room@x.test"], f"Subject: {n}\r\n\r\nhello {n}")
                    codes.append(250)
                except smtplib.SMTPDataError as exc:
                    codes.append(exc.smtp_code)
        with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPException):
            client.sendmail("a@example.com", ["room@x.test"], "Subject: big\r\n\r\n" + "x" * 6000)

        async def send() -> None:
            layer = get_layer(url)
            for to in ("ann@example.com", "bob@example.com", "reject@example.com"):
                await layer.send("email.send", {"to": [to], "subject": "hi", "text": "hello"})
            await layer.close()

        asyncio.run(send())
        relay.wait_for(2)
        email.wait_for_log("giving up on an email")
        scraped = email.scrape()
    finally:
        email.stop()
        relay.stop()
    assert codes == [250, 250, 250, 451]
    assert scraped("switchroom_email_received_total", outcome="accepted") == 3
    assert scraped("switchroom_email_received_total", outcome="deferred") == 1
    assert scraped("switchroom_email_received_total", outcome="rejected") == 1
    assert scraped("switchroom_email_accept_duration_seconds_count") == 3
    assert scraped("switchroom_email_outbound_total", outcome="delivered") == 2
    assert scraped("switchroom_email_outbound_total", outcome="bounced") == 1
    assert scraped("switchroom_email_outbound_total", outcome="dead_lettered") == 1
    assert scraped("switchroom_layer_errors_total", operation="send", error="ChannelFull") == 1


async def test_slack_events_acks_posts_and_rate_limits(redis_server):
    """3 events (one the bot's own), 2 posts of which the first meets one 429."""
    standin = await StandIn().start()
    url = f"{redis_server.url}?prefix=m{uuid.uuid4().hex[:10]}"
    tokens = {"SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-t", "SWITCHROOM_SLACK_APP_TOKEN": "xapp-t"}
    command = ["slack", "--api-url", standin.base_url, "--post-interval", "0.01"]
    slack = await asyncio.to_thread(Served, command, url, "connected to default", tokens)
    layer = get_layer(url)
    try:
        await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "one"})
        await standin.push_event({"type": "message", "channel": "C1", "user": "U2", "text": "two"})
        await standin.push_event({"type": "message", "channel": "C1", "bot_id": "B0BOT", "text": "mine"})
        for _ in range(2):
            _, event = await layer.receive(["slack.message"], timeout=10)
            assert event is not None
        async with httpx.AsyncClient() as client:
            await client.post(
                f"http://127.0.0.1:{standin.port}/_standin/ratelimit", json={"count": 1, "retry_after": 1}
            )
        for text in ("a", "b"):
            await layer.send("slack.send", {"channel": "C1", "text": text})
        await standin.wait_for_posts(2)
        while len(standin.acks) < 3:
            await asyncio.sleep(0.05)
        scraped = await asyncio.to_thread(slack.scrape)
    finally:
        await layer.flush()
        await layer.close()
        slack.stop()
        await standin.stop()
    assert scraped("switchroom_slack_events_total", outcome="published") == 2
    assert scraped("switchroom_slack_events_total", outcome="ignored") == 1
    assert scraped("switchroom_slack_acks_total") == 3
    assert scraped("switchroom_slack_posts_total", outcome="posted") == 2
    assert scraped("switchroom_slack_rate_limited_total") == 1
    assert scraped("switchroom_slack_post_duration_seconds_count") == 3
    assert scraped("switchroom_slack_posts_waiting") == 0
