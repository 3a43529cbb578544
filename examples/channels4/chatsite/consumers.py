"""The chat consumer (one instance per socket, one group per room) and the background
consumers that carry email and Slack into a room and answer the email."""

import json

from channels.consumer import AsyncConsumer
from channels.generic.websocket import AsyncWebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room = "chat_" + self.scope["url_route"]["kwargs"]["room_name"]
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.room, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        message = json.loads(text_data)["message"]
        who = "anonymous" if self.scope["user"].is_anonymous else self.scope["user"].username
        event = {"type": "chat.message", "message": message, "who": who}
        await self.channel_layer.group_send(self.room, event)

    async def chat_message(self, event):
        await self.send(text_data=json.dumps({"message": event["message"], "who": event["who"]}))


class EmailConsumer(AsyncConsumer):
    """Mail to ``<room>@chat.example`` shows up in the room and is answered by email."""

    async def email_receive(self, message):
        # Imported here: the chat itself also runs on Daphne and channels_redis alone.
        from switchroom.worker.context import email_reply

        room = message["rcpt_to"][0].split("@")[0]
        text = (message.get("text") or "").strip()
        await self.channel_layer.group_send(
            "chat_" + room, {"type": "chat.message", "message": f"email: {text}", "who": message["mail_from"]}
        )
        await self.channel_layer.send("email.send", email_reply(message, text=f"posted to {room}: {text}"))


class SlackConsumer(AsyncConsumer):
    """Slack messages show up in the room named ``slack``."""

    async def slack_message(self, message):
        await self.channel_layer.group_send(
            "chat_slack", {"type": "chat.message", "message": f"slack: {message['text']}", "who": "slack"}
        )
