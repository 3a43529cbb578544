"""Channels 4 WebSocket consumers for the benchmark endpoints."""

from channels.generic.websocket import AsyncWebsocketConsumer


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data, bytes_data=bytes_data)


class Room(AsyncWebsocketConsumer):
    """Joins the room's group before accepting; sends on every ``room.message``."""

    async def connect(self):
        self.group = "bench-room-" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def room_message(self, event):
        await self.send(text_data=event["text"])


class Idle(AsyncWebsocketConsumer):
    pass
