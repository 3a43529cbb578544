"""Plain Django URLs; Channels 1.x serves them from ``http.request`` messages."""

from django.urls import path

from . import views

urlpatterns = [
    path("hello", views.hello),
    path("echo", views.echo),
    path("download", views.download),
]
