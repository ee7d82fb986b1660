"""The webhook sender's Prometheus metrics, on the node's own registry (server/metrics.py).

Rules (those of server/metrics.py): plain counters updated by the sender, turned into metric
families only at scrape time; labels bounded: `app_id` (configured apps), `outcome` (the
`OUTCOMES`), `state` (the `STATES` of an endpoint). The queue depth and oldest age are of
the lanes this node works (each lane is worked by one node: summed over the nodes they are
the cluster's); they are refreshed by the sender every few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX: Final = "ressonance_webhook_"
# delivered: the endpoint answered 2xx; failed: an attempt that will be retried;
# dead_lettered: given up after the retry window; dropped: its endpoint or app is gone.
OUTCOMES: Final = ("delivered", "failed", "dead_lettered", "dropped")
STATES: Final = ("healthy", "failing", "circuit_open")
# From an event to its delivery: a batch wait (ms) to a day of retries.
DELIVERY_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)


class WebhookMetrics:
    """Counters of one node's webhook sender."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events: dict[tuple[str, str], int] = {}  # (app, outcome) -> events
        self.requests: dict[tuple[str, str], int] = {}  # (app, outcome) -> requests
        self.retries: dict[str, int] = {}
        self.depth: dict[str, tuple[int, float]] = {}  # app -> (events, oldest age s)
        self.endpoints: dict[str, str] = {}  # lane -> state
        self.dropped_buffer = 0
        self.latency = Histogram(
            f"{PREFIX}delivery_seconds",
            "Time from a webhook event happening to its delivery (2xx)",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        registry.register(_Collector(self))

    def counted(self, app_id: str, outcome: str, events: int) -> None:
        """One request (or a batch given up) of `events` events ended with `outcome`."""
        key = (app_id, outcome)
        self.events[key] = self.events.get(key, 0) + events
        self.requests[key] = self.requests.get(key, 0) + 1
        if outcome == "failed":
            self.retries[app_id] = self.retries.get(app_id, 0) + 1

    def delivered_after(self, seconds: list[float]) -> None:
        for value in seconds:
            self.latency.observe(max(0.0, value))


class _Collector:
    def __init__(self, metrics: WebhookMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        events = CounterMetricFamily(
            PREFIX + "events", "Webhook events by outcome", labels=["app_id", "outcome"]
        )
        requests = CounterMetricFamily(
            PREFIX + "requests", "Webhook requests by outcome", labels=["app_id", "outcome"]
        )
        for (app_id, outcome), value in sorted(m.events.items()):
            events.add_metric([app_id, outcome], value)
        for (app_id, outcome), value in sorted(m.requests.items()):
            requests.add_metric([app_id, outcome], value)
        retries = CounterMetricFamily(
            PREFIX + "retries", "Webhook requests that failed and are retried", labels=["app_id"]
        )
        for app_id, value in sorted(m.retries.items()):
            retries.add_metric([app_id], value)
        yield from (events, requests, retries)
        yield from self._queue()

    def _queue(self) -> Iterator[Metric]:
        m = self.metrics
        depth = GaugeMetricFamily(
            PREFIX + "queue_depth",
            "Webhook events waiting (lanes this node works)",
            labels=["app_id"],
        )
        oldest = GaugeMetricFamily(
            PREFIX + "oldest_pending_seconds",
            "Age of the oldest webhook event waiting (lanes this node works)",
            labels=["app_id"],
        )
        for app_id, (count, age) in sorted(m.depth.items()):
            depth.add_metric([app_id], count)
            oldest.add_metric([app_id], age)
        endpoints = GaugeMetricFamily(
            PREFIX + "endpoints", "Webhook endpoints this node works, by state", labels=["state"]
        )
        for state in STATES:
            endpoints.add_metric([state], sum(1 for s in m.endpoints.values() if s == state))
        lost = CounterMetricFamily(
            PREFIX + "buffer_dropped",
            "Webhook events dropped because the queue could not be written for too long",
        )
        lost.add_metric([], m.dropped_buffer)
        yield from (depth, oldest, endpoints, lost)
