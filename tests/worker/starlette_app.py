"""A real Starlette app (with lifespan state and streaming) served through the ASGI 3 bridge,
next to a native email consumer in the same worker."""

import contextlib
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from switchroom.worker.app import App


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"started": "yes"}
    marker = os.environ.get("LIFESPAN_MARKER")
    if marker:
        with open(marker, "w") as f:
            f.write("shutdown")


async def hello(request: Request):
    return JSONResponse(
        {
            "started": request.state.started,
            "path": request.url.path,
            "query": request.query_params.get("q"),
            "method": request.method,
            "client": request.client.host if request.client else None,
            "header": request.headers.get("x-test"),
        }
    )


async def echo(request: Request):
    body = await request.body()
    return PlainTextResponse(f"{len(body)}:{body[:10].decode()}:{body[-10:].decode()}")


async def stream(request: Request):
    async def parts():
        for i in range(3):
            yield f"part{i};".encode()

    return StreamingResponse(parts(), media_type="text/plain")


starlette = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
    ],
    lifespan=lifespan,
)

app = App()
app.mount_asgi(starlette)


@app.email("*@example.com")
async def mail(message, ctx):
    await ctx.reply_email(text="got it")
