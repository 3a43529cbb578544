"""Channels 1.x WebSocket consumers: a chat room per path, broadcast through a group."""

from channels import Group
from channels.message import Message


def room_group(room: str) -> str:
    """The group every socket in ``room`` belongs to."""
    return f"room-{room}"


def ws_connect(message: Message, room: str) -> None:
    Group(room_group(room)).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def ws_receive(message: Message, room: str) -> None:
    Group(room_group(room)).send({"text": message.content.get("text", "")})


def ws_disconnect(message: Message, room: str) -> None:
    Group(room_group(room)).discard(message.reply_channel)
