"""A node's Prometheus metrics: plain integers on the hot path, read by a collector at scrape.

Rules:
1. Every node owns its registry (constructor injection; prometheus-client's global registry is
   never used), so two nodes in one process, as in the tests, never share a series.
2. Nothing here runs per recipient. A publish's deliveries are counted once, after the hub's
   loop (`hub.deliver` returns how many sessions got the frame; bytes are that count times
   the frame's length); a session's own replies once per frame it writes itself. The hot
   counters are attributes of plain objects (`int += n`: no lock, no label lookup), turned
   into metric families only when /metrics is scraped. prometheus-client's own types serve
   only what happens at most once per HTTP request (the publish latency histogram).
3. Labels are bounded: `app_id` (configured apps), `quota` (the setting that refused),
   `code` (the close codes the server knows;
   any other code a client sends is counted as "other"), `endpoint` (the name of the HTTP API
   endpoint the request's route resolved to, `server.routes`, or "unknown"; never a raw path,
   and the path is not parsed again for it), `status`, `limit` (the names of the admission
   settings) and `reason` (the fixed reasons the entrance closes a connection for: `census`,
   `deadlines`). No channel, socket, user or address label.
4. Monotonic time (`timer`, injected) for durations; the node's wall clock is not used here.

prometheus-client is used, not a hand-written exposition: per-node registries are one
constructor argument, and it gets the text and OpenMetrics formats (escaping, histogram
series, content negotiation) right, and parses them back in the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ressonance.protocol.errors import ErrorCode

PREFIX: Final = "ressonance_"
# Publish-to-write latency, from 100 µs (one local subscriber) to 2.5 s (a stalled backbone).
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
ABNORMAL_CLOSURE: Final = 1006  # RFC 6455 §7.1.5: closed without a Close frame
_KNOWN_CODES: Final = frozenset(range(1000, 1016)) | frozenset(int(code) for code in ErrorCode)


def code_label(code: int | None) -> str:
    """A close code as a label value: known codes as themselves, any other as "other"."""
    if code is None:
        code = ABNORMAL_CLOSURE
    return str(code) if code in _KNOWN_CODES else "other"


class AppCounters:
    """The counters of one app on this node; sessions of the app hold a reference to them."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "connections",
        "dropped",
        "history_bytes",
        "history_reads",
        "history_writes",
        "idempotent_replays",
        "messages_in",
        "messages_out",
        "published",
        "resumes_gap",
        "resumes_recovered",
        "slow_disconnects",
    )

    def __init__(self) -> None:
        self.connections = 0
        self.messages_in = 0
        self.bytes_in = 0
        self.messages_out = 0
        self.bytes_out = 0
        self.published = 0
        self.slow_disconnects = 0
        self.dropped = 0
        self.history_writes = 0  # events kept in history
        self.history_reads = 0  # history reads: the HTTP API's and resumes'
        self.history_bytes = 0  # bytes of history kept (the store's figure, refreshed)
        self.resumes_recovered = 0
        self.resumes_gap = 0
        self.idempotent_replays = 0  # publishes answered from an Idempotency-Key, not sent

    def sent(self, frame: bytes, count: int = 1) -> None:
        """`frame` was handed to `count` of this app's connections."""
        self.messages_out += count
        self.bytes_out += count * len(frame)

    def received(self, text: str) -> None:
        """One text message from a client of this app."""
        self.messages_in += 1
        self.bytes_in += len(text) if text.isascii() else len(text.encode(errors="surrogatepass"))


class Metrics:
    """Every metric of one node, and its Prometheus exposition."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        self.timer = timer
        self.connections = 0
        self.peak = 0
        self.opened = 0
        self.closed: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.throttled: dict[str, int] = {}  # admission refusals by the setting that refused
        self.http_requests: dict[tuple[str, str], int] = {}
        self.quota_refusals: dict[tuple[str, str], int] = {}
        self.dropped: dict[str, int] = {}  # connections cut before a session, by reason
        self.open_connections = 0  # every connection of the node, set once a tick
        self.connection_capacity: int | None = None  # from the descriptor limit
        self.loop_lag = 0.0
        self.apps: dict[str, AppCounters] = {}
        self.publish_latency = Histogram(
            "ressonance_publish_to_write_seconds",
            "Time from the HTTP API accepting an event to this node finishing its local writes",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))

    def app(self, app_id: str) -> AppCounters:
        counters = self.apps.get(app_id)
        if counters is None:
            counters = self.apps[app_id] = AppCounters()
        return counters

    # --- connections ----------------------------------------------------------------------

    def connection_opened(self, counters: AppCounters) -> None:
        counters.connections += 1
        self.opened += 1
        self.connections += 1
        self.peak = max(self.peak, self.connections)

    def connection_closed(self, counters: AppCounters, code: int | None) -> None:
        counters.connections -= 1
        self.connections -= 1
        label = code_label(code)
        self.closed[label] = self.closed.get(label, 0) + 1

    def connection_refused(self, code: int) -> None:
        """A WebSocket closed at once, before it became a session (unknown app, quota...)."""
        label = code_label(code)
        self.refused[label] = self.refused.get(label, 0) + 1

    def connection_throttled(self, setting: str) -> None:
        """A WebSocket refused by admission control; `setting` names the limit (bounded)."""
        self.throttled[setting] = self.throttled.get(setting, 0) + 1

    def connection_dropped(self, reason: str) -> None:
        """A connection closed by the entrance (a deadline, a size or count limit)."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    # --- deliveries, HTTP API, event loop ----------------------------------------------------

    def delivered(self, app_id: str, frame: bytes, count: int) -> None:
        """A publish's frame went to `count` local sessions of a channel of app `app_id`."""
        if count:
            self.app(app_id).sent(frame, count)

    def published(self, app_id: str, started: float) -> None:
        """One event of the HTTP API was written locally; `started` is a `timer()` reading."""
        self.app(app_id).published += 1
        self.publish_latency.observe(self.timer() - started)

    def http_request(self, endpoint: str, status: int) -> None:
        key = (endpoint, str(status))
        self.http_requests[key] = self.http_requests.get(key, 0) + 1

    def quota_refused(self, app_id: str, quota: str) -> None:
        """A connection, request or client event was refused by `quota` (a setting name)."""
        key = (app_id, quota)
        self.quota_refusals[key] = self.quota_refusals.get(key, 0) + 1

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The body and content type of a scrape, in the format the `Accept` header asks for."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


def _counter(name: str, documentation: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, documentation, labels=list(labels))


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, labels=list(labels))


# (metric suffix, documentation, AppCounters attribute); all labelled with app_id.
_APP_COUNTERS: Final = (
    ("websocket_messages_received", "WebSocket text messages received", "messages_in"),
    ("websocket_bytes_received", "Bytes of WebSocket text messages received", "bytes_in"),
    ("websocket_messages_sent", "WebSocket text messages written to connections", "messages_out"),
    ("websocket_bytes_sent", "Bytes of WebSocket text messages written", "bytes_out"),
    ("events_published", "Events accepted by the HTTP API and written locally", "published"),
    (
        "slow_client_disconnects",
        "Connections closed with 4100 because they did not read fast enough",
        "slow_disconnects",
    ),
    (
        "slow_client_dropped_messages",
        "Messages dropped by the drop_oldest slow-client policy",
        "dropped",
    ),
    ("history_writes", "Events kept in channel history", "history_writes"),
    ("history_reads", "Reads of channel history (HTTP API and resumes)", "history_reads"),
    (
        "idempotent_duplicates",
        "Publishes with a known Idempotency-Key, answered without sending again",
        "idempotent_replays",
    ),
)


class _Collector:
    """Turns a `Metrics`'s plain counters into metric families, at scrape time only."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._connections()
        yield from self._apps()
        http = _counter(
            "http_requests", "HTTP API requests by route and status", ("endpoint", "status")
        )
        for (endpoint, status), value in sorted(self.metrics.http_requests.items()):
            http.add_metric([endpoint, status], value)
        yield http
        refusals = _counter(
            "quota_refusals",
            "Connections, HTTP requests and client events refused by an app quota or rate limit",
            ("app_id", "quota"),
        )
        for (app_id, quota), value in sorted(self.metrics.quota_refusals.items()):
            refusals.add_metric([app_id, quota], value)
        yield refusals
        lag = _gauge("event_loop_lag_seconds", "How late the node's last timer tick woke up")
        lag.add_metric([], self.metrics.loop_lag)
        yield lag

    def _connections(self) -> Iterator[Metric]:
        m = self.metrics
        current = _gauge("connections", "Open WebSocket connections (sessions)")
        current.add_metric([], m.connections)
        peak = _gauge("connections_peak", "Most open connections at once since the node started")
        peak.add_metric([], m.peak)
        opened = _counter("connections_opened", "WebSocket connections accepted as sessions")
        opened.add_metric([], m.opened)
        closed = _counter("connections_closed", "Sessions ended, by close code", ("code",))
        for code, value in sorted(m.closed.items()):
            closed.add_metric([code], value)
        refused = _counter(
            "connections_refused", "WebSockets closed before becoming a session", ("code",)
        )
        for code, value in sorted(m.refused.items()):
            refused.add_metric([code], value)
        throttled = _counter(
            "connections_throttled",
            "WebSockets refused by admission control (4100), by the limit that refused",
            ("limit",),
        )
        for setting, value in sorted(m.throttled.items()):
            throttled.add_metric([setting], value)
        yield from (current, peak, opened, closed, refused, throttled)
        yield from self._entrance()

    def _entrance(self) -> Iterator[Metric]:
        m = self.metrics
        dropped = _counter(
            "connections_dropped",
            "Connections the server closed before they became sessions (deadlines, head size, "
            "per-address and descriptor limits), by reason",
            ("reason",),
        )
        for reason, value in sorted(m.dropped.items()):
            dropped.add_metric([reason], value)
        open_ = _gauge(
            "open_connections", "Every connection of the node: opening, HTTP and WebSocket"
        )
        open_.add_metric([], m.open_connections)
        yield from (dropped, open_)
        if m.connection_capacity is not None:
            capacity = _gauge(
                "connection_capacity",
                "Connections served normally: the descriptor limit less those in use at start "
                "and reserved_descriptors",
            )
            capacity.add_metric([], m.connection_capacity)
            yield capacity

    def _apps(self) -> Iterator[Metric]:
        apps = sorted(self.metrics.apps.items())
        connections = _gauge("app_connections", "Open connections of each app", ("app_id",))
        for app_id, counters in apps:
            connections.add_metric([app_id], counters.connections)
        yield connections
        for name, documentation, attribute in _APP_COUNTERS:
            family = _counter(name, documentation, ("app_id",))
            for app_id, counters in apps:
                family.add_metric([app_id], getattr(counters, attribute))
            yield family
        retained = _gauge(
            "history_retained_bytes",
            "Bytes of event names and data kept in history (the whole cluster's, on shared state)",
            ("app_id",),
        )
        resumes = _counter(
            "resume_requests",
            "Subscriptions that asked to resume, by outcome (recovered, or gap: told it failed)",
            ("app_id", "outcome"),
        )
        for app_id, counters in apps:
            retained.add_metric([app_id], counters.history_bytes)
            resumes.add_metric([app_id, "recovered"], counters.resumes_recovered)
            resumes.add_metric([app_id, "gap"], counters.resumes_gap)
        yield from (retained, resumes)
