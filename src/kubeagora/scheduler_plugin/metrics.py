"""Prometheus metrics of the extender, in a registry of their own (one per app, so tests do not clash).

    kubeagora_extender_request_duration_seconds{verb}      handling time of filter/prioritize (histogram)
    kubeagora_extender_requests_total{verb,outcome}        requests by outcome: ok, bad_request, error,
                                                           too_large, busy (queue full), stale (waited too long),
                                                           forbidden (no client certificate)
    kubeagora_extender_cache_objects{kind}                 nodes, pods, deployments, intents in the cache
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
"""A filter must answer in milliseconds (the scheduler waits for it on every pod): fine buckets there."""


@dataclass(frozen=True)
class ExtenderMetrics:
    registry: CollectorRegistry
    duration: Histogram
    requests: Counter
    cache_objects: Gauge


def make_metrics() -> ExtenderMetrics:
    registry = CollectorRegistry()
    return ExtenderMetrics(
        registry,
        Histogram("kubeagora_extender_request_duration_seconds", "Time to answer a scheduler extender call",
                  ["verb"], registry=registry, buckets=LATENCY_BUCKETS_S),
        Counter("kubeagora_extender_requests", "Scheduler extender calls by verb and outcome",
                ["verb", "outcome"], registry=registry),
        Gauge("kubeagora_extender_cache_objects", "Objects in the extender's watch cache", ["kind"],
              registry=registry),
    )
