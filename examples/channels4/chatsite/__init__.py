"""A Channels 4 chat project in the shape of the Channels tutorial (room pages, a WebSocket
consumer per socket, a group per room), plus background consumers for email and Slack; its
channel layer is Switchroom's (``CHAT_LAYER`` names it)."""
