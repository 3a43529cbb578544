"""The chat room: a web page with a live message list, bridged to email and Slack.

- ``GET /`` serves the page; its WebSocket joins the room's group, and what is typed is
  broadcast to every open page, whichever server process holds it.
- An email to ``room@<domain>`` appears in the room; the page can answer it by email
  (threaded with In-Reply-To) with the reply button next to it.
- A Slack message in the bridged channel appears in the room, and what is typed in the
  page is posted to that channel.

Run it with ``switchroom up examples.chat.app:app``. ``CHAT_SLACK_CHANNEL`` names the
bridged Slack channel (default ``C0CHATROOM``).
"""

import json
import os
from pathlib import Path
from typing import Any

from switchroom.worker.app import App

ROOM = "room"
SLACK_CHANNEL = os.environ.get("CHAT_SLACK_CHANNEL", "C0CHATROOM")
PAGE = (Path(__file__).parent / "page.html").read_bytes()
MAX_TEXT = 2000

app = App()


def entry(via: str, author: str, text: str, **extra: Any) -> str:
    """One line of the room, as the page receives it."""
    return json.dumps({"via": via, "from": author, "text": text[:MAX_TEXT], **extra})


@app.http("/", methods=["GET"])
async def page(message, ctx):
    await ctx.respond(PAGE, content_type="text/html; charset=utf-8")


@app.websocket("/room", on="connect")
async def join(message, ctx):
    await ctx.group_add(ROOM)
    await ctx.accept()


@app.websocket("/room", on="disconnect")
async def leave(message, ctx):
    await ctx.group_discard(ROOM)


@app.websocket("/room")
async def say(message, ctx):
    """A line typed in a page: to everyone in the room, to Slack, or as an email reply."""
    try:
        data = json.loads(message.get("text") or "")
        name = str(data.get("name") or "guest")[:40]
        text = str(data["text"]).strip()
    except (ValueError, KeyError, TypeError, AttributeError):
        await ctx.send(text=entry("room", "room", "could not read that message"))
        return
    if not text:
        return
    reply_to = data.get("reply_to")
    if isinstance(reply_to, dict) and reply_to.get("address"):
        await ctx.send_email(
            reply_to["address"],
            subject=_re(str(reply_to.get("subject") or "")),
            text=f"{name} wrote in the room:\n\n{text}\n",
            in_reply_to=reply_to.get("message_id"),
            references=[reply_to["message_id"]] if reply_to.get("message_id") else [],
        )
        await ctx.group_send(ROOM, text=entry("web", name, f"(by email to {reply_to['address']}) {text}"))
        return
    await ctx.group_send(ROOM, text=entry("web", name, text))
    await ctx.layer.send("slack.send", {"channel": SLACK_CHANNEL, "text": f"*{name}*: {text}"})


@app.email("room@*")
async def mail(message, ctx):
    """An email to the room: shown with what the page needs to answer it."""
    text = (message.get("text") or "").strip() or (message.get("subject") or "")
    await ctx.group_send(
        ROOM,
        text=entry(
            "email",
            message.get("from") or message["mail_from"],
            text,
            reply={"address": message["mail_from"], "subject": message.get("subject") or "",
                   "message_id": message.get("message_id")},
        ),
    )


@app.slack("message", channel=SLACK_CHANNEL)
async def slack(message, ctx):
    """A message in the bridged Slack channel (the server drops the bot's own)."""
    if message.get("subtype") or message.get("bot_id"):
        return
    author = message.get("user") or "someone"
    await ctx.group_send(ROOM, text=entry("slack", author, message.get("text") or ""))


def _re(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
