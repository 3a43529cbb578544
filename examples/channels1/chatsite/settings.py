"""Settings of the Channels 1.x example: the only Switchroom-specific line is the BACKEND."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "chatsite.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

CHANNEL_LAYERS = {
    "default": {
        # Was: "asgi_redis.RedisChannelLayer" with "hosts": [("127.0.0.1", 6379)].
        "BACKEND": "switchroom.layers.asgi1.ChannelLayer",
        "ROUTING": "chatsite.routing.channel_routing",
        "CONFIG": {
            "url": os.environ.get("SWITCHROOM_LAYER", "redis://127.0.0.1:6379/0"),
            "capacity": 100,
            "expiry": 60,
        },
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}
