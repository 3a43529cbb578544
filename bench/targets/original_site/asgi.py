"""The channel layer Daphne 1.x serves: ``daphne original_site.asgi:channel_layer``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "original_site.settings")

from channels.asgi import get_channel_layer  # noqa: E402

channel_layer = get_channel_layer()
