"""Channel routing of the example; ``http.request`` goes to Django's views by default."""

from channels.routing import route

from . import consumers

ROOM = r"^/chat/(?P<room>[a-zA-Z0-9_-]+)/$"

channel_routing = [
    route("websocket.connect", consumers.ws_connect, path=ROOM),
    route("websocket.receive", consumers.ws_receive, path=ROOM),
    route("websocket.disconnect", consumers.ws_disconnect, path=ROOM),
]
