"""Django 2.2 settings for the original stack: asgi_redis on the benchmark's private Redis."""

import os

SECRET_KEY = "benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
ROOT_URLCONF = "original_site.urls"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "asgi_redis.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["BENCH_REDIS_URL"]]},
        "ROUTING": "original_site.routing.channel_routing",
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": True}
