"""Django settings for Channels 4: channels_redis on the benchmark's private Redis, for groups."""

import os

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
MIDDLEWARE: list = []
ROOT_URLCONF = "channels4_site.urls"
ASGI_APPLICATION = "channels4_site.asgi.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": True}
