"""The ceiling: a raw ASGI 3 app for uvicorn, answering in-process with no layer at all.

uvicorn ceiling:app --app-dir bench/targets --lifespan off
"""

HELLO = b"Hello, world!\n"
HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
        return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    echo = scope["path"] == "/echo"
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if echo:
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
