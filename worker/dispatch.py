"""Handling one message: validate it, find its consumer, run it (sync ones on the thread
pool), and give the protocol's natural answer when nothing matches or the consumer fails.

``HANDLERS`` says how each channel is handled: the context class its consumers get and the
method that routes it. A ``Dispatcher`` keeps the rows of the channels its app's routes
read (``App.channels()``); a message on any other channel is dropped, counted and logged.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from switchroom.layers import BaseLayer, Delivery, LayerError
from switchroom.shared import metrics
from switchroom.shared.mail.dsn import dsn_send
from switchroom.shared.mail.parse import PARSE_ON_A_THREAD, received
from switchroom.shared.messages import (
    EMAIL_RECEIVE,
    EMAIL_SEND,
    HTTP_DISCONNECT,
    HTTP_REQUEST,
    SLACK_EVENT,
    WEBSOCKET_CONNECT,
    WEBSOCKET_DISCONNECT,
    WEBSOCKET_RECEIVE,
    MessageFormatError,
    apply_defaults,
    validate,
)

from . import asgi, routing
from .app import App
from .context import (
    Context,
    EmailContext,
    HttpContext,
    SlackContext,
    SyncContext,
    WebSocketContext,
    plain_response,
    websocket_frame,
)
from .sockets import Sockets

log = logging.getLogger("switchroom.worker")


@functools.cache
def _counted(channel: str, outcome: str) -> Any:
    """The message counter of one channel and outcome (looked up once, not per message)."""
    return metrics.WORKER_MESSAGES.labels(channel, outcome)


@functools.cache
def _timed(channel: str) -> Any:
    """The consumer-duration histogram of one channel."""
    return metrics.WORKER_DURATION.labels(channel)


def message_id(channel: str, message: dict[str, Any]) -> str:
    """The id a log line names a message by: its reply channel, Message-ID or Slack event id."""
    return str(message.get("reply_channel") or message.get("message_id") or message.get("event_id") or "-")


class Dispatcher:
    """Routes messages of an ``App`` to consumers and answers for them when they cannot."""

    def __init__(
        self,
        app: App,
        layer: BaseLayer,
        pool: ThreadPoolExecutor,
        lifespan_state: dict[str, Any] | None = None,
        body_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.layer = layer
        self.pool = pool
        self.lifespan_state = lifespan_state
        self.body_timeout = body_timeout
        self.in_flight: dict[str, asyncio.Event] = {}
        self.sockets = (
            Sockets(app.asgi_app, layer, lambda: self.lifespan_state, layer.capacity_for(WEBSOCKET_RECEIVE))
            if app.asgi_app is not None
            else None
        )
        self.table: dict[str, _Row] = {
            channel: _Row(*HANDLERS[channel], _counted(channel, "ok"), _timed(channel))
            for channel in app.channels()
        }
        self.http_paths = routing.PathMatcher(app.http_routes)
        self.websocket_paths = {e: routing.PathMatcher(r) for e, r in app.websocket_routes.items()}

    async def handle(self, channel: str, raw: dict[str, Any], delivery: Delivery | None = None) -> bool:
        """Handle one message end to end; never raises (errors are logged and answered).

        False when its consumer failed: a durable entry is then left for a retry.
        """
        row = self.table.get(channel)
        if row is None:
            _counted(channel, "unrouted").inc()
            log.warning("dropping a %s message %s: no route reads it", channel, message_id(channel, raw))
            self.layer.stats.drop("unrouted", 1, channel)
            return True
        if channel == EMAIL_RECEIVE and isinstance(raw, dict):
            # The server leaves parsing to the reader: the fields come from the raw message.
            if len(raw.get("raw") or b"") > PARSE_ON_A_THREAD:
                raw = await asyncio.to_thread(received, raw)
            else:
                raw = received(raw)
        try:
            message = apply_defaults(channel, validate(channel, raw))
        except MessageFormatError as exc:
            _counted(channel, "malformed").inc()
            log.warning("dropping a malformed %s message %s: %s", channel, message_id(channel, raw), exc)
            self.layer.stats.drop("malformed", 1, channel)
            await self._answer_malformed(channel, raw)
            return True
        ctx = row.context(self.layer, channel, message, delivery)
        started = time.monotonic()
        router = self.app.channel_router
        target = router.target(channel, message) if router is not None else None
        try:
            if target is not None:
                await router.call(target, message)
            else:
                await row.route(self, message, ctx)
        except Exception:
            _counted(channel, "error").inc()
            log.exception("consumer failed on %s message %s", channel, message_id(channel, message))
            await self._answer_failure(channel, ctx)
            return False
        finally:
            row.duration.observe(time.monotonic() - started)
        row.ok.inc()
        return True

    async def _call(self, route: routing.Route, message: dict[str, Any], ctx: Context, params: dict) -> None:
        consumer = route.consumer
        if route.is_async:
            await consumer(message, ctx, **params)
            return
        loop = asyncio.get_running_loop()
        call = functools.partial(consumer, message, SyncContext(ctx, loop), **params)
        result = await loop.run_in_executor(self.pool, call)
        if asyncio.iscoroutine(result):
            await result

    async def _http_request(self, message: dict[str, Any], ctx: HttpContext) -> None:
        found = self.http_paths.match(message["path"], message["method"])
        if found.route is not None:
            await self._call(found.route, message, ctx, found.params)
            if not ctx.response_started:
                raise RuntimeError("the consumer returned without responding")
            return
        if self.app.asgi_serves(message["path"]):
            await self._asgi(message, ctx)
            return
        status = 405 if found.method_not_allowed else 404
        log.info("%s %s %s: no route", status, message["method"], message["path"])
        text = "Method Not Allowed" if status == 405 else "Not Found"
        await ctx.send_response(plain_response(status, text, self.layer.chunk_size))

    async def _asgi(self, message: dict[str, Any], ctx: HttpContext) -> None:
        disconnected = asyncio.Event()
        reply = ctx.reply_channel
        self.in_flight[reply] = disconnected
        try:
            await asgi.call_http(
                self.app.asgi_app,
                self.layer,
                message,
                ctx.send_response,
                disconnected,
                self.lifespan_state,
                self.body_timeout,
            )
        finally:
            self.in_flight.pop(reply, None)

    async def _http_disconnect(self, message: dict[str, Any], ctx: HttpContext) -> None:
        event = self.in_flight.get(message["reply_channel"])
        if event is not None:
            event.set()

    async def _websocket_connect(self, message: dict[str, Any], ctx: WebSocketContext) -> None:
        paths = self.websocket_paths
        found = paths["connect"].match(message["path"])
        if found.route is not None:
            await self._call(found.route, message, ctx, found.params)
            return
        if any(paths[e].match(message["path"]).route for e in ("receive", "disconnect")):
            await ctx.accept()
            return
        if self.sockets is not None and self.app.asgi_serves(message["path"]):
            await self.sockets.connect(message)
            return
        log.info("WebSocket %s rejected: no route", message["path"])
        await ctx.reject()

    async def _websocket_receive(self, message: dict[str, Any], ctx: WebSocketContext) -> None:
        await self._websocket_event("receive", message, ctx)

    async def _websocket_disconnect(self, message: dict[str, Any], ctx: WebSocketContext) -> None:
        if self.sockets is not None and self.sockets.disconnected(message):
            return
        await self._websocket_event("disconnect", message, ctx)

    async def _websocket_event(self, event: str, message: dict[str, Any], ctx: WebSocketContext) -> None:
        found = self.websocket_paths[event].match(message["path"])
        if found.route is None:
            log.debug("WebSocket %s on %s: no consumer", event, message["path"])
            return
        await self._call(found.route, message, ctx, found.params)

    async def _email_receive(self, message: dict[str, Any], ctx: EmailContext) -> None:
        matched: dict[int, routing.Route] = {}
        unknown = []
        for address in message["rcpt_to"]:
            route = routing.match_address(self.app.email_routes, address)
            if route is None:
                unknown.append(address)
            else:
                matched.setdefault(id(route), route)
        if unknown:
            await self._bounce(message, unknown, ctx)
        for route in matched.values():
            await self._call(route, message, ctx, {})

    async def _bounce(self, message: dict[str, Any], unknown: list[str], ctx: EmailContext) -> None:
        """A bounce (RFC 3464 DSN, from the null sender) for recipients no route takes; one
        per entry however often it is delivered (another route failing brings it back)."""
        arrival = ctx.delivery.added if ctx.delivery is not None else None
        bounce = dsn_send(
            {**message, "arrival": arrival},
            unknown,
            "5.1.1",
            "550 5.1.1 Recipient address rejected: no such mailbox here",
            "No mailbox here has these addresses.",
            sender=self.app.bounce_sender,
        )
        if bounce is None:
            log.warning("no route for %s; not bouncing a message with an empty sender", ", ".join(unknown))
            return
        log.warning("no route for %s; bouncing to %s", ", ".join(unknown), message["mail_from"])
        if ctx.delivery is None:
            await self.layer.send(EMAIL_SEND, bounce)
            return
        key = f"dsn:unrouted:{ctx.delivery.id}"
        if not await self.layer.durable.add(EMAIL_SEND, bounce, key=key, dedupe=True):
            log.info("the bounce of %s was sent on an earlier delivery", ctx.delivery.key)

    async def _slack_event(self, message: dict[str, Any], ctx: SlackContext) -> None:
        route = routing.match_slack(self.app.slack_routes, message)
        if route is None:
            log.debug("Slack %s event in %s ignored: no route", message.get("type"), message.get("channel"))
            return
        await self._call(route, message, ctx, {})

    async def _answer_failure(self, channel: str, ctx: Context) -> None:
        if ctx.response_started or not ctx.reply_channel:
            return
        try:
            if isinstance(ctx, HttpContext) and channel == HTTP_REQUEST:
                await ctx.send_response(plain_response(500, "Internal Server Error", self.layer.chunk_size))
            elif isinstance(ctx, WebSocketContext) and channel in (WEBSOCKET_CONNECT, WEBSOCKET_RECEIVE):
                await ctx.close(1011)
        except LayerError as exc:
            log.warning("could not send the error answer to %s: %s", ctx.reply_channel, exc)

    async def _answer_malformed(self, channel: str, raw: dict[str, Any]) -> None:
        reply = raw.get("reply_channel")
        if not isinstance(reply, str) or not reply:
            return
        try:
            if channel == HTTP_REQUEST:
                for part in plain_response(400, "Bad Request", self.layer.chunk_size):
                    await self.layer.send(reply, part)
            elif channel in (WEBSOCKET_CONNECT, WEBSOCKET_RECEIVE, WEBSOCKET_DISCONNECT):
                await self.layer.send(reply, websocket_frame(close=1011))
        except LayerError as exc:
            log.warning("could not answer a malformed message on %s: %s", reply, exc)


# A channel's context class and the method that routes its messages to consumers.
Handler = tuple[type[Context], Callable[[Dispatcher, dict[str, Any], Any], Awaitable[None]]]


class _Row(NamedTuple):
    """What a dispatcher keeps per channel: its handler, and its metrics looked up once."""

    context: type[Context]
    route: Callable[[Dispatcher, dict[str, Any], Any], Awaitable[None]]
    ok: metrics.CountChild
    duration: metrics.HistogramChild


HANDLERS: dict[str, Handler] = {
    HTTP_REQUEST: (HttpContext, Dispatcher._http_request),
    HTTP_DISCONNECT: (HttpContext, Dispatcher._http_disconnect),
    WEBSOCKET_CONNECT: (WebSocketContext, Dispatcher._websocket_connect),
    WEBSOCKET_RECEIVE: (WebSocketContext, Dispatcher._websocket_receive),
    WEBSOCKET_DISCONNECT: (WebSocketContext, Dispatcher._websocket_disconnect),
    EMAIL_RECEIVE: (EmailContext, Dispatcher._email_receive),
    SLACK_EVENT: (SlackContext, Dispatcher._slack_event),
}
