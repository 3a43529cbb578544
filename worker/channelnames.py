"""Channels 4 background consumers in the worker: the ``ChannelNameRouter`` under a mounted
``ProtocolTypeRouter``'s ``"channel"`` key answers the worker's email and Slack messages.

A router key ``email.receive`` gets every email; ``slack.<type>`` (``slack.message``,
``slack.app_mention``...) gets the Slack events of that type and ``slack.event`` the rest.
Each message reaches one consumer instance with ``type`` set to that key, so Channels
dispatches it to the method of that name (``email_receive``, ``slack_message``); a Slack
event's own type stays in ``event_type``. The message counts as handled (a durable entry is
acknowledged) once the method returned; an exception leaves it for a retry.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from switchroom.shared.messages import EMAIL_RECEIVE, SLACK_EVENT, SLACK_PREFIX


def router_names(app: Any) -> list[str]:
    """The channel names of the ``ChannelNameRouter`` under ``app``'s ``"channel"`` key."""
    mapping = getattr(app, "application_mapping", None)
    router = mapping.get("channel") if isinstance(mapping, dict) else None
    names = getattr(router, "application_mapping", None)
    return [str(name) for name in names] if isinstance(names, dict) else []


class ChannelRouter:
    """Hands email and Slack messages to a Channels app's ``channel`` scopes."""

    def __init__(self, app: Callable[..., Awaitable[None]], names: list[str]) -> None:
        self.app = app
        self.names = set(names)

    def channels(self) -> list[str]:
        """The Switchroom channels the worker reads for this router."""
        out = [EMAIL_RECEIVE] if EMAIL_RECEIVE in self.names else []
        if any(name.startswith(SLACK_PREFIX) for name in self.names):
            out.append(SLACK_EVENT)
        return out

    def target(self, channel: str, message: dict[str, Any]) -> str | None:
        """The router key that takes this message, or None."""
        if channel == SLACK_EVENT:
            by_type = SLACK_PREFIX + str(message.get("type") or "")
            if by_type in self.names:
                return by_type
        return channel if channel in self.names else None

    async def call(self, name: str, message: dict[str, Any]) -> None:
        """Run one consumer instance for one message; returns once its handler returned
        and raises what it raised."""
        event = dict(message)
        if "type" in event:
            event["event_type"] = event["type"]
        event["type"] = name
        handled = asyncio.Event()
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if given:
                # Channels asks for the next message only after its handler returned.
                handled.set()
                await asyncio.Future()
            given = True
            return event

        async def send(_: dict[str, Any]) -> None:
            raise RuntimeError("a channel consumer has no client to send to")

        instance = asyncio.ensure_future(self.app({"type": "channel", "channel": name}, receive, send))
        finished = asyncio.ensure_future(handled.wait())
        try:
            await asyncio.wait([instance, finished], return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
            if not instance.done():
                instance.cancel()
            await asyncio.gather(instance, finished, return_exceptions=True)
        if not handled.is_set() and not instance.cancelled() and instance.exception() is not None:
            raise instance.exception()
