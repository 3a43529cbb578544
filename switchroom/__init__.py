"""Switchroom: interface servers that turn HTTP, WebSocket, Slack and email into
messages on one shared channel layer, and a worker runtime that answers them.

The front door is here: ``switchroom.cli`` (the ``switchroom`` command), ``up`` (a
whole deployment on one machine), ``demo`` (a tour of the layer). Below it, each part has
its own package:

- ``switchroom.layers``  -- the channel layer (``get_layer``, errors, sync facade)
- ``switchroom.shared``  -- what every part reads: message specs, configuration, logging, metrics
- ``switchroom.worker``  -- routing, consumers and the worker loop
- ``switchroom.servers`` -- the interface servers (``http_ws``, ``slack``, ``email``)
- ``switchroom.testing`` -- ``TestClient``: an app's worker tested in-process, no servers
"""

__version__ = "0.1.0"
