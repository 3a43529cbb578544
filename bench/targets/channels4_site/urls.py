"""``/hello`` as a plain Django view, the way a Channels 4 project serves HTTP."""

from django.http import HttpResponse
from django.urls import path


def hello(request):
    return HttpResponse(b"Hello, world!\n", content_type="text/plain")


urlpatterns = [path("hello", hello)]
