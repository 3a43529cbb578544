"""The channel layer Daphne 1.x serves: ``daphne chatsite.asgi:channel_layer``."""

import os

from channels.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

channel_layer = get_channel_layer()
