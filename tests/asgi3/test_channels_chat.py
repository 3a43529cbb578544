"""A Channels 4 chat project (the tutorial's shape) on Switchroom's layer, served by
``switchroom worker`` behind two ``switchroom http`` processes: sockets on different
servers share a room, Daphne 4 and uvicorn processes on the same Redis join the room too, two
headless Chromium pages chat, an email sent with smtplib reaches the room and is
answered by the project's own Channels consumer, and a Slack message reaches the room."""

import asyncio
import json
import os
import smtplib
import sys
from email.message import EmailMessage

import httpx
import pytest
import websockets

from switchroom.servers.slack.standin import StandIn
from switchroom.shared.redisproc import free_port

from ..chat.test_browser import CHROMIUM_ARGS, chromium_path
from ..email.harness import EmailProcess, RelaySink
from ..processes import ROOT, Process, SwitchroomProcess
from .harness import Deployment

pytestmark = pytest.mark.slow

TARGET = "examples.channels4.chatsite.asgi:application"


@pytest.fixture
def chat(redis_server):
    deployment = Deployment(redis_server.url, TARGET)
    yield deployment
    deployment.stop()


async def recv_json(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_sockets_on_two_servers_share_a_room(chat):
    async with httpx.AsyncClient() as client:
        page = await client.get(chat.url(0, "/chat/lobby/"))
    assert page.status_code == 200 and "ws/chat/lobby/" in page.text
    async with (
        websockets.connect(chat.ws(0, "/ws/chat/lobby/")) as alice,
        websockets.connect(chat.ws(1, "/ws/chat/lobby/")) as bob,
        websockets.connect(chat.ws(1, "/ws/chat/other/")) as carol,
    ):
        await alice.send(json.dumps({"message": "hello from alice"}))
        for ws in (alice, bob):
            assert await recv_json(ws) == {"message": "hello from alice", "who": "anonymous"}
        await bob.send(json.dumps({"message": "hi alice"}))
        assert (await recv_json(alice))["message"] == "hi alice"
        assert (await recv_json(bob))["message"] == "hi alice"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(carol.recv(), 0.5)


# How Daphne 4 and uvicorn are told where to listen.
OTHER_SERVERS = {"daphne": ["-b", "127.0.0.1", "-p"], "uvicorn": ["--host", "127.0.0.1", "--port"]}


async def test_daphne_and_uvicorn_processes_on_the_same_redis_join_the_room(chat):
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "CHAT_LAYER": chat.layer_url}
    others = []
    try:
        for name, args in OTHER_SERVERS.items():
            port = free_port()
            command = [sys.executable, "-m", name, *args, str(port), TARGET]
            others.append(Process(command, name=name, env=environ, port=port))
        room = "/ws/chat/mixed/"
        on_daphne, on_uvicorn = [await websockets.connect(f"ws://127.0.0.1:{p.port}{room}") for p in others]
        async with on_daphne, on_uvicorn, websockets.connect(chat.ws(0, room)) as on_switchroom:
            everyone = (on_switchroom, on_daphne, on_uvicorn)
            texts = ("from switchroom", "from daphne", "from uvicorn")
            for sender, text in zip(everyone, texts, strict=True):
                await sender.send(json.dumps({"message": text}))
                for ws in everyone:
                    assert (await recv_json(ws))["message"] == text
    finally:
        for process in others:
            process.stop()


async def test_email_reaches_the_room_and_is_answered(chat, redis_server):
    relay = RelaySink()
    email = EmailProcess(
        redis_server.url,
        "--domain",
        "chat.example",
        "--relay-host",
        "127.0.0.1",
        "--relay-port",
        str(relay.port),
        layer_url=chat.layer_url,
    )
    try:
        async with websockets.connect(chat.ws(1, "/ws/chat/lobby/")) as ws:
            message = EmailMessage()
            message["From"] = "dora@mail.example"
            message["To"] = "lobby@chat.example"
            message["Subject"] = "news"
            message["Message-ID"] = "<news-1@mail.example>"
            message.set_content("the kettle is on")
            await asyncio.to_thread(_send, email.port, message)
            got = await recv_json(ws, 20)
            assert got == {"message": "email: the kettle is on", "who": "dora@mail.example"}
        (sender, recipients, answer), *_ = await asyncio.to_thread(relay.wait_for, 1)
        assert recipients == ["dora@mail.example"]
        assert answer["Subject"] == "Re: news"
        assert answer["In-Reply-To"] == "<news-1@mail.example>"
        assert answer.get_content().strip() == "posted to lobby: the kettle is on"
    finally:
        email.stop()
        relay.stop()


async def test_slack_message_reaches_the_room_through_a_channels_consumer(chat):
    standin = await StandIn(ack_timeout=1.0).start()
    slack = SwitchroomProcess(
        ["slack", "--layer", chat.layer_url, "--api-url", standin.base_url],
        {"SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-test-secret", "SWITCHROOM_SLACK_APP_TOKEN": "xapp-test-secret"},
    )
    try:
        async with websockets.connect(chat.ws(0, "/ws/chat/slack/")) as ws:
            await asyncio.to_thread(slack.wait_for_log, "connected to default")
            event = {"type": "message", "channel": "C1", "user": "U1", "text": "hi from slack"}
            await standin.push_event(event)
            assert await recv_json(ws, 20) == {"message": "slack: hi from slack", "who": "slack"}
    finally:
        slack.stop()
        await standin.stop()


def _send(port: int, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.send_message(message)


def test_two_browser_pages_on_different_servers_chat(chat):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            alice, bob = browser.new_page(), browser.new_page()
            alice.goto(chat.url(0, "/chat/garden/"))
            bob.goto(chat.url(1, "/chat/garden/"))
            for page in (alice, bob):
                expect(page.locator("#status")).to_have_text("connected", timeout=15_000)
            alice.fill("#text", "roses are red")
            alice.click("#send")
            for page in (alice, bob):
                expect(page.locator("#log li")).to_have_text(["roses are red"], timeout=15_000)
            bob.fill("#text", "violets are blue")
            bob.click("#send")
            for page in (alice, bob):
                expect(page.locator("#log li")).to_have_text(["roses are red", "violets are blue"])
        finally:
            browser.close()
