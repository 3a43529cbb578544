"""A worker app for the presence tests: ``/room?user=U&tab=T`` is present as U with its tab
while open and watches the room's list."""

from urllib.parse import parse_qs

from switchroom.worker import App

app = App()


@app.websocket("/room", on="connect")
async def join(message, ctx):
    query = parse_qs(message["query_string"].decode())
    await ctx.accept()
    await ctx.presence.track("room", query["user"][0], {"tab": query["tab"][0]})


@app.websocket("/room", on="disconnect")
async def leave(message, ctx):
    await ctx.presence.untrack("room")
