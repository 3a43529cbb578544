"""No Django views: every endpoint is a Channels consumer (see routing.py)."""

urlpatterns: list = []
