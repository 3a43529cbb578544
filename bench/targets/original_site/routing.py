"""Channels 1.x consumers for the benchmark endpoints, run by ``runworker``."""

from channels import Group
from channels.routing import route

HELLO = b"Hello, world!\n"


def hello(message):
    message.reply_channel.send(
        {"status": 200, "headers": [(b"content-type", b"text/plain")], "content": HELLO}
    )


def accept(message):
    message.reply_channel.send({"accept": True})


def echo(message):
    message.reply_channel.send({"text": message.content["text"]})


def join(message, room):
    """Join the room's group before accepting, so no broadcast after the accept is missed."""
    Group("bench-room-" + room).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def leave(message, room):
    Group("bench-room-" + room).discard(message.reply_channel)


ROOM = r"^/room/(?P<room>[^/]+)$"

channel_routing = [
    route("http.request", hello, path=r"^/hello$"),
    route("websocket.connect", accept, path=r"^/(?:echo|idle)$"),
    route("websocket.receive", echo, path=r"^/echo$"),
    route("websocket.connect", join, path=ROOM),
    route("websocket.disconnect", leave, path=ROOM),
]
