"""A FastAPI app with WebSocket endpoints (echo, close codes, denial, lifespan state),
mounted beside native routes of a switchroom App in one worker."""

import contextlib

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse

from switchroom.worker.app import App


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello from lifespan"}


api = FastAPI(lifespan=lifespan)


@api.get("/hello")
async def hello():
    return {"hello": "fastapi"}


@api.websocket("/ws/echo")
async def echo(websocket: WebSocket):
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol=offered[0] if offered else None, headers=[(b"x-echo", b"yes")])
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                text = message["text"]
                if text.startswith("close:"):
                    code = int(text.split(":")[1])
                    await websocket.close(code=code, reason="asked to close")
                    return
                if text == "state":
                    await websocket.send_text(websocket.state.greeting)
                elif text == "scope":
                    scope = websocket.scope
                    await websocket.send_json(
                        {
                            "path": scope["path"],
                            "raw_path": scope["raw_path"].decode(),
                            "root_path": scope["root_path"],
                            "query": scope["query_string"].decode(),
                            "scheme": scope["scheme"],
                            "client": bool(scope["client"]),
                            "server": scope["server"][1] if scope["server"] else None,
                            "header": websocket.headers.get("x-test"),
                        }
                    )
                else:
                    await websocket.send_text("echo:" + text)
            else:
                await websocket.send_bytes(message["bytes"][::-1])
    except WebSocketDisconnect:
        return


@api.websocket("/ws/count")
async def count(websocket: WebSocket):
    """Numbers each message it gets: the order they arrive in is the order they were sent."""
    await websocket.accept()
    n = 0
    try:
        while True:
            text = await websocket.receive_text()
            n += 1
            await websocket.send_text(f"{n}:{text}")
    except WebSocketDisconnect:
        return


@api.websocket("/ws/deny")
async def deny(websocket: WebSocket):
    await websocket.send_denial_response(PlainTextResponse("no entry", status_code=401))


@api.websocket("/ws/refuse")
async def refuse(websocket: WebSocket):
    await websocket.close(code=1008)


app = App()


@app.http("/native")
async def native_http(message, ctx):
    await ctx.respond("native http")


@app.websocket("/native/ws")
async def native_ws(message, ctx):
    await ctx.send(text="native:" + message["text"])


app.mount_asgi(api)
