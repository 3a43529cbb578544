"""The worker app ``python -m bench`` measures on Switchroom: a hello endpoint, a WebSocket
echo, a broadcast room, idle sockets and a Slack echo.

    switchroom worker bench.apps:app --layer redis://127.0.0.1:6379/0
"""

from switchroom.worker.app import App

app = App()

HELLO = b"Hello, world!\n"


@app.http("/hello", methods=["GET"])
async def hello(message, ctx):
    """W1: the smallest useful answer, so the figure is the stack's cost, not the app's."""
    await ctx.respond(HELLO, content_type="text/plain")


@app.websocket("/echo")
async def echo(message, ctx):
    """W2: send every frame straight back (the handshake is accepted by default)."""
    if message.get("text") is not None:
        await ctx.send(text=message["text"])
    else:
        await ctx.send(bytes=message.get("bytes") or b"")


def room_group(room: str) -> str:
    """The group every socket of ``/room/{room}`` joins."""
    return f"bench-room-{room}"


@app.websocket("/room/{room}", on="connect")
async def join(message, ctx, room):
    """W3: join the room's group, then accept, so no broadcast after the accept is missed."""
    await ctx.group_add(room_group(room))
    await ctx.accept()


@app.websocket("/room/{room}", on="disconnect")
async def leave(message, ctx, room):
    await ctx.group_discard(room_group(room))


@app.websocket("/idle", on="connect")
async def idle(message, ctx):
    """W4: accept and do nothing else."""
    await ctx.accept()


@app.slack("message")
async def slack_echo(message, ctx):
    """Slack round trip: post each message's text back to its channel (not the bot's own)."""
    if message.get("bot_id") or message.get("subtype"):
        return
    await ctx.post_slack(message.get("text") or "")
