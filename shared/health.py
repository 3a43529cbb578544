"""Liveness, readiness and metrics of one process, served over HTTP on its own port.

``--metrics-port`` turns it on. On the process's own asyncio loop (aiohttp), it serves:

- ``/livez``: 200 while the process's loop turns (the answer itself is the proof);
- ``/readyz``: 200 when the layer answers and every part accepts work, else 503 with
  the reasons, one per line: what a load balancer or a Kubernetes probe asks;
- ``/metrics``: every metric of ``switchroom.shared.metrics`` and the process's own
  (CPU, memory, file descriptors), in Prometheus's text format (OpenMetrics on request).
"""

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from switchroom.layers import BaseLayer, LayerError

from .metrics import LayerCollector

log = logging.getLogger("switchroom.health")

PROBE_TIMEOUT = 2.0


class Part(Protocol):
    """What a server or worker tells the health checks."""

    async def not_ready(self) -> str | None:
        """None while the part accepts work, else why it does not."""

    def served_channels(self) -> list[str]:
        """The channels (or process queues) the part reads, for the queue-depth gauge."""


class Health(Collector):
    """The readiness of a process: its layer answers and each of its parts accepts work.

    As a collector it exports ``switchroom_ready`` and the layer's metrics, as measured by
    the last check (``/metrics`` runs one before each scrape).
    """

    def __init__(self, layer: BaseLayer, probe_timeout: float = PROBE_TIMEOUT) -> None:
        self.layer = layer
        self.probe_timeout = probe_timeout
        self.parts: list[tuple[str, Part]] = []
        self.stopping = False
        self.ready: bool | None = None
        self.layer_metrics = LayerCollector(layer, self.served_channels)

    def collect(self) -> Iterable[Metric]:
        if self.ready is not None:
            yield GaugeMetricFamily(
                "switchroom_ready",
                "1 when the process was ready at the last check, else 0",
                value=int(self.ready),
            )
        yield from self.layer_metrics.collect()

    def add(self, name: str, part: Part) -> None:
        """Count ``part`` (named ``name`` in the reasons) in readiness and queue depths."""
        self.parts.append((name, part))

    def served_channels(self) -> list[str]:
        return list(dict.fromkeys(c for _, part in self.parts for c in part.served_channels()))

    async def layer_problem(self) -> str | None:
        """None when the layer answers within the probe timeout, else why not."""
        try:
            await asyncio.wait_for(self.layer.ping(), self.probe_timeout)
        except TimeoutError:
            return f"the channel layer did not answer within {self.probe_timeout:g} s"
        except LayerError as exc:
            return f"the channel layer does not answer: {exc}"
        return None

    async def problems(self) -> list[str]:
        """Why the process is not ready; empty when it is."""
        found = ["the process is stopping"] if self.stopping else []
        layer = await self.layer_problem()
        self.layer_metrics.measured(layer is None, await self._lengths() if layer is None else {})
        if layer is not None:
            found.append(layer)
        for name, part in self.parts:
            problem = await part.not_ready()
            if problem:
                found.append(f"{name}: {problem}")
        self.ready = not found
        return found

    async def _lengths(self) -> dict[str, int]:
        try:
            return await asyncio.wait_for(
                self.layer.queue_lengths(self.served_channels()), self.probe_timeout
            )
        except (TimeoutError, LayerError):
            return {}


class HealthEndpoint:
    """The HTTP listener for ``/livez``, ``/readyz`` and ``/metrics`` on the running loop."""

    def __init__(self, health: Health, bind: str, port: int) -> None:
        self.health = health
        self.bind = bind
        self.port = port
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; raises OSError when the port cannot be had."""
        app = web.Application()
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.bind, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self.runner.cleanup()
            self.runner = None
            raise
        self.port = self.runner.addresses[0][1]
        REGISTRY.register(self.health)
        log.info("metrics and health checks on http://%s:%d/metrics, /livez, /readyz", self.bind, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            REGISTRY.unregister(self.health)
            await self.runner.cleanup()
            self.runner = None

    async def livez(self, request: web.Request) -> web.Response:
        return web.Response(text="live\n")

    async def readyz(self, request: web.Request) -> web.Response:
        problems = await self.health.problems()
        if problems:
            return web.Response(status=503, text="".join(f"not ready: {p}\n" for p in problems))
        return web.Response(text="ready\n")

    async def metrics(self, request: web.Request) -> web.Response:
        await self.health.problems()
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(REGISTRY), headers={"Content-Type": content_type})
