"""The worker runtime: routing, consumers, the worker loop and the ASGI 3 bridge."""
