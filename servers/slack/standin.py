"""A local stand-in for Slack: the Web API and the Socket Mode and RTM WebSockets,
speaking Slack's wire shapes so the real slack-sdk clients run unmodified.

Tests and the demo point slack-sdk's ``base_url`` at ``http://127.0.0.1:PORT/api/``. Every
token belongs to workspace ``T0STANDIN`` unless ``add_workspace`` gives it another. Any
Web API method is recorded and answered in Slack's shape (``chat.*`` with a ts, ``views.*``
with a view, file uploads v2 in their three steps), with Slack's errors for a missing
channel, text, trigger or user. Events are injected, and what the app did is read back,
from Python (``StandIn``) or over HTTP from another process::

    POST /_standin/event       {"event": {...}, "team": "T.."}   deliver to the team's clients
    POST /_standin/envelope    {"type": "slash_commands", "payload": {...}}   other Socket Mode kinds
    POST /_standin/redeliver   {"envelope_id": "..."}    send an envelope again, acked or not
    POST /_standin/disconnect  {"reason": "warning"}     Socket Mode "disconnect" message
    POST /_standin/drop                                  close every socket abruptly
    POST /_standin/ratelimit   {"count": 2, "retry_after": 1}   next calls get HTTP 429
    GET  /_standin/posts                                 Web API calls made (method and arguments)
    GET  /_standin/acks                                  Socket Mode envelope ids acknowledged
    GET  /_standin/responses                             bodies posted to response_urls

Envelopes are delivered again every ``ack_timeout`` seconds until acknowledged, up to
``attempts`` times in all, like Slack; ``lose_acks`` makes it ignore the next acks.

    python -m switchroom.servers.slack.standin --port 3030
"""

import argparse
import asyncio
import itertools
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from switchroom.shared.logs import FORMATS, setup_logging

TEAM = "T0STANDIN"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"


class StandIn:
    """The stand-in's state and its aiohttp application."""

    def __init__(self, ack_timeout: float = 3.0, attempts: int = 4) -> None:
        self.ack_timeout = ack_timeout
        self.attempts = attempts
        self.posts: list[dict[str, Any]] = []
        self.acks: list[str] = []
        # What came with each ack (the answer to a slash command or an interaction).
        self.ack_payloads: dict[str, Any] = {}
        self.lose_acks = 0
        # Every delivery of an envelope: (envelope_id, retry_attempt).
        self.deliveries: list[tuple[str, int]] = []
        self.envelopes: dict[str, tuple[str, dict[str, Any], str]] = {}
        self.responses: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.uploads: dict[str, bytes] = {}
        self.calls: list[str] = []
        self.socket_clients: set[web.WebSocketResponse] = set()
        self.rtm_clients: set[web.WebSocketResponse] = set()
        self.teams: dict[str, str] = {}
        self.client_team: dict[web.WebSocketResponse, str] = {}
        self.connects = 0
        self.rate_limited = 0
        self.retry_after = 1
        self._ts = itertools.count(1)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.posted = asyncio.Event()

    # -- running ------------------------------------------------------------------

    def add_workspace(self, team: str, bot_token: str, app_token: str | None = None) -> None:
        """Make these tokens belong to workspace ``team`` (posts and events are kept apart)."""
        self.teams[bot_token] = team
        if app_token:
            self.teams[app_token] = team

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.api)
        app.router.add_get("/socket", self.socket_mode)
        app.router.add_get("/rtm", self.rtm)
        app.router.add_post("/_standin/event", self.http_event)
        app.router.add_post("/_standin/envelope", self.http_envelope)
        app.router.add_post("/_standin/redeliver", self.http_redeliver)
        app.router.add_post("/_standin/upload/{file_id}", self.upload)
        app.router.add_post("/_standin/response/{ident}", self.response_url)
        app.router.add_get("/_standin/responses", self.http_responses)
        app.router.add_post("/_standin/disconnect", self.http_disconnect)
        app.router.add_post("/_standin/drop", self.http_drop)
        app.router.add_post("/_standin/ratelimit", self.http_ratelimit)
        app.router.add_get("/_standin/posts", self.http_posts)
        app.router.add_get("/_standin/acks", self.http_acks)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "StandIn":
        self.runner = web.AppRunner(self.app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def stop(self) -> None:
        for ws in [*self.socket_clients, *self.rtm_clients]:
            await ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    # -- Web API --------------------------------------------------------------------

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        body = await self._body(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        team = self.teams.get(token, TEAM)
        if method == "auth.test":
            return web.json_response(
                {
                    "ok": True,
                    "team_id": team,
                    "team": "Stand-in",
                    "user_id": BOT_USER,
                    "bot_id": BOT_ID,
                    "user": "switchroom",
                    "url": "https://standin.example/",
                }
            )
        if method == "apps.connections.open":
            if not token.startswith("xapp-"):
                return web.json_response({"ok": False, "error": "not_allowed_token_type"})
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket?team={team}"})
        if method in ("rtm.connect", "rtm.start"):
            return web.json_response(
                {
                    "ok": True,
                    "url": f"ws://127.0.0.1:{self.port}/rtm?team={team}",
                    "self": {"id": BOT_USER},
                    "team": {"id": team},
                }
            )
        if self.rate_limited > 0:
            self.rate_limited -= 1
            self.refused.append({"method": method, "at": time.monotonic(), **body})
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        error = self._refusal(method, body)
        if error:
            self.refused.append({"method": method, "at": time.monotonic(), "error": error, **body})
            return web.json_response({"ok": False, "error": error})
        ts = body.get("ts") if method in ("chat.update", "chat.delete") else None
        ts = ts or f"{int(time.time())}.{next(self._ts):06d}"
        answer: dict[str, Any] = {"ok": True}
        if method.startswith("chat."):
            answer.update(channel=body.get("channel"), ts=ts)
        elif method.startswith("views."):
            answer["view"] = {"id": body.get("view_id") or "V" + uuid.uuid4().hex[:8].upper(), **_view(body)}
        elif method == "files.getUploadURLExternal":
            file_id = "F" + uuid.uuid4().hex[:10].upper()
            answer.update(
                file_id=file_id, upload_url=f"http://127.0.0.1:{self.port}/_standin/upload/{file_id}"
            )
        elif method == "files.completeUploadExternal":
            answer["files"] = [
                {"id": f.get("id"), "title": f.get("title"), "size": len(self.uploads.get(f.get("id"), b""))}
                for f in body.get("files") or []
            ]
        self.posts.append({"method": method, "at": time.monotonic(), "ts": ts, "team": team, **body})
        self.posted.set()
        return web.json_response(answer)

    @staticmethod
    def _refusal(method: str, body: dict[str, Any]) -> str | None:
        """Slack's error for a call missing what its method needs, or None."""
        if method.startswith(("chat.", "reactions.")) and not body.get("channel"):
            return "channel_not_found"
        if method in ("chat.postMessage", "chat.postEphemeral") and not (
            body.get("text") or body.get("blocks") or body.get("attachments")
        ):
            return "no_text"
        if method == "chat.postEphemeral" and not body.get("user"):
            return "user_not_in_channel"
        if method in ("chat.update", "chat.delete", "reactions.add", "reactions.remove") and not (
            body.get("ts") or body.get("timestamp")
        ):
            return "message_not_found"
        if method in ("views.open", "views.push") and not body.get("trigger_id"):
            return "invalid_trigger_id"
        if method == "views.publish" and not body.get("user_id"):
            return "user_not_found"
        if method == "views.update" and not (body.get("view_id") or body.get("external_id")):
            return "not_found"
        return None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            try:
                data = await request.json()
                return data if isinstance(data, dict) else {}
            except ValueError:
                return {}
        form = await request.post()
        values = {**request.query, **{k: v for k, v in form.items() if isinstance(v, str)}}
        for key in ("blocks", "attachments", "view", "files", "metadata"):
            if isinstance(values.get(key), str):
                try:
                    values[key] = json.loads(values[key])
                except ValueError:
                    pass
        return values

    # -- WebSockets -----------------------------------------------------------------

    async def socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connects += 1
        self.socket_clients.add(ws)
        self.client_team[ws] = request.query.get("team", TEAM)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.socket_clients),
                "debug_info": {"host": "standin", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0STANDIN"},
            }
        )
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(frame.data)
                    except ValueError:
                        continue
                    if isinstance(data, dict) and data.get("envelope_id"):
                        if self.lose_acks > 0:
                            self.lose_acks -= 1
                            continue
                        self.acks.append(data["envelope_id"])
                        self.ack_payloads[data["envelope_id"]] = data.get("payload")
        finally:
            self.socket_clients.discard(ws)
            self.client_team.pop(ws, None)
        return ws

    async def rtm(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connects += 1
        self.rtm_clients.add(ws)
        self.client_team[ws] = request.query.get("team", TEAM)
        await ws.send_json({"type": "hello"})
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(frame.data)
                    except ValueError:
                        continue
                    if isinstance(data, dict) and data.get("type") == "ping":
                        await ws.send_json({"type": "pong", "reply_to": data.get("id")})
        finally:
            self.rtm_clients.discard(ws)
            self.client_team.pop(ws, None)
        return ws

    # -- injecting ------------------------------------------------------------------

    def _clients(self, clients: set[web.WebSocketResponse], team: str) -> list[web.WebSocketResponse]:
        return [ws for ws in clients if self.client_team.get(ws) == team]

    async def push_event(self, event: dict[str, Any], team: str = TEAM) -> str:
        """Deliver an Events API event to the team's Socket Mode clients (redelivered until
        acked) and RTM clients; returns its event_id."""
        event = {"ts": f"{int(time.time())}.{next(self._ts):06d}", "team": team, **event}
        event_id = "Ev" + uuid.uuid4().hex[:10].upper()
        for ws in self._clients(self.rtm_clients, team):
            await ws.send_json(event)
        payload = {
            "token": "standin",
            "team_id": team,
            "api_app_id": "A0STANDIN",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
        await self.push_envelope("events_api", payload, team)
        return event_id

    async def push_envelope(self, kind: str, payload: dict[str, Any], team: str = TEAM) -> str:
        """Deliver a Socket Mode envelope (``events_api``, ``slash_commands``, ``interactive``)
        to one of the team's clients, again until acked; returns its envelope_id. A slash
        command or an interaction gets a ``response_url`` on the stand-in if it has none."""
        envelope_id = str(uuid.uuid4())
        if kind != "events_api" and isinstance(payload, dict) and "response_url" not in payload:
            payload = {
                **payload,
                "response_url": f"http://127.0.0.1:{self.port}/_standin/response/{envelope_id}",
            }
        self.envelopes[envelope_id] = (kind, payload, team)
        if self._clients(self.socket_clients, team):
            asyncio.get_running_loop().create_task(self._deliver(envelope_id, kind, payload, team))
        return envelope_id

    async def redeliver(self, envelope_id: str) -> None:
        """Send an envelope again, acked or not (Slack does, now and then)."""
        kind, payload, team = self.envelopes[envelope_id]
        attempt = sum(1 for ident, _ in self.deliveries if ident == envelope_id)
        await self._send_envelope(envelope_id, kind, payload, team, attempt)

    async def _send_envelope(
        self, envelope_id: str, kind: str, payload: dict[str, Any], team: str, attempt: int
    ) -> None:
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": attempt,
            "retry_reason": "timeout" if attempt else "",
            "payload": payload,
        }
        self.deliveries.append((envelope_id, attempt))
        for ws in self._clients(self.socket_clients, team)[:1]:
            try:
                await ws.send_json(envelope)
            except ConnectionError:
                pass

    async def _deliver(self, envelope_id: str, kind: str, payload: dict[str, Any], team: str) -> None:
        for attempt in range(self.attempts):
            await self._send_envelope(envelope_id, kind, payload, team, attempt)
            deadline = time.monotonic() + self.ack_timeout
            while time.monotonic() < deadline:
                if envelope_id in self.acks:
                    return
                await asyncio.sleep(0.02)

    async def upload(self, request: web.Request) -> web.Response:
        """Step 2 of a file upload v2: the bytes, to the URL files.getUploadURLExternal gave."""
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text="OK - uploaded")

    async def response_url(self, request: web.Request) -> web.Response:
        """A slash command's or interaction's response_url."""
        body = await request.json()
        self.responses.append({"ident": request.match_info["ident"], "at": time.monotonic(), **body})
        return web.Response(text="ok")

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        for ws in list(self.socket_clients):
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}})

    async def drop(self) -> None:
        for ws in [*self.socket_clients, *self.rtm_clients]:
            await ws.close(code=1006)

    async def wait_for_posts(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.posts) < count:
                self.posted.clear()
                await self.posted.wait()
        return self.posts

    # -- the same over HTTP ---------------------------------------------------------

    async def http_event(self, request: web.Request) -> web.Response:
        data = await request.json()
        event_id = await self.push_event(data["event"], data.get("team", TEAM))
        return web.json_response({"ok": True, "event_id": event_id})

    async def http_envelope(self, request: web.Request) -> web.Response:
        data = await request.json()
        envelope_id = await self.push_envelope(data["type"], data["payload"], data.get("team", TEAM))
        return web.json_response({"ok": True, "envelope_id": envelope_id})

    async def http_redeliver(self, request: web.Request) -> web.Response:
        data = await request.json()
        await self.redeliver(data["envelope_id"])
        return web.json_response({"ok": True})

    async def http_responses(self, request: web.Request) -> web.Response:
        return web.json_response(self.responses)

    async def http_disconnect(self, request: web.Request) -> web.Response:
        data = await request.json() if request.can_read_body else {}
        await self.disconnect(data.get("reason", "refresh_requested"))
        return web.json_response({"ok": True})

    async def http_drop(self, request: web.Request) -> web.Response:
        await self.drop()
        return web.json_response({"ok": True})

    async def http_ratelimit(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.rate_limited = int(data.get("count", 1))
        self.retry_after = int(data.get("retry_after", 1))
        return web.json_response({"ok": True})

    async def http_posts(self, request: web.Request) -> web.Response:
        return web.json_response(self.posts)

    async def http_acks(self, request: web.Request) -> web.Response:
        return web.json_response(self.acks)


def _view(body: dict[str, Any]) -> dict[str, Any]:
    """The view a views.* call sent (a JSON string on a form body, an object in JSON)."""
    view = body.get("view")
    return view if isinstance(view, dict) else {}


async def _serve(host: str, port: int) -> None:
    standin = await StandIn().start(host, port)
    logging.getLogger("switchroom.standin").info("Slack stand-in: API at %s", standin.base_url)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m switchroom.servers.slack.standin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3030)
    parser.add_argument("--log-format", choices=FORMATS, default="text")
    args = parser.parse_args(argv)
    setup_logging("info", "standin", args.log_format)
    try:
        asyncio.run(_serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
