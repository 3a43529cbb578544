"""Every Prometheus metric a Switchroom process exports, defined in one place.

Events (a request answered, an email accepted, a consumer finished) are counted where they
happen with the ``prometheus_client`` objects below, or, for the few bumped on every request
or message, with ``LoopCounter`` and ``LoopHistogram``: the same API without a lock per
increment, exported at scrape time. What can be read off live objects
(open connections, requests in flight, consumers running) and the per-frame WebSocket
counts (too hot for a locked counter) are read at scrape time by collectors, as are the
layer's own counts (``layer.stats``): every key the layer counts is exported, so counts a
layer adds later appear without a change here. ``docs/operations.md`` lists them all.
"""

import bisect
import math
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from switchroom import __version__
from switchroom.layers.stats import DROP_REASONS

# A ``_created`` gauge beside every counter and histogram doubles the series for a time
# Prometheus does not need (it sees restarts as resets).
disable_created_metrics()

INFO = Info("switchroom", "The Switchroom version this process runs")
INFO.info({"version": __version__})

# -- counted on the event loop ------------------------------------------------------------


class CountChild:
    """One series of a ``LoopCounter``."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (not negative: a counter only grows)."""
        if amount < 0:
            raise ValueError("a counter can only be incremented by a non-negative amount")
        self.value += amount


class HistogramChild:
    """One series of a ``LoopHistogram``: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        """Count ``amount`` in the first bucket whose bound is at least ``amount``."""
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class _LoopMetric(Collector):
    """A labelled metric whose series are plain numbers, read by the registry at scrape time.

    For events counted on an event loop's thread, once or more per request or message:
    ``prometheus_client``'s own counter takes a lock on every increment, which costs the
    worker more than the rest of a small message's bookkeeping. Same API as theirs
    (``labels(...).inc()``, ``observe``); not for counting from several threads at once.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        if not self.labelnames:
            self._unlabelled = self.labels()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: Any) -> Any:
        """The series of these label values (made on first use; keep it for a hot path)."""
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, not {values}")
            child = self._children[key] = self._child()
        return child

    def _child(self) -> Any:
        raise NotImplementedError


class LoopCounter(_LoopMetric):
    """A counter for the event loop's thread (see ``_LoopMetric``), exported as ``NAME_total``."""

    def _child(self) -> CountChild:
        return CountChild()

    def inc(self, amount: float = 1) -> None:
        """Add to an unlabelled counter."""
        self._unlabelled.inc(amount)

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value)
        yield family


class LoopHistogram(_LoopMetric):
    """A histogram for the event loop's thread (see ``_LoopMetric``), with
    ``prometheus_client``'s default buckets unless given others."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = tuple(bounds)
        super().__init__(name, documentation, labelnames, registry)

    def _child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def observe(self, amount: float) -> None:
        """Observe ``amount`` in an unlabelled histogram."""
        self._unlabelled.observe(amount)

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            cumulative = 0
            buckets = []
            for bound, count in zip(self.bounds, list(child.counts), strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(values, buckets, child.sum)
        yield family


# -- HTTP ---------------------------------------------------------------------------------

HTTP_REQUESTS = LoopCounter(
    "switchroom_http_requests", "HTTP responses sent, by status code (the server's own answers too)", ["code"]
)
HTTP_DURATION = LoopHistogram(
    "switchroom_http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its response",
)
HTTP_UNAVAILABLE = Counter(
    "switchroom_http_unavailable",
    "503 answers by cause: full (http.request full), layer (layer failed), timeout (no worker "
    "answered), stopping (server shutting down), client_limit (too many connections from one address)",
    ["cause"],
)
HTTP_CLIENT_GONE = Counter(
    "switchroom_http_client_disconnects", "Requests whose client left before the response was complete"
)

# -- WebSocket ----------------------------------------------------------------------------

WS_HANDSHAKES = Counter(
    "switchroom_websocket_handshakes",
    "WebSocket handshakes by outcome: accepted, rejected (by the app, 403), refused (origin or "
    "bad request), busy (layer full or failed, 503), timeout (no worker answered, 503), failed "
    "(invalid answer from the app, 503), stopping (server shutting down, 503)",
    ["outcome"],
)
WS_CONNECT_DURATION = Histogram(
    "switchroom_websocket_connect_duration_seconds",
    "Seconds from a handshake's arrival to the worker's accept",
)
WS_CLOSED_BY_SERVER = Counter(
    "switchroom_websocket_closed_by_server",
    "Sockets the server closed on its own, by cause: busy (1013), layer (1011), bad_reply (1011), "
    "slow_client (stopped reading), stopping (1001), worker_gone (1011: the worker process that "
    "hosts the socket stopped heartbeating or is gone)",
    ["cause"],
)


class FrameCounts:
    """Data frames through this process's sockets; plain integers, read at scrape time."""

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0


WS_FRAMES = FrameCounts()

# -- email --------------------------------------------------------------------------------

EMAIL_RECEIVED = Counter(
    "switchroom_email_received",
    "Inbound messages by outcome: accepted (250, on the layer), deferred (451, the sender retries), "
    "rejected (5xx)",
    ["outcome"],
)
EMAIL_ACCEPT_DURATION = Histogram(
    "switchroom_email_accept_duration_seconds", "Seconds from the end of DATA to the 250 answer"
)
EMAIL_OUTBOUND = Counter(
    "switchroom_email_outbound",
    "Outbound mail by outcome: delivered (to the relay), deferred (a temporary failure, retried), "
    "bounced (refused for good by the relay), dead_lettered (reported on email.send.failed)",
    ["outcome"],
)

# -- Slack --------------------------------------------------------------------------------

SLACK_EVENTS = Counter(
    "switchroom_slack_events",
    "Events from Slack by outcome: published (on the layer), ignored (the bot's own or a "
    "duplicate), refused (the layer could not take it; redelivered or retried), undeliverable",
    ["outcome"],
)
SLACK_ACKS = Counter("switchroom_slack_acks", "Socket Mode envelopes acknowledged")
SLACK_POSTS = Counter(
    "switchroom_slack_posts",
    "Posts to Slack by outcome: posted, dead_lettered (reported on slack.send.failed)",
    ["outcome"],
)
SLACK_RATE_LIMITED = Counter("switchroom_slack_rate_limited", "Web API calls answered 429 by Slack")
SLACK_POST_DURATION = Histogram("switchroom_slack_post_duration_seconds", "Seconds per Web API post")

# -- worker -------------------------------------------------------------------------------

WORKER_MESSAGES = LoopCounter(
    "switchroom_worker_messages",
    "Messages handled, by channel and outcome: ok, error (the consumer raised), malformed, "
    "unrouted (no route reads the channel; dropped)",
    ["channel", "outcome"],
)
WORKER_DURATION = LoopHistogram(
    "switchroom_worker_consumer_duration_seconds", "Seconds a consumer took, by channel", ["channel"]
)

# Every outcome is exported from the start, at 0, so a rate over the first event is right.
for _metric, _labels in (
    (HTTP_UNAVAILABLE, ("full", "layer", "timeout", "stopping", "client_limit")),
    (WS_HANDSHAKES, ("accepted", "rejected", "refused", "busy", "timeout", "failed", "stopping")),
    (WS_CLOSED_BY_SERVER, ("busy", "layer", "bad_reply", "slow_client", "stopping", "worker_gone")),
    (EMAIL_RECEIVED, ("accepted", "deferred", "rejected")),
    (EMAIL_OUTBOUND, ("delivered", "deferred", "bounced", "dead_lettered")),
    (SLACK_EVENTS, ("published", "ignored", "refused", "undeliverable")),
    (SLACK_POSTS, ("posted", "dead_lettered")),
):
    for _label in _labels:
        _metric.labels(_label)

# -- live objects, read at scrape time ----------------------------------------------------

http_servers: "weakref.WeakSet[Any]" = weakref.WeakSet()
email_servers: "weakref.WeakSet[Any]" = weakref.WeakSet()
slack_servers: "weakref.WeakSet[Any]" = weakref.WeakSet()
workers: "weakref.WeakSet[Any]" = weakref.WeakSet()

LIVE_GAUGES: list[tuple[str, str, "weakref.WeakSet[Any]", Callable[[Any], float]]] = [
    (
        "switchroom_http_connections_open",
        "Open HTTP connections (not counting WebSockets)",
        http_servers,
        lambda s: len(s.connections),
    ),
    (
        "switchroom_http_requests_in_flight",
        "Requests waiting for or receiving their response",
        http_servers,
        lambda s: len(s.in_flight),
    ),
    (
        "switchroom_websocket_connections_open",
        "Open WebSocket connections",
        http_servers,
        lambda s: sum(1 for sock in s.sockets.values() if sock.socket_open),
    ),
    ("switchroom_email_sessions_open", "Open SMTP sessions", email_servers, lambda s: len(s.sessions.open)),
    (
        "switchroom_email_deliveries_in_progress",
        "Outbound deliveries being attempted or waiting to retry",
        email_servers,
        lambda s: len(s.outbox.running),
    ),
    (
        "switchroom_email_unread_oldest_seconds",
        "Seconds the oldest mail on email.receive has waited unhandled, at the last look (0: none)",
        email_servers,
        lambda s: s.janitor.counts["oldest_age"],
    ),
    (
        "switchroom_slack_unread_oldest_seconds",
        "Seconds the oldest event on slack.event has waited unhandled, at the last look (0: none)",
        slack_servers,
        lambda s: s.janitor.counts["oldest_age"],
    ),
    (
        "switchroom_slack_posts_waiting",
        "Posts taken from the layer and not yet posted or dead-lettered",
        slack_servers,
        lambda s: s.pending,
    ),
    ("switchroom_worker_consumers_running", "Consumers running now", workers, lambda w: len(w.running)),
]


class LiveCollector(Collector):
    """Gauges of the live servers and workers of this process, and the WebSocket frame counts."""

    def collect(self) -> Iterable[Metric]:
        for name, documentation, objects, measure in LIVE_GAUGES:
            yield GaugeMetricFamily(name, documentation, value=sum(measure(o) for o in list(objects)))
        frames = CounterMetricFamily(
            "switchroom_websocket_frames", "WebSocket data frames, by direction", labels=["direction"]
        )
        frames.add_metric(["received"], WS_FRAMES.received)
        frames.add_metric(["sent"], WS_FRAMES.sent)
        yield frames


REGISTRY.register(LiveCollector())

# -- the layer ----------------------------------------------------------------------------

_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")

# What each count the layers keep means; a count not listed here is exported all the same.
LAYER_COUNTS = {
    "sent": "Messages this process put on the layer",
    "received": "Messages this process took from the layer",
    "group_sends": "Group sends made by this process",
    "group_reached": "Group members those sends reached",
    "group_skipped_full": "Group members skipped because their queue was full",
    "group_skipped_dead": "Group members skipped because their process had stopped",
    "group_skipped_expired": "Group memberships that had lapsed, removed by a send",
    "outages": "Times a Redis node stopped answering this process",
    "presence_tracks": "Presence entries this process tracked (or tracked again)",
    "presence_events": "Presence joins and leaves this process flushed",
    "presence_diffs": "Presence diffs this process sent to watchers",
}


INBOX_LABEL = "inbox!"


def queue_label(channel: str) -> str:
    """A channel as a label, without any process id, so a restarted process keeps the same
    series: ``http.response.<id>!`` is ``http.response!``, a process's inbox queue
    (``<id>!``, where all its ``!`` addresses arrive) is ``inbox!``."""
    if "!" not in channel:
        return channel
    head = channel[: channel.index("!")]
    return head.rpartition(".")[0] + "!" if "." in head else INBOX_LABEL


class LayerCollector(Collector):
    """The counts of one layer (``layer.stats``), its reachability and the depth of the
    queues this process serves; the last two are measured by ``refresh`` before a scrape."""

    def __init__(self, layer: Any, channels: Callable[[], Sequence[str]]) -> None:
        self.layer = layer
        self.channels = channels
        self.up: bool | None = None
        self.lengths: dict[str, int] = {}

    def measured(self, up: bool, lengths: dict[str, int]) -> None:
        """Keep what the last check found: whether the layer answered, and the queue lengths."""
        self.up = up
        self.lengths = {queue_label(channel): length for channel, length in lengths.items()}

    def collect(self) -> Iterable[Metric]:
        stats = self.layer.stats
        for key, value in sorted(stats.counts.items()):
            name = "switchroom_layer_" + _NOT_NAME.sub("_", key)
            documentation = LAYER_COUNTS.get(key, f"The layer's count of {key!r}")
            yield CounterMetricFamily(name, documentation, value=value)
        dropped = CounterMetricFamily(
            "switchroom_layer_dropped", "Messages the layer dropped, by reason", labels=["reason"]
        )
        for reason in sorted({*DROP_REASONS, *stats.dropped}):
            dropped.add_metric([reason], stats.dropped[reason])
        yield dropped
        errors = CounterMetricFamily(
            "switchroom_layer_errors",
            "Failed layer operations, by operation and error (ChannelFull, LayerUnavailable, ...)",
            labels=["operation", "error"],
        )
        for (operation, error), value in sorted(stats.errors.items()):
            errors.add_metric([operation, error], value)
        yield errors
        if self.up is not None:
            yield GaugeMetricFamily(
                "switchroom_layer_up", "1 when the layer answered the last check, else 0", value=int(self.up)
            )
        depth = GaugeMetricFamily(
            "switchroom_layer_queue_messages",
            "Messages waiting in the queues this process reads, by channel",
            labels=["channel"],
        )
        for channel, length in sorted(self.lengths.items()):
            depth.add_metric([channel], length)
        yield depth
