"""End to end: ``switchroom slack`` as a subprocess on real Redis, the real slack-sdk
clients inside it talking to the local Slack stand-in, a consumer answering on the layer."""

import asyncio
import time
import uuid

import msgpack
import pytest

from switchroom.layers import get_layer
from switchroom.servers.slack.standin import StandIn

from ..processes import SwitchroomProcess

pytestmark = pytest.mark.slow


class SlackProcess(SwitchroomProcess):
    """A ``switchroom slack`` process against a stand-in, its log in a file."""

    name = "slack"

    def __init__(
        self, redis_url: str, api_url: str, *args: str, layer_query: str = "", **environ: str
    ) -> None:
        self.layer_url = f"{redis_url}?prefix=sk{uuid.uuid4().hex[:10]}{layer_query}"
        tokens = {
            "SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-test-secret",
            "SWITCHROOM_SLACK_APP_TOKEN": "xapp-test-secret",
        }
        command = ["slack", "--layer", self.layer_url, "--api-url", api_url, "--ping-interval", "2", *args]
        super().__init__(command, {**tokens, **environ})

    async def wait_for_log(self, text: str, timeout: float = 20) -> None:  # type: ignore[override]
        """As the base, without blocking the loop the in-process stand-in runs on."""
        await asyncio.to_thread(super().wait_for_log, text, timeout)


@pytest.fixture
async def standin():
    server = await StandIn(ack_timeout=1.0).start()
    yield server
    await server.stop()


@pytest.fixture(params=["socket", "rtm"])
async def slack(request, redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url, "--mode", request.param)
    await proc.wait_for_log("connected to default")
    layer = get_layer(proc.layer_url)
    yield proc, layer, request.param
    await layer.close()
    assert proc.stop() == 0


async def test_event_reaches_a_consumer_whose_reply_is_posted(slack, standin):
    proc, layer, mode = slack
    await standin.push_event({"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@U0BOT> hi"})
    channel, message = await layer.receive(["slack.app_mention"], timeout=10)
    assert message["text"] == "<@U0BOT> hi" and message["mode"] == mode and message["team"] == "T0STANDIN"
    _, same = await layer.receive(["slack.event"], timeout=5)
    assert same["ts"] == message["ts"]
    await layer.send(message["reply_channel"], {"text": "hello back", "thread_ts": message["ts"]})
    posts = await standin.wait_for_posts(1)
    assert posts[-1]["channel"] == "C1"
    assert posts[-1]["text"] == "hello back"
    assert posts[-1]["thread_ts"] == message["ts"]
    if mode == "socket":
        assert standin.acks, "every Socket Mode envelope is acknowledged"
    assert "xoxb-test-secret" not in proc.log_text()


async def test_the_bots_own_messages_do_not_come_back(slack, standin):
    proc, layer, _ = slack
    await standin.push_event({"type": "message", "channel": "C1", "bot_id": "B0BOT", "text": "mine"})
    await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "theirs"})
    _, message = await layer.receive(["slack.message"], timeout=10)
    assert message is not None, proc.log_text()[-2000:]
    assert message["text"] == "theirs"


async def test_reconnects_after_the_socket_drops(slack, standin):
    proc, layer, _ = slack
    connects = standin.connects
    await standin.drop()
    deadline = time.monotonic() + 30
    while standin.connects == connects or not (standin.socket_clients or standin.rtm_clients):
        assert time.monotonic() < deadline, "the server did not reconnect"
        await asyncio.sleep(0.1)
    await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "after the drop"})
    _, message = await layer.receive(["slack.message"], timeout=10)
    assert message["text"] == "after the drop"


async def test_socket_mode_refresh_and_redelivery_dedup(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url)
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        await standin.disconnect("refresh_requested")
        deadline = time.monotonic() + 20
        while standin.connects < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "once"})
        _, message = await layer.receive(["slack.message"], timeout=10)
        assert message["text"] == "once"
        channel, again = await layer.receive(["slack.message"], timeout=1.5)
        assert channel is None, "an event must reach the layer once"
    finally:
        await layer.close()
        proc.stop()


async def test_rate_limits_are_honoured_and_nothing_is_lost(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url, "--post-interval", "0.3")
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        standin.rate_limited, standin.retry_after = 2, 1
        for i in range(4):
            await layer.send("slack.send", {"channel": "C9", "text": f"post {i}"})
        await layer.send("slack.send", {"channel": "C8", "text": "other channel"})
        posts = await standin.wait_for_posts(5, timeout=20)
        in_c9 = [p for p in posts if p["channel"] == "C9"]
        assert [p["text"] for p in in_c9] == [f"post {i}" for i in range(4)]
        gaps = [b["at"] - a["at"] for a, b in zip(in_c9, in_c9[1:], strict=False)]
        assert all(gap >= 0.29 for gap in gaps), gaps
        assert in_c9[0]["at"] - posts[0]["at"] >= 0 and "rate limit" in proc.log_text()
    finally:
        await layer.close()
        proc.stop()


async def test_unpostable_messages_go_to_the_dead_letter_channel(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url)
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        await layer.send("slack.send", {"text": "no channel", "id": "job-7"})
        _, failed = await layer.receive(["slack.send.failed"], timeout=10)
        assert failed["message"]["id"] == "job-7"
        assert "no channel" in failed["error"]
    finally:
        await layer.close()
        proc.stop()


async def test_a_dead_letter_too_large_for_the_layer_is_reported_cut_short(redis_server, standin):
    """The report of a post that just fits in a layer message would not: its long text is
    cut, its blocks left out, and both named in ``truncated``."""
    limit = 50_000
    proc = SlackProcess(redis_server.url, standin.base_url, layer_query=f"&max_message_size={limit}")
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "b" * 100}}] * 100
        post = {"text": "", "blocks": blocks, "id": "big"}
        # The post itself fits with 20 bytes to spare (a 16-bit length takes 2 more bytes).
        post["text"] = "x" * (limit - 20 - len(msgpack.packb(post)) - 2)
        assert limit - 20 <= len(msgpack.packb(post)) <= limit
        await layer.send("slack.send", post)
        _, failed = await layer.receive(["slack.send.failed"], timeout=10)
        assert failed["message"]["id"] == "big"
        assert failed["message"]["text"] == "x" * 2000
        assert "blocks" not in failed["message"]
        assert sorted(failed["truncated"]) == ["blocks", "text"]
        assert "no channel" in failed["error"]
    finally:
        await layer.close()
        proc.stop()


@pytest.mark.parametrize("mode", ["socket", "rtm"])
async def test_no_event_is_lost_while_the_layer_is_down(redis_process, standin, mode):
    """Socket Mode leaves the envelope unacknowledged so Slack delivers it again; RTM cannot
    redeliver, so the server keeps trying the layer."""
    proc = SlackProcess(redis_process.url, standin.base_url, "--mode", mode)
    try:
        await proc.wait_for_log("connected to default")
        redis_process.stop(kill=True)
        await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "kept"})
        await asyncio.sleep(0.5)
        redis_process.start()
        layer = get_layer(proc.layer_url)
        try:
            _, message = await layer.receive(["slack.message"], timeout=10)
            assert message["text"] == "kept"
        finally:
            await layer.close()
        assert "not accepted by the layer" in proc.log_text()
    finally:
        proc.stop()


async def test_several_workspaces_in_one_process(redis_server, standin, tmp_path):
    standin.add_workspace("T0ACME", "xoxb-acme-secret", "xapp-acme-secret")
    standin.add_workspace("T0BETA", "xoxb-beta-secret", "xapp-beta-secret")
    listing = tmp_path / "workspaces.json"
    listing.write_text(
        '[{"name": "acme", "bot_token": "xoxb-acme-secret", "app_token": "xapp-acme-secret"},'
        ' {"name": "beta", "bot_token": "xoxb-beta-secret", "app_token": "xapp-beta-secret"}]'
    )
    proc = SlackProcess(redis_server.url, standin.base_url, SWITCHROOM_SLACK_WORKSPACES=str(listing))
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to beta")
        await standin.push_event(
            {"type": "message", "channel": "C1", "user": "U1", "text": "from beta"}, "T0BETA"
        )
        _, message = await layer.receive(["slack.message"], timeout=10)
        assert (message["team"], message["text"]) == ("T0BETA", "from beta")
        await layer.send(message["reply_channel"], {"text": "answered in beta"})
        await layer.send("slack.send", {"team": "acme", "channel": "C2", "text": "to acme by name"})
        posts = await standin.wait_for_posts(2)
        by_text = {post["text"]: post["team"] for post in posts}
        assert by_text == {"answered in beta": "T0BETA", "to acme by name": "T0ACME"}
        await layer.send("slack.send", {"team": "T0GONE", "channel": "C2", "text": "nowhere"})
        _, failed = await layer.receive(["slack.send.failed"], timeout=10)
        assert "T0GONE" in failed["error"]
        assert "secret" not in proc.log_text()
    finally:
        await layer.close()
        proc.stop()


async def test_slash_commands_reach_the_layer_and_are_acknowledged(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url)
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        payload = {
            "team_id": "T0STANDIN",
            "channel_id": "C1",
            "user_id": "U1",
            "command": "/deploy",
            "text": "now",
        }
        envelope_id = await standin.push_envelope("slash_commands", payload)
        _, message = await layer.receive(["slack.slash_command"], timeout=10)
        assert (message["text"], message["event"]["command"], message["channel"]) == ("now", "/deploy", "C1")
        deadline = time.monotonic() + 10
        while envelope_id not in standin.acks:
            assert time.monotonic() < deadline, "the envelope was not acknowledged"
            await asyncio.sleep(0.05)
    finally:
        await layer.close()
        proc.stop()


async def test_the_outbound_queue_is_bounded_and_a_stop_reports_what_was_not_posted(redis_server, standin):
    proc = SlackProcess(
        redis_server.url, standin.base_url, "--post-interval", "60", "--max-queue", "2", "--stop-grace", "0.2"
    )
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        await layer.send("slack.send", {"channel": "C1", "text": "first", "id": "a"})
        await standin.wait_for_posts(1)
        for ident in "bcd":
            await layer.send("slack.send", {"channel": "C1", "text": "later", "id": ident})
        _, full = await layer.receive(["slack.send.failed"], timeout=10)
        assert (full["message"]["id"], full["attempts"]) == ("d", 0)
        assert "queue full" in full["error"]
        assert proc.stop() == 0
        stopped = [(await layer.receive(["slack.send.failed"], timeout=5))[1] for _ in range(2)]
        assert sorted(m["message"]["id"] for m in stopped) == ["b", "c"]
        assert all("stopped before posting" in m["error"] for m in stopped)
        assert [p["text"] for p in standin.posts] == ["first"]
    finally:
        await layer.close()
        proc.stop()


async def test_an_unread_per_type_channel_does_not_hold_up_the_durable_one(redis_server, standin):
    """Only slack.event is read: slack.message fills up (capacity 3), events keep coming."""
    proc = SlackProcess(redis_server.url, standin.base_url, layer_query="&capacity=3")
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        for i in range(6):
            await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": str(i)})
            _, message = await layer.receive(["slack.event"], timeout=10)
            assert message["text"] == str(i)
        await proc.wait_for_log("not reaching slack.message")
    finally:
        await layer.close()
        proc.stop()
