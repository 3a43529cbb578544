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
