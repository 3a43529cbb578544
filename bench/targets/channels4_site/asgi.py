"""The ASGI application Daphne 4 serves: ``daphne channels4_site.asgi:application``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels4_site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from channels4_site.consumers import Echo, Idle, Room  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": URLRouter(
            [
                path("echo", Echo.as_asgi()),
                path("room/<str:room>", Room.as_asgi()),
                path("idle", Idle.as_asgi()),
            ]
        ),
    }
)
