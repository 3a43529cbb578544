"""A 250 means the mail will be handled: ``switchroom email`` on a real Redis, killed and
restarted around the mail, with an in-process worker and an aiosmtpd relay."""

import asyncio
import os
import signal
import smtplib
import subprocess
import sys
import time

import httpx
import pytest
import redis.asyncio

from switchroom.layers import get_layer
from switchroom.layers.durable_redis import GROUP
from switchroom.shared.redisproc import RedisProcess, free_port
from switchroom.worker.app import App
from switchroom.worker.runner import Worker

from .harness import ROOT, EmailProcess, RelaySink

pytestmark = pytest.mark.slow

OLDEST = "switchroom_email_unread_oldest_seconds "


def send(
    port: int, subject: str, sender: str = "ann@sender.example", to: tuple[str, ...] = ("room@example.com",)
):
    """One message over SMTP; returns once the server answered the end of DATA (250)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(
            sender, list(to), f"Subject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\nhi\r\n".encode()
        )


class RoomWorker:
    """A real worker (in this process) whose app records every mail to room@example.com."""

    def __init__(self, url: str) -> None:
        self.seen: list[tuple[str, str, int, str]] = []
        app = App()

        @app.email("room@example.com")
        async def room(message, ctx):
            self.seen.append((message["subject"], ctx.idempotency_key, ctx.attempt, message["mail_from"]))

        self.layer = get_layer(url)
        self.worker = Worker(app, self.layer, poll=0.1)
        self.task = asyncio.ensure_future(self.worker.run())

    async def wait_for(self, count: int, timeout: float = 20) -> list:
        async with asyncio.timeout(timeout):
            while len(self.seen) < count:
                await asyncio.sleep(0.05)
        return self.seen

    async def stop(self) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 10)
        await self.layer.close()


@pytest.fixture
def relay():
    sink = RelaySink()
    yield sink
    sink.stop()


async def test_redis_killed_right_after_a_250_still_delivers_the_mail_exactly_once():
    with RedisProcess(persistent=True) as redis:
        proc = EmailProcess(redis.url, "--domain", "example.com")
        worker = None
        try:
            await asyncio.to_thread(send, proc.port, "survivor")
            redis.stop(kill=True)
            redis.start()
            worker = RoomWorker(proc.layer_url)
            assert await worker.wait_for(1) == [("survivor", "<survivor@x>", 1, "ann@sender.example")]
            await asyncio.sleep(1.5)
            assert len(worker.seen) == 1
            assert "DURABLE CHANNELS AT RISK" not in proc.log_text()
        finally:
            if worker is not None:
                await worker.stop()
            proc.stop()


async def test_mail_waits_for_a_worker_longer_than_any_expiry(redis_server):
    proc = EmailProcess(redis_server.url, "--domain", "example.com", layer_query="&expiry=1")
    worker = None
    try:
        await asyncio.to_thread(send, proc.port, "patient")
        await asyncio.sleep(3)
        worker = RoomWorker(proc.layer_url)
        assert (await worker.wait_for(1))[0][0] == "patient"
    finally:
        if worker is not None:
            await worker.stop()
        proc.stop()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
async def test_an_outbound_retry_survives_the_server_stopping_during_its_back_off(redis_server, relay, how):
    relay.handler.busy = 1
    args = ["--domain", "example.com", "--relay-host", "127.0.0.1", "--relay-port", str(relay.port)]
    args += ["--retry-backoff", "4", "--retry-for", "300"]
    proc = EmailProcess(redis_server.url, *args, layer_query="&visibility_timeout=1")
    layer = get_layer(proc.layer_url)
    again = None
    try:
        await layer.send("email.send", {"to": ["bob@remote.example"], "subject": "resumed", "text": "x"})
        await asyncio.to_thread(proc.wait_for_log, "retrying in 4.0 s")
        os.kill(proc.proc.pid, how)
        assert proc.proc.wait(20) == (0 if how == signal.SIGTERM else -signal.SIGKILL)
        if how == signal.SIGTERM:
            assert "1 outbound emails not delivered yet stay queued on email.send" in proc.log_text()
        assert relay.handler.messages == []
        again = EmailProcess(redis_server.url, *args, layer_url=proc.layer_url)
        (_, rcpts, delivered), *more = await asyncio.to_thread(relay.wait_for, 1, 30)
        assert (rcpts, delivered["Subject"], more) == (["bob@remote.example"], "resumed", [])
        # The retry state travelled with the entry: the back-off was kept, not restarted.
        first, second = relay.handler.attempts
        assert second - first >= 3.5
        await asyncio.sleep(2)
        assert len(relay.handler.messages) == 1
        assert await layer.receive(["email.send.failed"], timeout=0.1) == (None, None)
    finally:
        await layer.close()
        proc.stop()
        if again is not None:
            again.stop()


async def test_a_mail_the_relay_took_without_its_answer_arriving_comes_again_with_the_same_message_id(
    redis_server, relay
):
    relay.handler.hold = 8
    args = ["--domain", "example.com", "--relay-host", "127.0.0.1", "--relay-port", str(relay.port)]
    proc = EmailProcess(redis_server.url, *args, layer_query="&visibility_timeout=1")
    layer = get_layer(proc.layer_url)
    again = None
    try:
        await layer.send("email.send", {"to": ["bob@remote.example"], "subject": "twice", "text": "x"})
        # The relay has the message; the server dies before the relay's 250 reaches it.
        await asyncio.to_thread(relay.wait_for, 1)
        os.kill(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(20)
        relay.handler.hold = 0
        again = EmailProcess(redis_server.url, *args, layer_url=proc.layer_url)
        first, second = await asyncio.to_thread(relay.wait_for, 2, 30)
        assert first[2]["Subject"] == second[2]["Subject"] == "twice"
        assert first[2]["Message-ID"] == second[2]["Message-ID"], "a duplicate the receiver can recognise"
    finally:
        await layer.close()
        proc.stop()
        if again is not None:
            again.stop()


async def test_unread_mail_is_reported_as_it_ages_then_bounced_from_the_null_sender(redis_server, relay):
    proc = EmailProcess(
        redis_server.url,
        *("--domain", "example.com", "--hostname", "mx.example.com"),
        *("--relay-host", "127.0.0.1", "--relay-port", str(relay.port)),
        *("--max-queue-age", "3s", "--queue-warn-after", "1s", "--queue-check-interval", "0.3"),
    )
    layer = get_layer(proc.layer_url)
    try:
        await asyncio.to_thread(send, proc.port, "unread")
        await asyncio.to_thread(send, proc.port, "unread-bounce", "")
        await asyncio.to_thread(proc.wait_for_log, "2 entries wait on email.receive (0 being handled)")
        [(mail_from, rcpts, dsn)] = await asyncio.to_thread(relay.wait_for, 1, 20)
        assert (mail_from, rcpts) == ("<>", ["ann@sender.example"])
        assert dsn.get_content_type() == "multipart/report"
        assert dsn["Auto-Submitted"] == "auto-replied"
        _, status, headers = dsn.iter_parts()
        per_message, per_recipient = status.get_payload()
        assert per_message["Reporting-MTA"] == "dns; mx.example.com"
        assert per_recipient["Final-Recipient"] == "rfc822; room@example.com"
        assert (per_recipient["Action"], per_recipient["Status"]) == ("failed", "4.4.7")
        assert "Subject: unread" in headers.get_content()
        dead = [(await layer.receive(["email.receive.failed"], timeout=10))[1] for _ in range(2)]
        assert sorted(d["message"]["mail_from"] for d in dead) == ["", "ann@sender.example"]
        assert all("not read from email.receive within 3 s" in d["error"] for d in dead)
        assert all("raw" in d["message"] for d in dead)
        await asyncio.to_thread(proc.wait_for_log, "its sender is empty (a bounce is never bounced)")
        await asyncio.sleep(1)
        assert len(relay.handler.messages) == 1, "no bounce to the null sender"
        assert (await layer.durable.depth("email.receive")).entries == 0
    finally:
        await layer.close()
        proc.stop()


async def test_a_bounce_is_never_sent_to_the_null_sender(redis_server, relay):
    args = ["--domain", "example.com", "--relay-host", "127.0.0.1", "--relay-port", str(relay.port)]
    proc = EmailProcess(redis_server.url, *args)
    worker = RoomWorker(proc.layer_url)
    try:
        # A bounce (MAIL FROM:<>) for a recipient no route takes, and one the room takes.
        await asyncio.to_thread(send, proc.port, "bounce", "", ("room@example.com", "nobody@example.com"))
        assert await worker.wait_for(1) == [("bounce", "<bounce@x>", 1, "")]
        # A mail with a real sender to the same unknown recipient is bounced (the control).
        await asyncio.to_thread(send, proc.port, "normal", "ann@sender.example", ("nobody@example.com",))
        [(mail_from, rcpts, _)] = await asyncio.to_thread(relay.wait_for, 1)
        assert (mail_from, rcpts) == ("<>", ["ann@sender.example"])
        # A worker asking to mail the null address gets a dead letter, not a delivery.
        await worker.layer.send("email.send", {"to": ["<>"], "text": "x", "id": "to-null"})
        _, failed = await worker.layer.receive(["email.send.failed"], timeout=10)
        assert failed["message"]["id"] == "to-null" and "null address" in failed["error"]
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as client:
            client.ehlo()
            client.mail("ann@sender.example")
            assert client.rcpt("<>")[0] == 553
        await asyncio.sleep(1)
        assert len(relay.handler.messages) == 1
        assert await worker.layer.receive(["email.send.failed"], timeout=0.1) == (None, None)
    finally:
        await worker.stop()
        proc.stop()


async def test_a_redis_that_does_not_persist_is_named_at_start_or_refused(redis_server):
    proc = EmailProcess(redis_server.url, "--domain", "example.com")
    try:
        assert "DURABLE CHANNELS AT RISK: redis at" in proc.log_text()
        assert "runs without AOF (appendonly no)" in proc.log_text()
    finally:
        proc.stop()
    url = f"{redis_server.url}?prefix=strict&persistence=require"
    command = [sys.executable, "-m", "switchroom.cli", "email", "--port", "0", "--domain", "x.example"]
    done = subprocess.run([*command, "--layer", url], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "cannot start: durable channels would not survive a restart" in done.stderr


async def test_mail_nobody_read_for_ten_minutes_is_delivered_when_a_worker_starts(redis_server):
    """Ten minutes without waiting them: the entry the server made for a mail is moved back
    eleven minutes in its stream (its id is its time), so the server's watch sees mail
    that has waited that long, under the default --max-queue-age."""
    metrics = free_port()
    proc = EmailProcess(
        redis_server.url,
        *("--domain", "example.com", "--queue-check-interval", "0.3", "--metrics-port", str(metrics)),
    )
    layer = get_layer(proc.layer_url)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    worker = None
    try:
        await asyncio.to_thread(send, proc.port, "waited")
        stream = layer.durable.key("email.receive")
        [(_, fields)] = await client.xrange(stream)
        old = f"{int((time.time() - 660) * 1000)}-0"
        async with client.pipeline(transaction=True) as backdate:
            backdate.delete(stream).xadd(stream, fields, id=old).xgroup_create(stream, GROUP, id="0")
            await backdate.execute()
        await asyncio.to_thread(proc.wait_for_log, "1 entries wait on email.receive (0 being handled)")
        assert "the oldest for 11 min" in proc.log_text()
        async with httpx.AsyncClient() as http:
            scraped = (await http.get(f"http://127.0.0.1:{metrics}/metrics")).text
        [age] = [line.split()[1] for line in scraped.splitlines() if line.startswith(OLDEST)]
        assert float(age) >= 660
        worker = RoomWorker(proc.layer_url)
        assert await worker.wait_for(1) == [("waited", "<waited@x>", 1, "ann@sender.example")]
        assert "bounced" not in proc.log_text() and "dead letter" not in proc.log_text()
    finally:
        if worker is not None:
            await worker.stop()
        await client.aclose()
        await layer.close()
        proc.stop()
