"""The room page: a log, a text box and a few lines of script that talk to the consumer."""

from django.http import HttpResponse
from django.urls import path

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>room {room}</title></head>
<body>
<p id="status">connecting</p>
<ul id="log"></ul>
<input id="text" autocomplete="off"><button id="send">Send</button>
<script>
const socket = new WebSocket(`ws://${{location.host}}/ws/chat/{room}/`);
socket.onopen = () => {{ document.querySelector("#status").textContent = "connected"; }};
socket.onclose = (e) => {{ document.querySelector("#status").textContent = "closed " + e.code; }};
socket.onmessage = (e) => {{
  const item = document.createElement("li");
  item.textContent = JSON.parse(e.data).message;
  document.querySelector("#log").appendChild(item);
}};
document.querySelector("#send").onclick = () => {{
  const box = document.querySelector("#text");
  socket.send(JSON.stringify({{message: box.value}}));
  box.value = "";
}};
</script>
</body></html>
"""


def room(request, room_name):
    return HttpResponse(PAGE.format(room=room_name))


urlpatterns = [path("chat/<str:room_name>/", room)]
