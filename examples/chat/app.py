"""The chat room: a web page with a live message list, bridged to email and Slack.

- ``GET /`` serves the page; its WebSocket joins the room's group, and what is typed is
  broadcast to every open page, whichever server process holds it.
- An email to ``room@<domain>`` appears in the room; the page can answer it by email
  (threaded with In-Reply-To) with the reply button next to it.
- A Slack message in the bridged channel appears in the room, and what is typed in the
  page is posted to that channel.

- Who is in the room shows beside it, live: each open page under its name (a name with
  several pages is one person), and whoever wrote by email or in Slack in the last
  ``CHAT_RECENT_SECONDS`` (default 600), through the layer's presence.

Run it with ``switchroom up examples.chat.app:app``. ``CHAT_SLACK_CHANNEL`` names the
bridged Slack channel (default ``C0CHATROOM``).
"""

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from switchroom.worker.app import App

ROOM = "room"
SLACK_CHANNEL = os.environ.get("CHAT_SLACK_CHANNEL", "C0CHATROOM")
PAGE = (Path(__file__).parent / "page.html").read_bytes()
MAX_TEXT = 2000
MAX_NAME = 40
RECENT = float(os.environ.get("CHAT_RECENT_SECONDS", "600"))

app = App()


def entry(via: str, author: str, text: str, **extra: Any) -> str:
    """One line of the room, as the page receives it."""
    return json.dumps({"via": via, "from": author, "text": text[:MAX_TEXT], **extra})


@app.http("/", methods=["GET"])
async def page(message, ctx):
    await ctx.respond(PAGE, content_type="text/html; charset=utf-8")


def page_name(value: Any) -> str:
    return str(value or "").strip()[:MAX_NAME] or "guest"


@app.websocket("/room", on="connect")
async def join(message, ctx):
    """A page joins the room and is present under the name it connects with (``?name=``)."""
    name = page_name(parse_qs(message["query_string"].decode("latin-1")).get("name", [""])[0])
    await ctx.group_add(ROOM)
    await ctx.accept()
    await ctx.presence.track(ROOM, name, {"via": "web"})


@app.websocket("/room", on="disconnect")
async def leave(message, ctx):
    await ctx.group_discard(ROOM)
    await ctx.presence.untrack(ROOM)


@app.websocket("/room")
async def say(message, ctx):
    """A line typed in a page: to everyone in the room, to Slack, or as an email reply;
    ``{"rename": name}`` shows the page under another name."""
    try:
        data = json.loads(message.get("text") or "")
        if "rename" in data:
            await ctx.presence.track(ROOM, page_name(data["rename"]), {"via": "web"})
            return
        name = page_name(data.get("name"))
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
    await ctx.send_slack(SLACK_CHANNEL, f"*{name}*: {text}")


@app.email("room@*")
async def mail(message, ctx):
    """An email to the room: shown with what the page needs to answer it; its sender is
    in the room for a while."""
    text = (message.get("text") or "").strip() or (message.get("subject") or "")
    if message["mail_from"]:
        await ctx.presence.seen(ROOM, message["mail_from"], {"via": "email"}, ttl=RECENT)
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
    await ctx.presence.seen(ROOM, author, {"via": "slack"}, ttl=RECENT)
    await ctx.group_send(ROOM, text=entry("slack", author, message.get("text") or ""))


def _re(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
