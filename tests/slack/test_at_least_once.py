"""An acked Slack event will be handled, and a bot can do what a bot developer expects:
``switchroom slack`` as a subprocess with the real slack-sdk inside, the local stand-in for
Slack, real Redis (frozen with SIGSTOP), and a real worker in this process."""

import asyncio
import os
import signal
import time

import pytest

from switchroom.layers import get_layer
from switchroom.servers.slack.standin import StandIn
from switchroom.worker.app import App
from switchroom.worker.runner import Worker

from .test_server import SlackProcess

pytestmark = pytest.mark.slow


async def until(condition, timeout: float = 20, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def entries(layer, channel: str = "slack.event", quiet: float = 2.0) -> list[dict]:
    """Everything on a channel until it stays empty for ``quiet`` seconds."""
    found = []
    while True:
        _, message = await layer.receive([channel], timeout=quiet)
        if message is None:
            return found
        found.append(message)


@pytest.fixture
async def standin():
    server = await StandIn(ack_timeout=1.0).start()
    yield server
    await server.stop()


async def test_a_redelivered_envelope_reaches_the_layer_once_whether_its_ack_arrived_or_not(
    redis_server, standin
):
    proc = SlackProcess(redis_server.url, standin.base_url)
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "acked"})
        acked = list(standin.envelopes)[-1]
        await until(lambda: acked in standin.acks, what="the ack")
        await standin.redeliver(acked)
        await until(lambda: standin.acks.count(acked) == 2, what="the redelivery's ack")
        standin.lose_acks = 1
        await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "ack lost"})
        lost = list(standin.envelopes)[-1]
        await until(lambda: lost in standin.acks, what="the ack after the lost one")
        assert [attempt for ident, attempt in standin.deliveries if ident == lost] == [0, 1]
        assert sorted(m["text"] for m in await entries(layer)) == ["ack lost", "acked"]
        assert proc.log_text().count("delivered again; it is on the layer already") == 2
    finally:
        await layer.close()
        proc.stop()


async def test_a_12_s_redis_freeze_during_an_event_puts_it_on_the_layer_once(redis_process):
    standin = await StandIn(ack_timeout=3.0, attempts=12).start()
    proc = SlackProcess(redis_process.url, standin.base_url)
    layer = None
    try:
        await proc.wait_for_log("connected to default")
        os.kill(redis_process.pid, signal.SIGSTOP)
        try:
            await standin.push_event({"type": "message", "channel": "C1", "user": "U1", "text": "frozen"})
            await asyncio.sleep(12)
        finally:
            os.kill(redis_process.pid, signal.SIGCONT)
        envelope = list(standin.envelopes)[-1]
        await until(lambda: envelope in standin.acks, timeout=40, what="the ack after the freeze")
        layer = get_layer(proc.layer_url)
        assert [m["text"] for m in await entries(layer)] == ["frozen"]
        assert "not accepted by the layer" in proc.log_text()
    finally:
        if layer is not None:
            await layer.close()
        proc.stop()
        await standin.stop()


async def test_after_a_429_with_retry_after_2_the_next_call_waits_2_s(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url, "--post-interval", "0.01")
    layer = get_layer(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        standin.rate_limited, standin.retry_after = 1, 2
        await layer.send("slack.send", {"channel": "C1", "text": "after the limit"})
        await until(lambda: standin.refused, what="the 429")
        # Another call of the workspace, in another lane, waits out the pause too.
        await layer.send("slack.send", {"method": "views.publish", "user_id": "U1", "view": {"type": "home"}})
        posts = await standin.wait_for_posts(2, timeout=15)
        [refused] = standin.refused
        assert all(post["at"] - refused["at"] >= 2 for post in posts), (refused, posts)
    finally:
        await layer.close()
        proc.stop()


class SlackWorker:
    """A real worker in this process answering slash commands and modal submissions."""

    def __init__(self, url: str) -> None:
        app = App()

        @app.slack("slash_command")
        async def command(message, ctx):
            if message["event"]["command"] == "/slow":
                await asyncio.sleep(1.5)
            await ctx.answer_slack(text=f"deploying {message['text']}", response_type="ephemeral")

        @app.slack("view_submission")
        async def submitted(message, ctx):
            if message["event"]["view"]["callback_id"] == "slow":
                await asyncio.sleep(1.5)
            await ctx.answer_slack(response_action="errors", errors={"name": "too short"})

        self.layer = get_layer(url)
        self.worker = Worker(app, self.layer, poll=0.1)
        self.task = asyncio.ensure_future(self.worker.run())

    async def stop(self) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 10)
        await self.layer.close()


COMMAND = {"team_id": "T0STANDIN", "channel_id": "C1", "user_id": "U1", "text": "now", "trigger_id": "t.1"}
SUBMISSION = {
    "type": "view_submission",
    "team": {"id": "T0STANDIN"},
    "user": {"id": "U1"},
    "view": {"id": "V1", "type": "modal", "callback_id": "form"},
}


async def test_a_worker_answers_inside_the_ack_and_a_late_answer_has_a_clear_fallback(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url, "--ack-wait", "0.7")
    worker = SlackWorker(proc.layer_url)
    try:
        await proc.wait_for_log("connected to default")
        command = await standin.push_envelope("slash_commands", {**COMMAND, "command": "/deploy"})
        modal = await standin.push_envelope("interactive", SUBMISSION)
        await until(lambda: command in standin.acks and modal in standin.acks, what="both acks")
        assert standin.ack_payloads[command] == {"text": "deploying now", "response_type": "ephemeral"}
        assert standin.ack_payloads[modal] == {"response_action": "errors", "errors": {"name": "too short"}}

        late = await standin.push_envelope("slash_commands", {**COMMAND, "command": "/slow"})
        await until(lambda: late in standin.acks, what="the empty ack")
        assert standin.ack_payloads[late] is None
        await until(lambda: standin.responses, what="the answer on the response_url")
        assert standin.responses[0]["ident"] == late
        assert standin.responses[0]["text"] == "deploying now"

        slow_view = {**SUBMISSION, "view": {**SUBMISSION["view"], "callback_id": "slow"}}
        await standin.push_envelope("interactive", slow_view)
        _, failed = await worker.layer.receive(["slack.send.failed"], timeout=10)
        assert failed["message"] == {"ack": {"response_action": "errors", "errors": {"name": "too short"}}}
        assert "a response_action cannot be applied afterwards" in failed["error"]
    finally:
        await worker.stop()
        proc.stop()


EVERY_METHOD = [
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.delete",
    "reactions.add",
    "reactions.remove",
    "views.open",
    "views.publish",
    "views.update",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
]


async def test_slack_send_calls_any_web_api_method_with_all_its_arguments(redis_server, standin):
    proc = SlackProcess(redis_server.url, standin.base_url, "--post-interval", "0.01")
    layer = get_layer(proc.layer_url)
    sends = [
        {
            "channel": "C1",
            "text": "hi",
            "reply_broadcast": True,
            "unfurl_links": False,
            "thread_ts": "1.0",
            "attachments": [{"text": "att"}],
            "metadata": {"event_type": "e", "event_payload": {"k": 1}},
        },
        {"method": "chat.update", "channel": "C1", "ts": "1.5", "text": "edited"},
        {"method": "chat.postEphemeral", "channel": "C1", "user": "U1", "text": "only you"},
        {"method": "chat.delete", "channel": "C1", "ts": "1.5"},
        {"channel": "C1", "reaction": ":tada:", "ts": "1.5"},
        {"method": "reactions.remove", "channel": "C1", "name": "tada", "timestamp": "1.5"},
        {
            "method": "views.open",
            "trigger_id": "t.1",
            "view": {"type": "modal", "title": {"type": "plain_text", "text": "T"}},
        },
        {"method": "views.publish", "user_id": "U1", "view": {"type": "home", "blocks": []}},
        {"method": "views.update", "view_id": "V1", "view": {"type": "modal"}},
        {
            "method": "files.upload_v2",
            "channel": "C1",
            "content": b"\x00\x01file",
            "filename": "a.bin",
            "title": "A",
        },
    ]
    try:
        await proc.wait_for_log("connected to default")
        for message in sends:
            await layer.send("slack.send", message)
        posts = await standin.wait_for_posts(11, timeout=20)
        assert sorted(post["method"] for post in posts) == sorted(EVERY_METHOD)
        by_method = {post["method"]: post for post in posts}
        post = by_method["chat.postMessage"]
        assert (post["reply_broadcast"], post["unfurl_links"], post["thread_ts"]) == (True, False, "1.0")
        assert post["attachments"] == [{"text": "att"}] and post["metadata"]["event_payload"] == {"k": 1}
        assert (by_method["chat.update"]["ts"], by_method["chat.update"]["text"]) == ("1.5", "edited")
        assert by_method["chat.postEphemeral"]["user"] == "U1"
        assert by_method["reactions.add"]["name"] == "tada"
        assert by_method["views.open"]["view"]["type"] == "modal"
        assert by_method["views.publish"]["user_id"] == "U1"
        completed = by_method["files.completeUploadExternal"]
        assert completed["channel_id"] == "C1" and completed["files"][0]["title"] == "A"
        assert list(standin.uploads.values()) == [b"\x00\x01file"]

        await layer.send("slack.send", {"channel": "C1", "text": "x", "blob": b"\x00", "id": "bytes"})
        _, failed = await layer.receive(["slack.send.failed"], timeout=10)
        assert failed["message"]["id"] == "bytes" and "TypeError" in failed["error"]
        await layer.send(
            "slack.send", {"method": "views.open", "view": {"type": "modal"}, "id": "no-trigger"}
        )
        _, failed = await layer.receive(["slack.send.failed"], timeout=10)
        assert failed["message"]["id"] == "no-trigger"
        assert failed["error"] == "Slack refused views.open: invalid_trigger_id"
    finally:
        await layer.close()
        proc.stop()
