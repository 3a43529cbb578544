"""Runs real ``switchroom worker`` processes and plays the interface server on the layer."""

import uuid

from switchroom.layers import get_layer

from ..processes import ROOT, SwitchroomProcess

__all__ = ["ROOT", "WorkerProcess", "http", "mailbox", "read_response", "ws_message"]


class WorkerProcess(SwitchroomProcess):
    """A ``switchroom worker`` subprocess on its own key prefix, ready once it reads."""

    name = "worker"

    def __init__(self, redis_url: str, target: str, *args: str, env: dict[str, str] | None = None) -> None:
        """``redis_url`` with a ``prefix`` joins that deployment; without, gets a fresh prefix."""
        fresh = f"{'&' if '?' in redis_url else '?'}prefix=wt{uuid.uuid4().hex[:10]}"
        self.url = redis_url if "prefix=" in redis_url else redis_url + fresh
        super().__init__(
            ["worker", target, "--layer", self.url, *args], env, ready="worker reading", timeout=30
        )

    def layer(self):
        """A layer on the same Redis and prefix as the worker."""
        return get_layer(self.url)


async def http(layer, path, method="GET", body=b"", headers=(), query=b"", body_channel=None, timeout=10):
    """Send an ``http.request`` and collect the whole response: (status, headers dict, body, parts)."""
    reply = await mailbox(layer, "http.response")
    message = {
        "reply_channel": reply.address,
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "query_string": query,
        "root_path": "",
        "headers": [[b"host", b"test"], *[[k, v] for k, v in headers]],
        "body": body,
        "client": ["127.0.0.1", 5555],
        "server": ["127.0.0.1", 80],
    }
    if body_channel:
        message["body_channel"] = body_channel
    await layer.send("http.request", message)
    return await read_response(reply, timeout)


async def mailbox(layer, kind):
    """An address in the layer's inbox whose messages the test reads one by one."""
    await layer.inbox.start()
    return layer.inbox.mailbox(kind)


async def read_response(reply, timeout=10):
    first = await reply.get(timeout)
    assert first is not None, "no response"
    parts = [first]
    while parts[-1].get("more_content"):
        chunk = await reply.get(timeout)
        assert chunk is not None, "response stopped mid-way"
        parts.append(chunk)
    body = b"".join(p.get("content", b"") for p in parts)
    return first["status"], {bytes(k): bytes(v) for k, v in first["headers"]}, body, parts


def ws_message(reply, path, order=0, **fields):
    return {"reply_channel": reply, "path": path, "order": order, **fields}
