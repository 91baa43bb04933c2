"""Prometheus metrics: one registry per process, served by the optional metrics listener.

Counters and histograms are module-level (a process is one worker); gauges that describe live
objects (database pools, the bus connection) are read at scrape time from the homeservers that
registered themselves.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # no *_created series: they double the output and nobody reads them
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # CPU, memory, open files of this worker
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "parley_http_requests", "HTTP requests answered, by route template, method and status",
    ("method", "route", "status"), registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "parley_http_request_duration_seconds", "Time from request to the end of the response",
    ("method", "route"), registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SYNC_WAKEUPS = Counter(
    "parley_sync_wakeups", "Parked /sync and WebSocket waiters woken by a change", registry=REGISTRY,
)
SYNC_PASSES = Counter(
    "parley_sync_passes", "Sync responses computed: from the recent-changes log (delta) or the database (full)",
    ["kind"], registry=REGISTRY,
)
WS_CONNECTIONS = Gauge(
    "parley_websocket_connections", "Open WebSocket sync connections", registry=REGISTRY,
)
EVENT_PERSIST = Histogram(
    "parley_event_persist_seconds", "Time of the transaction that writes one local event",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BUS_LAG = Histogram(
    "parley_bus_lag_seconds", "Time from a peer's bus publish to its receipt here", registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
BUS_PUBLISH_FAILURES = Counter(
    "parley_bus_publish_failures", "Bus publishes that failed (peers catch up from the database)",
    registry=REGISTRY,
)


class _LiveCollector(Collector):
    """Database pool sizes and bus state of every live homeserver in this process."""

    def __init__(self) -> None:
        self.sources: weakref.WeakSet[Any] = weakref.WeakSet()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pool = GaugeMetricFamily("parley_db_pool_connections",
                                 "Database connections by pool and state", labels=("pool", "state"))
        bus = GaugeMetricFamily("parley_bus_connected", "1 while the bus to other workers is up")
        for hs in list(self.sources):
            for name, (size, idle) in hs.stores.db.pool_stats().items():
                pool.add_metric((name, "idle"), idle)
                pool.add_metric((name, "in_use"), size - idle)
            bus.add_metric((), 1.0 if hs.bus.is_connected() else 0.0)
        yield pool
        yield bus

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


_LIVE = _LiveCollector()
REGISTRY.register(_LIVE)


def watch(hs: Any) -> None:
    """Report this homeserver's pools and bus at scrape time (held weakly)."""
    _LIVE.sources.add(hs)


def unwatch(hs: Any) -> None:
    _LIVE.sources.discard(hs)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
