"""A real Django project in one module, served as a bare ASGI 3 application."""

import django
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="switchroom-tests",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
)


def hello(request, name):
    return JsonResponse({"hello": name, "q": request.GET.get("q"), "method": request.method})


def upload(request):
    return HttpResponse(f"{len(request.body)} bytes", content_type="text/plain")


urlpatterns = [path("hello/<str:name>", hello), path("upload", upload)]

django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
