"""``SlackServer``: Slack connections in, Web API calls out, on the running asyncio loop.

Inbound, each event is a durable entry on ``slack.event`` (keyed and deduplicated by its
event id in the same step) before it is acknowledged, so when the layer cannot take it
Slack delivers it again, and a redelivery of one it took is acknowledged without a
second entry (RTM cannot redeliver, so there the server retries for ``rtm_retry_for``
seconds); a copy goes to its per-type channel. A slash command or an interaction waits
up to ``ack_wait`` seconds for a worker's answer, which rides in the acknowledgement.
Outbound, calls for ``slack.send`` and reply channels wait in a bounded queue that keeps
Slack's pace (one post per second per channel, and Retry-After on 429, per workspace);
what cannot be done is reported on ``slack.send.failed``.
"""

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from switchroom.layers import BaseLayer, Delivery, InvalidMessage, Janitor, LayerError, MessageTooLarge
from switchroom.layers.durable import human_age
from switchroom.shared import metrics
from switchroom.shared.messages import SLACK_EVENT, SLACK_SEND, SLACK_SEND_FAILED

from . import slack_sdk_compat, translate
from .settings import Settings, Workspace

log = logging.getLogger("switchroom.slack")

DEAD_LETTERS = SLACK_SEND_FAILED
# Answer addresses kept routed; an event older than the last this many is not answered.
MAX_REPLIES = 10_000
# The metric label of each outcome of ``publish``.
EVENT_OUTCOMES = {"taken": "published", "seen": "ignored", "dropped": "undeliverable", "retry": "refused"}


class Connection:
    """One workspace: its Web API client, who the bot is, and its inbound connection."""

    def __init__(self, server: "SlackServer", workspace: Workspace) -> None:
        self.server = server
        self.workspace = workspace
        self.web = AsyncWebClient(token=workspace.bot_token, base_url=server.settings.api_url)
        self.team: str | None = None
        self.bot_user: str | None = None
        self.bot_id: str | None = None
        self.socket: SocketModeClient | None = None
        self.rtm: Any = None
        self.schedule = translate.PostSchedule(server.settings.post_interval)

    async def start(self) -> None:
        who = await self.web.auth_test()
        self.team, self.bot_user, self.bot_id = who.get("team_id"), who.get("user_id"), who.get("bot_id")
        mode = self.server.settings.mode
        if mode == "socket":
            if not self.workspace.app_token:
                raise ValueError(f"{self.workspace.name}: Socket Mode needs an app-level token (xapp-...)")
            self.socket = SocketModeClient(
                app_token=self.workspace.app_token,
                web_client=self.web,
                ping_interval=self.server.settings.ping_interval,
                auto_reconnect_enabled=True,
            )
            self.socket.socket_mode_request_listeners.append(self.on_request)
            await self.socket.connect()
        else:
            await self.start_rtm()
        log.info(
            "connected to %s (team %s) in %s mode as %s", self.workspace.name, self.team, mode, self.bot_user
        )

    async def connected(self) -> bool:
        """Whether the inbound connection is up (slack-sdk reconnects it when it drops)."""
        if self.socket is not None:
            return await self.socket.is_connected()
        return self.rtm is not None and self.rtm.is_connected()

    async def on_request(self, client: SocketModeClient, request: Any) -> None:
        """A Socket Mode envelope: publish, then acknowledge (no ack = Slack delivers it again).

        A slash command or an interaction (``accepts_response_payload``) waits up to
        ``ack_wait`` seconds for a worker's answer (``slack.ack``) to send with the ack.
        """
        event, event_id = translate.envelope_event(request.type, request.payload, request.envelope_id)
        waits = bool(getattr(request, "accepts_response_payload", False)) and event_id is not None
        # The event's reply address (named by its id) is known before it is published, so a
        # quick answer is not missed.
        reply = self.server.inbox.address(SLACK_SEND, local=event_id) if waits else None
        answer = self.server.expect_answer(reply) if reply else None
        outcome = await self.server.publish(self, event, event_id, "socket")
        if outcome == "retry":
            self.server.forget_answer(reply)
            return
        payload = None
        if reply is not None and answer is not None and outcome == "taken":
            payload = await self.server.wait_answer(reply, answer)
        else:
            self.server.forget_answer(reply)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=payload)
        )
        metrics.SLACK_ACKS.inc()

    async def start_rtm(self) -> None:
        from slack_sdk.rtm_v2 import RTMClient

        loop = asyncio.get_running_loop()
        # One listener thread, waiting for each event to be published, keeps Slack's order.
        rtm = RTMClient(
            token=self.workspace.bot_token,
            base_url=self.server.settings.api_url,
            ping_interval=int(max(1, self.server.settings.ping_interval)),
            concurrency=1,
        )

        ready = asyncio.Event()

        @rtm.on("*")
        def forward(client: Any, event: dict) -> None:
            if not isinstance(event, dict):
                return
            if event.get("type") == "hello":
                loop.call_soon_threadsafe(ready.set)
            elif event.get("type") not in ("pong", "goodbye"):
                done = asyncio.run_coroutine_threadsafe(self.server.publish_rtm(self, event), loop)
                try:
                    done.result()
                except (concurrent.futures.CancelledError, RuntimeError):
                    log.info("%s: stopped while publishing an RTM event", self.workspace.name)

        self.rtm = rtm
        # connect() opens the socket; events flow once Slack's "hello" has been read.
        await asyncio.to_thread(rtm.connect)
        await asyncio.wait_for(ready.wait(), 30)

    async def stop(self) -> None:
        if self.socket is not None:
            try:
                # slack-sdk's close waits for its monitor's next turn (up to ping_interval).
                await asyncio.wait_for(self.socket.close(), 2)
            except TimeoutError:
                log.info("%s: Socket Mode client closed without waiting for its monitor", self.workspace.name)
                session = getattr(self.socket, "aiohttp_client_session", None)
                if session is not None:
                    await session.close()
        if self.rtm is not None:
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            thread = threading.Thread(target=self._close_rtm, args=(loop, done), daemon=True)
            thread.start()
            try:
                await asyncio.wait_for(done.wait(), 3)
            except TimeoutError:
                log.info("%s: the RTM client's threads are still stopping", self.workspace.name)

    def _close_rtm(self, loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
        """Stop the RTM client and its threads, then tell the loop."""
        slack_sdk_compat.stop_rtm(self.rtm)
        loop.call_soon_threadsafe(done.set)


class SlackServer:
    """The Slack interface server, embeddable in any asyncio program."""

    def __init__(self, layer: BaseLayer, settings: Settings) -> None:
        if not settings.workspaces:
            raise ValueError(
                "no Slack workspace configured (set SWITCHROOM_SLACK_BOT_TOKEN and "
                "SWITCHROOM_SLACK_APP_TOKEN, or SWITCHROOM_SLACK_WORKSPACES)"
            )
        if settings.mode not in ("socket", "rtm"):
            raise ValueError("mode must be 'socket' or 'rtm'")
        self.layer = layer
        self.settings = settings
        self.connections = [Connection(self, w) for w in settings.workspaces]
        # Reply channels of slash commands and interactions whose ack waits for an answer.
        self.answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.queue: asyncio.Queue[tuple[dict[str, Any], str | None]] = asyncio.Queue()
        # Posts taken from the layer and not yet posted or dead-lettered (at most max_queue).
        self.pending = 0
        self.inbox = layer.inbox
        # Reply addresses handed out with events, oldest first, to forget beyond MAX_REPLIES.
        self.replies: dict[str, None] = {}
        self.reporting: set[asyncio.Task[None]] = set()
        self.warned: dict[str, float] = {}
        # Per (workspace index, Slack channel): posts in order, and the task posting them.
        self.waiting: dict[tuple[int, str], list[tuple[translate.ApiCall, dict[str, Any]]]] = {}
        self.lanes: set[asyncio.Task[None]] = set()
        self.readers: list[asyncio.Task[None]] = []
        self.poster: asyncio.Task[None] | None = None
        self.stopping = False
        self.janitor = Janitor(layer.durable, SLACK_EVENT, settings.max_event_age, self.expire)

    async def start(self) -> None:
        await self.layer.durable.persistence()
        await self.inbox.start()
        for connection in self.connections:
            await self.connect(connection)
        loop = asyncio.get_running_loop()
        self.readers = [loop.create_task(self.take())]
        self.poster = loop.create_task(self.post_loop())
        self.janitor.start()
        metrics.slack_servers.add(self)

    async def not_ready(self) -> str | None:
        """None while every workspace is connected and posts are taken; otherwise why not."""
        if self.stopping:
            return "stopping"
        if self.poster is None:
            return "not started"
        for connection in self.connections:
            if not await connection.connected():
                return f"not connected to {connection.workspace.name}"
        return None

    def served_channels(self) -> list[str]:
        """The channels of posts to make (``slack.send`` and the answers in the inbox), and
        the events waiting for a worker."""
        return [SLACK_SEND, self.inbox.queue, SLACK_EVENT]

    async def expire(self, deliveries: list[Delivery]) -> None:
        """Events no worker read within ``max_event_age``: dead letters."""
        for delivery in deliveries:
            error = f"not read from slack.event within {human_age(self.settings.max_event_age)}"
            await self.layer.durable.dead_letter(delivery, error)

    async def connect(self, connection: Connection) -> None:
        """Connect one workspace, retrying with backoff while Slack cannot be reached."""
        deadline = time.monotonic() + self.settings.connect_timeout
        delay = 0.5
        while True:
            try:
                await connection.start()
                return
            except SlackApiError as exc:
                raise ValueError(
                    f"Slack refused {connection.workspace.name}'s token: {exc.response.get('error')}"
                ) from None
            except (TimeoutError, OSError, aiohttp.ClientError) as exc:
                if time.monotonic() + delay > deadline:
                    raise OSError(f"cannot reach Slack for {connection.workspace.name}: {exc!r}") from exc
                log.warning(
                    "cannot reach Slack for %s (%r); retrying in %.1f s",
                    connection.workspace.name,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        """Stop taking posts, finish the waiting ones for up to ``stop_grace`` seconds, report
        the rest on ``slack.send.failed``, and close the Slack connections."""
        self.stopping = True
        metrics.slack_servers.discard(self)
        await self.janitor.stop()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await self.inbox.close()
        deadline = time.monotonic() + self.settings.stop_grace
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        posting = [task for task in [self.poster, *self.lanes] if task is not None]
        for task in posting:
            task.cancel()
        await asyncio.gather(*posting, return_exceptions=True)
        unposted = [message for lane in self.waiting.values() for _, message in lane]
        while not self.queue.empty():
            unposted.append(self.queue.get_nowait()[0])
        for message in unposted:
            await self.dead_letter(message, "the server stopped before posting it", 0)
        self.waiting.clear()
        self.pending = 0
        for connection in self.connections:
            await connection.stop()

    # -- inbound --------------------------------------------------------------------

    async def publish(
        self, connection: Connection, event: dict[str, Any], event_id: str | None, mode: str
    ) -> str:
        """Put one event on the layer: ``taken`` (a new entry), ``seen`` (taken before, or
        the bot's own), ``dropped`` (it can never be taken) or ``retry`` (the layer could
        not take it now: no ack, so Slack delivers it again).

        The entry is added and its event id marked seen in one step on the layer, so a
        redelivery that arrives while the first write hangs is not acknowledged on its
        own, and one that arrives after it is not a second entry.
        """
        outcome = await self._publish(connection, event, event_id, mode)
        metrics.SLACK_EVENTS.labels(EVENT_OUTCOMES[outcome]).inc()
        return outcome

    async def _publish(
        self, connection: Connection, event: dict[str, Any], event_id: str | None, mode: str
    ) -> str:
        if translate.is_own(event, connection.bot_user, connection.bot_id):
            return "seen"
        message = translate.event_message(
            event, reply_channel="", mode=mode, team=connection.team, event_id=event_id
        )
        response_url = event.get("response_url") if isinstance(event.get("response_url"), str) else None
        message["reply_channel"] = self.reply_address(
            event_id, message["team"], message["channel"], response_url
        )
        try:
            added = await self.layer.durable.add(
                SLACK_EVENT, message, key=event_id, dedupe=event_id is not None
            )
        except (MessageTooLarge, InvalidMessage) as exc:
            log.error(
                "slack %s event %s cannot be put on the layer (%s); dropped", message["type"], event_id, exc
            )
            self.layer.stats.drop("malformed", 1, SLACK_EVENT)
            return "dropped"
        except LayerError as exc:
            log.warning(
                "slack %s event %s not accepted by the layer (%s); %s",
                message["type"],
                event_id,
                exc,
                "not acknowledged, so Slack will deliver it again" if mode == "socket" else "retrying",
            )
            return "retry"
        if not added:
            log.info(
                "slack %s event %s delivered again; it is on the layer already", message["type"], event_id
            )
            return "seen"
        channel = translate.event_channel(message["type"])
        try:
            await self.layer.send(channel, message)
        except LayerError as exc:
            self.warn_unread(channel, exc)
        return "taken"

    def warn_unread(self, channel: str, error: LayerError) -> None:
        """Say (once a minute per channel) that an event reached only some of its channels."""
        now = time.monotonic()
        if now - self.warned.get(channel, -60.0) >= 60.0:
            self.warned[channel] = now
            log.warning("slack events are not reaching %s (%s): is anything reading it?", channel, error)

    async def publish_rtm(self, connection: Connection, event: dict[str, Any]) -> None:
        """Publish an RTM event, retrying while the layer is down: RTM does not redeliver."""
        deadline = time.monotonic() + self.settings.rtm_retry_for
        delay = 0.2
        while await self.publish(connection, event, None, "rtm") == "retry":
            if time.monotonic() + delay > deadline:
                log.error(
                    "slack %s event from RTM lost: the layer did not take it for %.0f s",
                    event.get("type"),
                    self.settings.rtm_retry_for,
                )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def reply_address(
        self, event_id: str | None, team: str | None, channel: str | None, response_url: str | None
    ) -> str:
        """An address in this process's inbox for answers to one event (the same one again
        for a redelivered event): posts go to the event's team and channel by default, and
        an answer to its ack to the ack or, late, to its ``response_url``."""
        address = self.inbox.address(SLACK_SEND, local=event_id)
        handler = functools.partial(self.on_reply, address, team, channel, response_url)
        self.inbox.address(SLACK_SEND, handler, local=address.partition("!")[2])
        self.replies[address] = None
        if len(self.replies) > MAX_REPLIES:
            oldest = next(iter(self.replies))
            del self.replies[oldest]
            self.inbox.forget(oldest)
        return address

    def on_reply(
        self, address: str, team: str | None, default: str | None, response_url: str | None, message: Any
    ) -> None:
        """A message on an event's reply address: an answer to its ack, or a post."""
        body = translate.ack_body(message)
        if body is None:
            self.enqueue(message, team=team, default=default)
            return
        waiting = self.answers.pop(address, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(body)
            return
        self.report(self.late_answer(body, message, response_url))

    def report(self, work: Any) -> None:
        """Run ``work`` (a dead letter, a late answer) in the background, kept until done."""
        task = asyncio.get_running_loop().create_task(work)
        self.reporting.add(task)
        task.add_done_callback(self.reporting.discard)

    # -- answers inside the ack -----------------------------------------------------

    def expect_answer(self, reply: str) -> "asyncio.Future[dict[str, Any]]":
        """Start waiting for a worker's answer on ``reply`` (before the event is published,
        so a quick answer is not missed)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.answers[reply] = future
        return future

    def forget_answer(self, reply: str | None) -> None:
        if reply is not None:
            self.answers.pop(reply, None)

    async def wait_answer(
        self, reply: str, answer: "asyncio.Future[dict[str, Any]]"
    ) -> dict[str, Any] | None:
        """The answer if it comes within ``ack_wait`` seconds; else None (an empty ack)."""
        try:
            return await asyncio.wait_for(asyncio.shield(answer), self.settings.ack_wait)
        except TimeoutError:
            log.info("no answer on %s within %.1f s: acknowledged without one", reply, self.settings.ack_wait)
            return None
        finally:
            self.answers.pop(reply, None)

    async def late_answer(self, body: dict[str, Any], message: Any, response_url: str | None) -> None:
        """An answer that came after the ack went: a message body goes to the event's
        response_url; what cannot (a ``response_action``, or no response_url) is a dead letter."""
        late = f"answered after the {self.settings.ack_wait:.1f} s the ack waits (--ack-wait)"
        if "response_action" in body:
            await self.dead_letter(message, f"{late}: a response_action cannot be applied afterwards", 0)
            return
        if response_url is None:
            await self.dead_letter(message, f"{late}, and the event has no response_url to answer on", 0)
            return
        try:
            response = await AsyncWebhookClient(response_url).send_dict(body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self.dead_letter(message, f"{late}; posting it to the response_url failed: {exc!r}", 1)
            return
        if response.status_code != 200:
            await self.dead_letter(message, f"{late}; the response_url answered {response.status_code}", 1)
            return
        log.info("an answer came late: sent to the event's response_url instead of the ack")

    # -- outbound -------------------------------------------------------------------

    async def take(self) -> None:
        """Take posts from ``slack.send`` (answers to events arrive in the inbox)."""
        while True:
            try:
                batch = await self.layer.receive_many([SLACK_SEND], 50, timeout=5)
            except LayerError as exc:
                log.debug("reading slack.send failed (%s); retrying", exc)
                await asyncio.sleep(1)
                continue
            for _, message in batch:
                self.enqueue(message)

    def enqueue(self, message: Any, team: str | None = None, default: str | None = None) -> None:
        """Queue one call (``team`` and ``default`` channel come from the event answered)."""
        if isinstance(message, dict) and team and not message.get("team"):
            message = {**message, "team": team}
        if self.pending >= self.settings.max_queue:
            self.report(self.dead_letter(message, f"outbound queue full ({self.settings.max_queue})", 0))
            return
        self.pending += 1
        self.queue.put_nowait((message, default))

    async def post_loop(self) -> None:
        """Calls in order per lane (a channel), each channel at Slack's pace; slow channels
        don't hold up others."""
        while True:
            message, default = await self.queue.get()
            try:
                call = translate.api_call(message, default)
                connection = self.connection_for(call.team)
            except translate.BadSend as exc:
                self.pending -= 1
                await self.dead_letter(message, f"invalid slack.send message: {exc}", 0)
                continue
            key = (self.connections.index(connection), call.lane)
            lane = self.waiting.setdefault(key, [])
            lane.append((call, message))
            if len(lane) == 1:
                task = asyncio.get_running_loop().create_task(self.drain(connection, key))
                self.lanes.add(task)
                task.add_done_callback(self.lanes.discard)

    def connection_for(self, team: str | None) -> Connection:
        """The workspace a post goes to: named by team id or workspace name; else the first."""
        if team is None or len(self.connections) == 1:
            return self.connections[0]
        for connection in self.connections:
            if team in (connection.team, connection.workspace.name):
                return connection
        raise translate.BadSend(f"no workspace {team!r} is served here")

    async def drain(self, connection: Connection, key: tuple[int, str]) -> None:
        """Make one lane's calls in order, at the workspace's pace."""
        lane = self.waiting[key]
        channel = key[1]
        attempts = 0
        while lane:
            call, message = lane[0]
            delay = connection.schedule.delay(channel, time.monotonic(), call.paced)
            if delay > 0:
                await asyncio.sleep(delay)
            attempts += 1
            outcome = await self.post(connection, call)
            if isinstance(outcome, float) and attempts < self.settings.max_attempts:
                connection.schedule.rate_limited(outcome, time.monotonic())
                continue
            lane.pop(0)
            self.pending -= 1
            if outcome is None:
                metrics.SLACK_POSTS.labels("posted").inc()
                if call.paced:
                    connection.schedule.posted(channel, time.monotonic())
            elif isinstance(outcome, float):
                error = f"still rate-limited by Slack after {attempts} attempts"
                await self.dead_letter(message, error, attempts)
            elif outcome is not None:
                await self.dead_letter(message, outcome, attempts)
            attempts = 0
        del self.waiting[key]

    async def post(self, connection: Connection, call: translate.ApiCall) -> float | str | None:
        """None when done; seconds to wait on 429; an error text when it failed for good.

        slack-sdk's own method is used when it has one (it knows how each method wants
        its arguments sent); any other method is called with a JSON body.
        """
        try:
            method = getattr(connection.web, translate.sdk_method(call.method), None)
            with metrics.SLACK_POST_DURATION.time():
                if callable(method):
                    await method(**call.arguments)
                else:
                    await connection.web.api_call(call.method, json=call.arguments)
            return None
        except SlackApiError as exc:
            if exc.response.status_code == 429:
                metrics.SLACK_RATE_LIMITED.inc()
                retry_after = translate.retry_after(exc.response.headers.get("Retry-After"))
                log.warning(
                    "Slack rate limit on %s in %s; waiting %.0f s",
                    call.lane,
                    connection.workspace.name,
                    retry_after,
                )
                return retry_after
            error = translate.api_error(exc.response.status_code, exc.response.data)
            return f"Slack refused {call.method}: {error}"
        except Exception as exc:
            return f"{call.method} failed: {exc!r}"

    async def dead_letter(self, message: Any, error: str, attempts: int) -> None:
        metrics.SLACK_POSTS.labels("dead_lettered").inc()
        log.error("giving up on a Slack post after %d attempts: %s", attempts, error)
        report = {
            "message": message if isinstance(message, dict) else {"value": repr(message)},
            "error": error,
            "attempts": attempts,
        }
        try:
            try:
                await self.layer.send(DEAD_LETTERS, report)
            except MessageTooLarge:
                await self.layer.send(DEAD_LETTERS, translate.shrink_report(report))
        except LayerError as exc:
            log.error("could not report the failed post on %s: %s", DEAD_LETTERS, exc)
