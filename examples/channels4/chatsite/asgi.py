"""The project's ASGI application: Django for HTTP, the chat consumer behind Channels'
auth stack for WebSockets, background consumers for email and Slack."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.channels4.chatsite.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from .consumers import ChatConsumer, EmailConsumer, SlackConsumer  # noqa: E402

websocket_urls = [path("ws/chat/<str:room_name>/", ChatConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urls)),
        "channel": ChannelNameRouter(
            {"email.receive": EmailConsumer.as_asgi(), "slack.message": SlackConsumer.as_asgi()}
        ),
    }
)
