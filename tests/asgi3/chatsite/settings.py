"""Django settings of the chat project: no database work, signed-cookie sessions, and the
Switchroom backend in ``CHANNEL_LAYERS``."""

import os

SECRET_KEY = "chatsite-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.asgi3.chatsite.urls"
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
ASGI_APPLICATION = "tests.asgi3.chatsite.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "switchroom.layers.channels.ChannelLayer",
        "CONFIG": {"url": os.environ.get("CHAT_LAYER", "redis://127.0.0.1:6379/0")},
    }
}
