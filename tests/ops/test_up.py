"""``switchroom up``: each part starts once what it needs is ready, "open" comes once every
part is ready, a part that fails is named, and hints are given only for the routes the app
has."""

import json
import os
import re
import signal
import smtplib
import socket

import httpx
import pytest

from switchroom.shared.redisproc import free_port, free_ports
from switchroom.up import example_address

from ..chat.harness import UpProcess
from ..processes import run_switchroom

pytestmark = pytest.mark.slow


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_parts_start_in_order_and_a_failed_part_is_named():
    up = UpProcess("--processes", "--log-format", "json")
    try:
        entries = [json.loads(line) for line in up.log_text().splitlines()]
        first = {}
        for index, entry in enumerate(entries):
            key = (entry.get("part") or entry["role"], entry["message"].split(" ")[0])
            first.setdefault(key, index)
        opened = next(i for i, e in enumerate(entries) if e["message"].startswith("open http://"))
        for part, word in [
            ("worker1", "worker"),
            ("worker2", "worker"),
            ("http1", "listening"),
            ("http2", "listening"),
            ("email", "listening"),
            ("slack", "connected"),
        ]:
            assert first[part, word] < opened, (part, word)
        assert first["standin", "Slack"] < first["slack", "connected"]
        assert not any("cannot reach Slack" in e["message"] for e in entries)
        worker1 = next(e["pid"] for e in entries if e.get("part") == "worker1" and "pid" in e)
        os.kill(worker1, signal.SIGKILL)
        assert up.proc.wait(30) == 1
    finally:
        up.stop()
    lines = [json.loads(line) for line in up.log_text().splitlines()]
    assert all("part" in e or e.get("role") == "up" for e in lines)
    assert any(e["message"] == "stopping: worker1 was killed by SIGKILL" for e in lines)


def test_hints_only_for_the_routes_the_app_has():
    metrics = free_port()
    up = UpProcess("--metrics-port", str(metrics), app="tests.ops.apps:http_only")
    try:
        output = up.log_text()
        assert httpx.get(f"http://127.0.0.1:{metrics}/readyz").status_code == 200
        assert "email:" not in output and "slack:" not in output and "room@" not in output
        assert not accepts(up.email_port) and not accepts(up.standin_port)
        assert httpx.get(up.url + "/").text == "hello"
    finally:
        assert up.stop() == 0


def test_an_email_route_gets_its_own_hint_and_domain():
    up = UpProcess(app="tests.ops.apps:mail_desk")
    try:
        output = up.log_text()
        assert f"email: mail to help@acme.test on 127.0.0.1:{up.email_port} reaches the app" in output
        assert "slack:" not in output and not accepts(up.standin_port)
        with smtplib.SMTP("127.0.0.1", up.email_port) as client:
            assert client.sendmail("a@example.com", ["help@acme.test"], "Subject: hi\r\n\r\nhelp") == {}
    finally:
        assert up.stop() == 0


def test_the_chat_app_gets_its_email_and_slack_hints():
    up = UpProcess()
    try:
        output = up.log_text()
        assert f"email: mail to room@chat.localhost on 127.0.0.1:{up.email_port} reaches the app" in output
        assert f"http://127.0.0.1:{up.standin_port}/_standin/event" in output and '"C0CHATROOM"' in output
        assert output.index("slack:") < output.index("open http://")
    finally:
        assert up.stop() == 0


def test_a_part_that_cannot_start_is_named():
    """The email server refuses its settings (a message size its layer cannot carry)."""
    http_port, email_port = free_ports(2)
    result = run_switchroom(
        [
            "up", "tests.ops.apps:mail_desk", "--processes", "--http-port", str(http_port),
            "--email-port", str(email_port), "--metrics-port", "0",
        ],
        env={"SWITCHROOM_EMAIL_MAX_MESSAGE_SIZE": str(10**10)},
    )  # fmt: skip
    assert result.returncode == 2
    # One stream, in order: the parts' lines and up's own, all on stderr.
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert "cannot start: email exited with status 2 before it was ready" in lines[-1]
    assert any(line.startswith("email   | ") and "lower --max-message-size" in line for line in lines[:-1])
    assert "Traceback" not in result.stderr


def test_a_part_that_cannot_start_in_one_process_is_named():
    """The same refusal with every part on one loop: a line naming the part, no traceback."""
    http_port, email_port = free_ports(2)
    result = run_switchroom(
        [
            "up", "tests.ops.apps:mail_desk", "--http-port", str(http_port), "--email-port", str(email_port),
            "--metrics-port", "0",
        ],
        env={"SWITCHROOM_EMAIL_MAX_MESSAGE_SIZE": str(10**10)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot start: email: a message of --max-message-size 10000000000 bytes" in last


def test_a_bad_relay_address_is_refused_before_anything_starts():
    result = run_switchroom(["up", "tests.ops.apps:mail_desk", "--relay", "127.0.0.1:nope"])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--relay '127.0.0.1:nope': give host:port" in result.stderr


@pytest.mark.parametrize(
    ("pattern", "example"),
    [
        ("room@*", "room@chat.localhost"),
        ("@acme.test", "anyone@acme.test"),
        ("*", "anyone@chat.localhost"),
        ("support-*@acme.test", "support-x@acme.test"),
        (re.compile(r"t-\d+@acme\.test"), r"an address matching t-\d+@acme\.test"),
    ],
)
def test_an_email_hint_names_an_address_the_route_accepts(pattern, example):
    assert example_address(pattern, "chat.localhost") == example
