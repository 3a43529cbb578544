"""``/hello`` as a Django view, the way a Channels 4 project serves HTTP: a plain (sync)
view, which Django's ASGI handler runs in a thread, or with ``BENCH_ASYNC_VIEW=1`` an
async view, which runs on the event loop."""

import os

from django.http import HttpResponse
from django.urls import path

HELLO = b"Hello, world!\n"


def hello(request):
    return HttpResponse(HELLO, content_type="text/plain")


async def async_hello(request):
    return HttpResponse(HELLO, content_type="text/plain")


urlpatterns = [path("hello", async_hello if os.environ.get("BENCH_ASYNC_VIEW") == "1" else hello)]
