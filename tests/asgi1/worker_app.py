"""The Switchroom worker app of the interop tests: the same chat room as the Channels 1.x example,
plus an HTTP route that says who answered."""

from urllib.parse import parse_qs

from switchroom.worker.app import App

DOWNLOAD_PART = b"0123456789abcdef" * 4096  # 64 KiB, as in the Channels 1.x example

app = App()


def room_group(room: str) -> str:
    """The group name the Channels 1.x example uses too, so both kinds of worker share rooms."""
    return f"room-{room}"


@app.http("/hello", methods=["GET", "POST"])
async def hello(message, ctx):
    await ctx.respond(
        {
            "served_by": "switchroom-worker",
            "method": message["method"],
            "path": message["path"],
            "query": message["query_string"].decode(),
            "body_length": len(message["body"]),
        }
    )


@app.http("/download", methods=["GET"])
async def download(message, ctx):
    """``parts`` × 64 KiB in one response, which the worker sends as several chunk messages."""
    parts = int(parse_qs(message["query_string"].decode()).get("parts", ["1"])[0])
    await ctx.respond(DOWNLOAD_PART * parts, content_type="application/octet-stream")


@app.websocket("/chat/{room}/", on="connect")
async def join(message, ctx, room):
    await ctx.group_add(room_group(room))
    await ctx.accept()


@app.websocket("/chat/{room}/")
async def say(message, ctx, room):
    await ctx.group_send(room_group(room), text=message.get("text") or "")


@app.websocket("/chat/{room}/", on="disconnect")
async def leave(message, ctx, room):
    await ctx.group_discard(room_group(room))
