"""The worker loop in-process on the in-memory layer: client disconnects reaching an ASGI
app, sync consumers using the blocking layer, and stop() with nothing running."""

import asyncio

from switchroom.layers import get_layer
from switchroom.worker.app import App
from switchroom.worker.runner import Worker

from .harness import mailbox


async def run_worker(app, layer, **options):
    worker = Worker(app, layer, poll=0.05, **options)
    task = asyncio.create_task(worker.run())
    return worker, task


async def test_http_disconnect_reaches_the_asgi_app():
    seen = asyncio.Queue()

    async def asgi_app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError("http only")
        await receive()
        seen.put_nowait((await receive())["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    app = App()
    app.mount_asgi(asgi_app)
    layer = get_layer("memory://")
    worker, task = await run_worker(app, layer)
    reply = await mailbox(layer, "http.response")
    request = {"reply_channel": reply.address, "method": "GET", "path": "/", "http_version": "1.1"}
    request["scheme"] = "http"
    await layer.send("http.request", {**request, "query_string": b"", "headers": []})
    await asyncio.sleep(0.2)
    await layer.send("http.disconnect", {"reply_channel": reply.address, "path": "/"})
    assert await asyncio.wait_for(seen.get(), 5) == "http.disconnect"
    assert await reply.get(0.3) is None
    worker.stop()
    await asyncio.wait_for(task, 5)


async def test_sync_consumer_uses_blocking_layer_and_groups():
    app = App()

    @app.websocket("/room", on="connect")
    def connect(message, ctx):
        ctx.group_add("room")
        ctx.accept()
        ctx.layer.send("audit", {"joined": ctx.reply_channel})

    layer = get_layer("memory://")
    worker, task = await run_worker(app, layer, threads=1)
    reply = await mailbox(layer, "websocket.send")
    await layer.send("websocket.connect", {"reply_channel": reply.address, "path": "/room", "order": 0})
    assert (await reply.get(5)) == {"accept": True}
    assert (await layer.receive(["audit"], timeout=5))[1] == {"joined": reply.address}
    assert await layer.group_channels("room") == [reply.address]
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert task.result() is None


async def test_each_sockets_frames_are_handled_in_order_and_then_forgotten():
    """Later frames of a socket wait for earlier ones even when they would finish first;
    once a socket's frames are handled the worker keeps nothing of it."""
    app = App()
    handled = []

    @app.websocket("/s")
    async def receive(message, ctx):
        await asyncio.sleep(0.002 * (10 - message["order"]))
        handled.append((ctx.reply_channel, message["order"]))

    layer = get_layer("memory://")
    worker, task = await run_worker(app, layer)
    sockets = [await mailbox(layer, "websocket.send") for _ in range(3)]
    frames = [(s.address, n) for n in range(1, 10) for s in sockets]
    for address, n in frames:
        frame = {"reply_channel": address, "path": "/s", "text": "x", "order": n}
        await layer.send("websocket.receive", frame)
    for _ in range(500):
        if len(handled) == len(frames) and not worker.running:
            break
        await asyncio.sleep(0.01)
    for s in sockets:
        assert [n for address, n in handled if address == s.address] == list(range(1, 10))
    assert not worker.running and not worker._socket_tails
    worker.stop()
    await asyncio.wait_for(task, 5)
