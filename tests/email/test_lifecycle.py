"""Sessions of ``switchroom email`` from start to stop: timeouts, line limits, STARTTLS
requirements, and a graceful stop on SIGTERM that lets a message in progress finish."""

import asyncio
import signal
import smtplib
import socket
import ssl
import subprocess
import sys

import pytest

from switchroom.layers import get_layer
from switchroom.servers.email import EmailServer, Settings
from switchroom.shared.redisproc import RedisProcess

from .harness import ROOT, EmailProcess, receive_email, self_signed

pytestmark = pytest.mark.slow

MESSAGE = b"From: ann@sender.example\r\nTo: room@example.com\r\nSubject: in flight\r\n\r\nbody\r\n"


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


async def test_sigterm_lets_the_message_in_progress_finish(redis_server):
    proc = EmailProcess(redis_server.url, "--domain", "example.com", "--shutdown-grace", "30")
    layer = get_layer(proc.layer_url)
    busy = smtplib.SMTP("127.0.0.1", proc.port, timeout=20)
    idle = smtplib.SMTP("127.0.0.1", proc.port, timeout=20)
    try:
        idle.ehlo()
        busy.ehlo()
        busy.mail("ann@sender.example")
        busy.rcpt("room@example.com")
        assert busy.docmd("DATA")[0] == 354
        busy.send(MESSAGE[:20])
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_for_log("stopping")
        # Idle sessions are told to go; new connections are no longer accepted.
        assert idle.getreply()[0] == 421
        with pytest.raises(OSError):
            smtplib.SMTP("127.0.0.1", proc.port, timeout=5)
        # The message being sent is still taken, put on the layer, and answered 250.
        busy.send(MESSAGE[20:] + b".\r\n")
        assert busy.getreply()[0] == 250
        assert busy.getreply()[0] == 421
        assert proc.proc.wait(20) == 0
        message = await receive_email(layer)
        assert message["subject"] == "in flight"
    finally:
        busy.close()
        idle.close()
        await layer.close()
        proc.stop()


async def test_sessions_still_busy_after_the_grace_period_are_closed(redis_server):
    proc = EmailProcess(redis_server.url, "--domain", "example.com", "--shutdown-grace", "0.2")
    try:
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=20) as client:
            client.ehlo()
            assert client.mail("a@sender.example")[0] == 250
            proc.proc.send_signal(signal.SIGTERM)
            assert client.getreply()[0] == 421
        assert proc.proc.wait(20) == 0
        assert "still open after" in proc.log_text()
    finally:
        proc.stop()


async def test_idle_clients_are_disconnected_after_the_command_timeout(redis_server):
    proc = EmailProcess(redis_server.url, "--domain", "example.com", "--command-timeout", "0.3")
    try:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=20) as sock:
            assert read_to_eof(sock).startswith(b"220 ")
    finally:
        proc.stop()


async def test_a_session_that_lasts_too_long_gets_421(redis_server):
    proc = EmailProcess(
        redis_server.url, "--domain", "example.com", "--session-timeout", "0.3", "--command-timeout", "60"
    )
    try:
        with socket.create_connection(("127.0.0.1", proc.port), timeout=20) as sock:
            assert b"421 4.4.2" in read_to_eof(sock)
    finally:
        proc.stop()


async def test_long_lines_and_bare_line_feeds_get_500_and_nothing_reaches_the_layer(redis_server):
    proc = EmailProcess(redis_server.url, "--domain", "example.com", "--max-line-length", "200")
    layer = get_layer(proc.layer_url)
    try:
        for body in (b"x" * 199 + b"\r\n", b"one\ntwo\n" * 40):
            with smtplib.SMTP("127.0.0.1", proc.port, timeout=20) as client:
                with pytest.raises(smtplib.SMTPDataError) as caught:
                    client.sendmail("a@sender.example", ["room@example.com"], b"Subject: x\r\n\r\n" + body)
                assert caught.value.smtp_code == 500
                # The session goes on: a good message after the bad one is taken.
                client.sendmail("a@sender.example", ["room@example.com"], b"Subject: good\r\n\r\nok\r\n")
            message = await receive_email(layer)
            assert message["subject"] == "good"
    finally:
        await layer.close()
        proc.stop()


async def test_require_starttls_and_tls_sessions_count_once(redis_server, tmp_path):
    cert, key = self_signed(tmp_path)
    proc = EmailProcess(
        redis_server.url,
        "--domain",
        "example.com",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--require-starttls",
        "--max-connections-per-ip",
        "2",
    )
    layer = get_layer(proc.layer_url)
    context = ssl.create_default_context(cafile=str(cert))
    try:
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=20) as client:
            client.ehlo()
            assert client.mail("a@sender.example")[0] == 530
        # More TLS sessions, one after the other, than the per-address limit: none is refused.
        for number in range(4):
            with smtplib.SMTP("127.0.0.1", proc.port, timeout=20) as client:
                client.starttls(context=context)
                message = b"Subject: %d\r\n\r\nx\r\n" % number
                client.sendmail("a@sender.example", ["room@example.com"], message)
        subjects = [(await receive_email(layer))["subject"] for _ in range(4)]
        assert subjects == ["0", "1", "2", "3"]
    finally:
        await layer.close()
        proc.stop()


def test_a_layer_that_cannot_hold_the_biggest_message_is_refused_at_start():
    command = [sys.executable, "-m", "switchroom.cli", "email", "--port", "0", "--domain", "x.example"]
    small = ["--layer", "memory://?durable_max_message_size=2000000"]
    done = subprocess.run([*command, *small], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert "cannot start" in done.stderr and "does not fit in a durable entry" in done.stderr
    layer = get_layer("memory://?durable_max_message_size=2000000")
    EmailServer(layer, Settings(domains=("x.example",), max_message_size=1_000_000))


async def test_the_server_runs_embedded_on_the_callers_loop():
    layer = get_layer("memory://")
    server = EmailServer(layer, Settings(port=0, domains=("example.com",)))
    await server.start()
    try:
        with_data = b"Subject: embedded\r\n\r\nhi\r\n"

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
                client.sendmail("a@sender.example", ["room@example.com"], with_data)

        await asyncio.to_thread(send)
        message = await receive_email(layer, timeout=5)
        assert message["subject"] == "embedded"
        assert message["raw"] == with_data
    finally:
        await server.stop()
        await layer.close()


async def test_sigterm_with_redis_gone_ends_within_the_grace_and_loses_no_accepted_mail():
    # A relay that takes the connection and never answers holds a delivery in progress.
    relay = socket.create_server(("127.0.0.1", 0))
    relay.settimeout(20)
    # Every write on disk before its reply: a kill -9 of Redis itself then loses nothing.
    redis = RedisProcess(persistent=True, extra_args=("--appendfsync", "always")).start()
    proc = EmailProcess(
        redis.url,
        "--domain",
        "example.com",
        "--relay-host",
        "127.0.0.1",
        "--relay-port",
        str(relay.getsockname()[1]),
        "--relay-timeout",
        "120",
        "--shutdown-grace",
        "1",
    )
    layer = get_layer(proc.layer_url)
    busy = smtplib.SMTP("127.0.0.1", proc.port, timeout=20)
    try:
        with smtplib.SMTP("127.0.0.1", proc.port, timeout=20) as client:
            client.sendmail("ann@sender.example", ["room@example.com"], MESSAGE)
        await layer.send("email.send", {"to": ["bob@remote.example"], "subject": "stuck", "text": "x"})
        stuck, _ = relay.accept()
        busy.ehlo()
        busy.mail("ann@sender.example")
        busy.rcpt("room@example.com")
        assert busy.docmd("DATA")[0] == 354
        busy.send(MESSAGE[:20])
        redis.stop(kill=True)
        proc.proc.send_signal(signal.SIGTERM)
        # Well before the relay's timeout: the stuck delivery is abandoned, not waited for.
        assert proc.proc.wait(15) == 0
        # The message never finished gets 421, never 250.
        assert busy.getreply()[0] == 421
        assert "could not give back 1 outbound emails" in proc.log_text()
        redis.start()
        await layer.close()
        # The accepted message and the undelivered one are still queued.
        layer = get_layer(proc.layer_url)
        message = await receive_email(layer)
        assert message is not None and message["subject"] == "in flight"
        assert (await layer.durable.depth("email.send")).entries == 1
        stuck.close()
    finally:
        busy.close()
        relay.close()
        await layer.close()
        proc.stop()
        redis.stop()
