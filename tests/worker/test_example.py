"""The documented example app, tested as docs/worker.md shows with ``TestClient``: web
page, an HTTP post to a room that a WebSocket listener hears, email into the room and its
reply, and Slack into the lobby and a mention answered in its thread."""

from examples.everything import app
from switchroom.testing import TestClient


async def test_example_app_end_to_end():
    async with TestClient(app) as client:
        page = await client.get("/rooms/tea")
        assert page.status == 200 and "/chat/tea" in page.text

        async with client.websocket("/chat/tea") as listener, client.websocket("/chat/lobby") as lobby:
            posted = await client.post("/rooms/tea/messages", body="hello")
            assert (posted.status, posted.json()) == (201, {"room": "tea", "delivered_to": 1})
            assert await listener.receive_text() == "[http] hello"

            await listener.send_text("from the page")
            assert await listener.receive_text() == "from the page"

            await client.email("bob@remote.example", ["tea@chat.example.com"], subject="biscuits", text="?")
            assert await listener.receive_text() == "[mail from bob@remote.example] biscuits"
            reply = await client.sent("email.send")
            assert reply["to"] == ["bob@remote.example"] and reply["subject"] == "Re: biscuits"

            await client.slack_event({"type": "message", "channel": "C0LOBBY", "user": "U1", "text": "hi"})
            assert await lobby.receive_text() == "[slack <@U1>] hi"
            await client.slack_event(
                {"type": "app_mention", "channel": "C9", "user": "U1", "text": "x", "ts": "7.1"}
            )
            post = await client.sent("slack.send")
            assert (post["channel"], post["thread_ts"]) == ("C9", "7.1")
            assert post["text"].startswith("Join the lobby")
