"""A small Channels 1.x site (Django views plus a WebSocket chat) running on Switchroom's layer."""
