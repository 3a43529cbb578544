"""Switchroom: interface servers that turn HTTP, WebSocket, Slack and email into
messages on one shared channel layer, and a worker runtime that answers them.

The public API lives in the subpackages:

- ``switchroom.layers``  -- the channel layer (``get_layer``, errors, sync facade)
- ``switchroom.shared``  -- message specs, naming, configuration and the CLI
- ``switchroom.worker``  -- routing, consumers and the worker loop
- ``switchroom.servers`` -- the interface servers (``http_ws``, ``slack``, ``email``)
- ``switchroom.testing`` -- ``TestClient``: an app's worker tested in-process, no servers
"""

__version__ = "0.1.0"
