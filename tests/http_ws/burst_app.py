"""A worker app for the fan-out tests: bursts of frames to one socket, on request."""

from switchroom.worker import App

app = App()


@app.websocket("/burst", on="connect")
async def connect(message, ctx):
    await ctx.accept()
    await ctx.send(text=f"address {ctx.reply_channel}")


@app.websocket("/burst")
async def burst(message, ctx):
    """``burst N``: N frames numbered 0..N-1, sent one after another."""
    count = int(message["text"].split()[1])
    for n in range(count):
        await ctx.send(text=str(n))
