"""What the health checks and metrics ask of a layer, on every backend: ``ping``,
``queue_lengths``, and the counts of sends, receives and refusals in ``layer.stats``."""

import asyncio
import logging

import pytest

from switchroom.layers import ChannelFull, Janitor, LayerUnavailable, get_layer
from switchroom.layers.outage import Outage
from switchroom.shared.messages import EMAIL_RECEIVE
from switchroom.shared.metrics import queue_label
from switchroom.worker.app import App
from switchroom.worker.runner import Worker


async def test_ping_and_queue_lengths(make_layer):
    layer = make_layer(capacity=3)
    await layer.ping()
    reply = await layer.new_channel("ops.reply!")
    await layer.send_many([("ops.jobs", {"n": n}) for n in range(2)] + [(reply, {"n": 9})])
    lengths = await layer.queue_lengths(["ops.jobs", "ops.idle", reply])
    assert lengths == {"ops.jobs": 2, "ops.idle": 0, reply: 1}
    await layer.receive_many(["ops.jobs"], 10, timeout=1)
    assert (await layer.queue_lengths(["ops.jobs"]))["ops.jobs"] == 0


async def test_stats_count_sends_receives_and_refusals(make_layer):
    layer = make_layer(capacity=2)
    results = await layer.send_many([("ops.full", {"n": n}) for n in range(3)])
    assert isinstance(results[2], ChannelFull)
    assert len(await layer.receive_many(["ops.full"], 10, timeout=1)) == 2
    assert layer.stats.counts["sent"] == 2
    assert layer.stats.counts["received"] == 2
    assert layer.stats.errors["send", "ChannelFull"] == 1


async def test_a_redis_that_is_gone_fails_ping_and_counts_the_failed_receive(redis_process):
    layer = get_layer(redis_process.url)
    try:
        await layer.ping()
        redis_process.stop(kill=True)
        with pytest.raises(LayerUnavailable):
            await layer.ping()
        with pytest.raises(LayerUnavailable):
            await layer.receive_many(["ops.jobs"], 1, timeout=0.1)
        assert layer.stats.errors["receive", "LayerUnavailable"] == 1
        assert layer.stats.counts["outages"] == 1
    finally:
        await layer.close()


def test_an_outage_is_logged_once_and_its_end_once(caplog):
    outage = Outage("redis at h:1/0")
    with caplog.at_level(logging.INFO, logger="switchroom.layers"):
        outage.answered()
        for _ in range(5):
            outage.failed(LayerUnavailable("redis at h:1/0 is unavailable: refused"))
        outage.answered()
        outage.answered()
    assert [r.getMessage() for r in caplog.records] == [
        "redis at h:1/0 is unavailable: refused (retrying quietly; one line follows when it answers again)",
        caplog.records[1].getMessage(),
    ]
    assert caplog.records[1].getMessage().startswith("redis at h:1/0 answers again after ")
    assert caplog.records[1].getMessage().endswith("(5 failed attempts)")


@pytest.mark.parametrize(
    ("channel", "label"),
    [
        ("http.request", "http.request"),
        ("http.response.0a1b2c3d4e5f!", "http.response!"),
        ("websocket.send.0a1b2c3d4e5f!", "websocket.send!"),
        ("solo.ab12!", "solo!"),
        ("5af2fe74f27d!", "inbox!"),
    ],
)
def test_process_queues_are_labelled_without_their_process_id(channel, label):
    assert queue_label(channel) == label


async def test_a_durable_channel_watcher_adds_no_warning_per_look_during_an_outage(redis_process, caplog):
    """The layer logs the outage once; the janitor of email.receive / slack.event, which
    looks every interval, must not add a warning per look while it lasts."""
    layer = get_layer(redis_process.url)
    janitor = Janitor(layer.durable, "ops.durable", 60.0, lambda deliveries: asyncio.sleep(0), interval=0.05)
    try:
        await layer.ping()
        redis_process.stop(kill=True)
        with caplog.at_level(logging.DEBUG, logger="switchroom"):
            janitor.start()
            await asyncio.sleep(0.6)
            await janitor.stop()
    finally:
        await layer.close()
    looks = [r for r in caplog.records if r.getMessage().startswith("watching ops.durable failed")]
    assert len(looks) >= 2, "the janitor kept looking"
    assert all(r.levelno == logging.DEBUG for r in looks), [r.levelname for r in looks]
    outages = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "is unavailable" in r.getMessage()
    ]
    assert len(outages) == 1, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_renewals_and_acknowledgements_add_no_warning_per_try_during_an_outage(redis_process, caplog):
    """A worker holding durable entries renews them, and retries its acknowledgements,
    every few tenths of a second while Redis is away: the outage is one warning, not one
    per try."""
    layer = get_layer(f"{redis_process.url}?visibility_timeout=0.3")
    app = App()

    @app.email("desk@ops.test")
    async def desk(message, ctx):
        pass

    worker = Worker(app, layer, poll=0.05)
    try:
        await layer.send(EMAIL_RECEIVE, {"n": 1})
        await layer.send(EMAIL_RECEIVE, {"n": 2})
        first, second = await layer.durable.read([EMAIL_RECEIVE], 2, timeout=1)
        await worker.start()
        worker.leases.hold(first)
        redis_process.stop(kill=True)
        with caplog.at_level(logging.DEBUG, logger="switchroom"):
            worker._acks.append(second)
            worker._ack_ready.set()
            await asyncio.sleep(1.0)
        await asyncio.wait_for(worker.stop(), 10)
    finally:
        await layer.close()
    tries = [
        r for r in caplog.records if r.getMessage().startswith(("could not renew", "could not acknowledge"))
    ]
    assert {r.getMessage().split(" ")[2] for r in tries} == {"renew", "acknowledge"}
    assert [r.levelname for r in tries if r.levelno > logging.DEBUG] == []
