"""Apps the worker tests serve in real ``switchroom worker`` processes."""

import asyncio
import os
import threading
import time

from switchroom.worker.app import App

app = App(bounce_sender="postmaster@example.com")


@app.http("/items/{item_id:int}", methods=["GET"])
async def item(message, ctx, item_id):
    await ctx.respond({"id": item_id, "type": type(item_id).__name__})


@app.http("/files/{rest:path}")
def files(message, ctx, rest):
    ctx.respond(f"file {rest} on {threading.current_thread().name}")


@app.http("/big")
async def big(message, ctx):
    await ctx.respond(b"x" * int(os.environ.get("BIG_SIZE", "3000000")))


@app.http("/boom")
async def boom(message, ctx):
    raise RuntimeError("boom")


@app.http("/sync-boom")
def sync_boom(message, ctx):
    raise RuntimeError("sync boom")


@app.http("/slow/{seconds:float}")
async def slow(message, ctx, seconds):
    await asyncio.sleep(seconds)
    await ctx.respond("slept")


@app.http("/sync-slow/{seconds:float}")
def sync_slow(message, ctx, seconds):
    time.sleep(seconds)
    ctx.respond("slept")


@app.websocket("/chat/{room}", on="connect")
async def chat_connect(message, ctx, room):
    if room == "closed":
        await ctx.reject()
        return
    await ctx.group_add(f"chat-{room}")
    await ctx.accept()


@app.websocket("/chat/{room}")
def chat_receive(message, ctx, room):
    if message.get("text") == "crash":
        raise ValueError("crash")
    ctx.group_send(f"chat-{room}", text=f"{room}: {message.get('text')}")


@app.websocket("/chat/{room}", on="disconnect")
async def chat_disconnect(message, ctx, room):
    await ctx.group_discard(f"chat-{room}")


@app.websocket("/echo")
async def echo(message, ctx):
    await ctx.send(text=message.get("text"))


@app.email("help@example.com")
async def help_desk(message, ctx):
    await ctx.reply_email(text="help: " + (message.get("text") or ""))


@app.email("*@lists.example.com")
def lists(message, ctx):
    ctx.reply_email(text="list " + ",".join(message["rcpt_to"]))


@app.email("slow@example.com")
async def slow_mail(message, ctx):
    """Says it started; in a worker run with SLOW_MAIL set, then takes a minute (the test
    stops or kills that worker meanwhile); says it finished."""
    seen = {"pid": os.getpid(), "attempt": ctx.attempt, "key": ctx.idempotency_key}
    await ctx.layer.send("test.started", seen)
    if os.environ.get("SLOW_MAIL"):
        await asyncio.sleep(60)
    await ctx.layer.send("test.handled", seen)


@app.email("flaky@example.com")
async def flaky_mail(message, ctx):
    """Fails on its first two deliveries."""
    if ctx.attempt < 3:
        raise RuntimeError(f"flaky on delivery {ctx.attempt}")
    await ctx.layer.send(
        "test.handled", {"pid": os.getpid(), "attempt": ctx.attempt, "key": ctx.idempotency_key}
    )


@app.email("broken@example.com")
def broken_mail(message, ctx):
    raise RuntimeError("always broken")


@app.slack("message", channel="C1")
async def slack_c1(message, ctx):
    await ctx.post_slack(text="c1: " + message["text"], thread=True)


@app.slack("app_mention")
def mention(message, ctx):
    ctx.post_slack(text="mentioned")
