"""Django settings of the chat project: no database work, signed-cookie sessions, and the
Switchroom backend in ``CHANNEL_LAYERS`` (its URL from ``CHAT_LAYER``)."""

import os

SECRET_KEY = "chatsite-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "examples.channels4.chatsite.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "channels",
]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
ASGI_APPLICATION = "examples.channels4.chatsite.asgi.application"
LAYER_URL = os.environ.get("CHAT_LAYER", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "switchroom.layers.channels.ChannelLayer",
        "CONFIG": {"url": LAYER_URL},
    }
}
if os.environ.get("CHAT_BACKEND") == "channels_redis":
    # The same project on channels_redis, for comparisons (``python -m bench.asgi3``).
    CHANNEL_LAYERS["default"] = {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [LAYER_URL.split("?")[0]]},
    }
