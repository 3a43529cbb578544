"""Durable channels in real worker processes: an entry is acknowledged only after its
consumer returned, goes to another worker when its worker dies or its consumer fails,
and comes back at once when a worker stops before finishing it."""

import asyncio
import os
import signal
import time
import uuid

import pytest

from .harness import WorkerProcess
from .test_worker_process import email

pytestmark = pytest.mark.slow

APP = "tests.worker.apps:app"


def deployment(redis_server, options: str) -> str:
    """A layer URL on a fresh key prefix with these layer options, for workers to share."""
    return f"{redis_server.url}?prefix=wt{uuid.uuid4().hex[:10]}&{options}"


async def wait_for(layer, channel, timeout=20):
    _, message = await layer.receive([channel], timeout=timeout)
    assert message is not None, f"nothing on {channel}"
    return message


async def test_a_worker_killed_mid_message_has_it_redelivered_to_another(redis_server):
    url = deployment(redis_server, "visibility_timeout=1")
    first = WorkerProcess(url, APP, env={"SLOW_MAIL": "1"})
    layer = first.layer()
    second = None
    try:
        await layer.send("email.receive", email(["slow@example.com"]))
        started = await wait_for(layer, "test.started")
        assert (started["pid"], started["attempt"], started["key"]) == (first.proc.pid, 1, started["key"])
        second = WorkerProcess(url, APP)
        os.kill(first.proc.pid, signal.SIGKILL)
        handled = await wait_for(layer, "test.handled")
        assert handled["pid"] == second.proc.pid
        assert (handled["attempt"], handled["key"]) == (2, started["key"])
        await asyncio.sleep(1.5)
        assert (await layer.durable.depth("email.receive")).entries == 0, "acknowledged once handled"
        assert await layer.receive(["test.handled"], timeout=2.5) == (None, None), "handled once"
    finally:
        await layer.close()
        first.stop()
        if second is not None:
            second.stop()


async def test_a_failing_consumer_is_retried_and_one_that_always_fails_is_a_dead_letter(redis_server):
    url = deployment(redis_server, "visibility_timeout=0.5&max_deliveries=2")
    worker = WorkerProcess(url, APP)
    layer = worker.layer()
    try:
        await layer.send("email.receive", email(["broken@example.com"], message_id="<broken@x>"))
        failed = await wait_for(layer, "email.receive.failed")
        assert failed["message"]["rcpt_to"] == ["broken@example.com"]
        assert failed["attempts"] == 3 and "not acknowledged after 2 deliveries" in failed["error"]
        assert worker.wait_for_log("is left for a retry")
    finally:
        await layer.close()
        worker.stop()
    worker = WorkerProcess(url.replace("max_deliveries=2", "max_deliveries=5"), APP)
    layer = worker.layer()
    try:
        await layer.send("email.receive", email(["flaky@example.com"]))
        handled = await wait_for(layer, "test.handled")
        assert handled["attempt"] == 3
    finally:
        await layer.close()
        worker.stop()


async def test_a_stopping_worker_gives_back_what_it_did_not_finish(redis_server):
    url = deployment(redis_server, "visibility_timeout=60")
    slow = WorkerProcess(url, APP, "--grace", "0.3", env={"SLOW_MAIL": "1"})
    layer = slow.layer()
    other = None
    try:
        await layer.send("email.receive", email(["slow@example.com"]))
        started = await wait_for(layer, "test.started")
        assert started["pid"] == slow.proc.pid
        assert slow.stop() == 0
        assert "giving back 1 durable entries" in slow.log_text()
        began = time.monotonic()
        other = WorkerProcess(url, APP)
        handled = await wait_for(layer, "test.handled")
        # Long before the 60 s visibility timeout, and not counted as a failed delivery.
        assert handled["pid"] == other.proc.pid and handled["attempt"] == 1
        assert time.monotonic() - began < 30
    finally:
        await layer.close()
        slow.stop()
        if other is not None:
            other.stop()


async def test_a_mail_delivered_again_is_bounced_once(redis_server):
    # One recipient's consumer always fails (so the entry comes back), another has no route.
    url = deployment(redis_server, "visibility_timeout=0.5&max_deliveries=2")
    worker = WorkerProcess(url, APP)
    layer = worker.layer()
    try:
        await layer.send("email.receive", email(["broken@example.com", "nobody@example.com"]))
        failed = await wait_for(layer, "email.receive.failed")
        assert failed["attempts"] == 3
        [(_, bounce)] = await layer.receive_many(["email.send"], 10, timeout=2)
        assert bounce["to"] == ["alice@remote.example"] and bounce["mail_from"] == ""
        assert bounce["dsn"]["recipients"][0]["address"] == "nobody@example.com"
        assert worker.log_text().count("no route for nobody@example.com; bouncing") == 2
        assert "was sent on an earlier delivery" in worker.log_text()
    finally:
        await layer.close()
        worker.stop()
