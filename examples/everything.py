"""One app answering HTTP, WebSocket, email and Slack: a chat room you can join from a web
page, post to by email, and mirror from a Slack channel.

Each consumer is annotated with the context its protocol gets (a plain function gets the
blocking ``SyncContext``). Run it with ``switchroom worker examples.everything:app`` next
to the interface servers.
"""

import html

from switchroom.worker import App, EmailContext, HttpContext, SlackContext, SyncContext, WebSocketContext

app = App(bounce_sender="postmaster@chat.example.com")

PAGE = """<!doctype html>
<title>{room}</title>
<ul id="log"></ul>
<input id="say" autofocus placeholder="say something">
<script>
const ws = new WebSocket(`ws://${{location.host}}/chat/{room}`);
ws.onmessage = (e) => {{
  const li = document.createElement("li"); li.textContent = e.data; log.append(li);
}};
say.onkeydown = (e) => {{ if (e.key === "Enter") {{ ws.send(say.value); say.value = ""; }} }};
</script>
"""


def room_group(room: str) -> str:
    """The group every listener of ``room`` belongs to."""
    return f"room-{room}"


@app.http("/", methods=["GET"])
async def index(message: dict, ctx: HttpContext) -> None:
    await ctx.respond(PAGE.format(room="lobby"), content_type="text/html; charset=utf-8")


@app.http("/rooms/{room}", methods=["GET"])
async def room_page(message: dict, ctx: HttpContext, room: str) -> None:
    await ctx.respond(PAGE.format(room=html.escape(room)), content_type="text/html; charset=utf-8")


@app.http("/rooms/{room}/messages", methods=["POST"])
def post_message(message: dict, ctx: SyncContext, room: str) -> None:
    """A plain function: it runs on the worker's thread pool and uses blocking helpers."""
    text = message["body"].decode("utf-8", "replace")
    reached = ctx.group_send(room_group(room), text=f"[http] {text}")
    ctx.respond({"room": room, "delivered_to": reached.reached}, status=201)


@app.websocket("/chat/{room}", on="connect")
async def join(message: dict, ctx: WebSocketContext, room: str) -> None:
    await ctx.group_add(room_group(room))
    await ctx.accept()


@app.websocket("/chat/{room}")
async def say(message: dict, ctx: WebSocketContext, room: str) -> None:
    await ctx.group_send(room_group(room), text=message.get("text") or "")


@app.websocket("/chat/{room}", on="disconnect")
async def leave(message: dict, ctx: WebSocketContext, room: str) -> None:
    await ctx.group_discard(room_group(room))


@app.email("*@chat.example.com")
async def mail_to_room(message: dict, ctx: EmailContext) -> None:
    for address in message["rcpt_to"]:
        room = address.split("@")[0].lower()
        await ctx.group_send(room_group(room), text=f"[mail from {message['from']}] {message['subject']}")
    await ctx.reply_email(text="Your message was posted to the room.")


@app.slack("message", channel="C0LOBBY")
async def slack_to_lobby(message: dict, ctx: SlackContext) -> None:
    if message.get("bot_id"):
        return
    await ctx.group_send(room_group("lobby"), text=f"[slack <@{message['user']}>] {message['text']}")


@app.slack("app_mention")
async def mentioned(message: dict, ctx: SlackContext) -> None:
    await ctx.post_slack(text="Join the lobby at http://127.0.0.1:8000/", thread=True)
