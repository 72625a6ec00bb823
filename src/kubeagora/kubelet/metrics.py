"""The ``/metrics`` exposition: one Prometheus registry with a collector over the traffic model.

    kubeagora_requests_total{namespace,workload}          requests served (counter)
    kubeagora_requests_dropped_total{namespace,workload}  no Ready endpoint, or queue full (counter)
    kubeagora_request_duration_seconds{namespace,workload}   latency histogram (_bucket{le}, _sum, _count)
    kubeagora_service_ready_pods{namespace,workload}      Ready pods serving it (gauge)
    kubeagora_service_offered_rps{namespace,workload}     the load offered to it, requests/s (gauge)
    kubeagora_node_utilization{node,tier,node_class,region,zone}   busy share of CPU or accelerators
    kubeagora_node_power_watts{node,tier,node_class,region,zone}   wall power (0 when down)
    kubeagora_node_heartbeat{node}                        1 while the node's Lease is renewed

A service is a workload (the pods' Deployment) in a namespace: the traffic model's service key
"namespace/workload" becomes the two labels.

The collector turns the model's numpy arrays into metric families at scrape time, so serving
traffic costs nothing per request and a scrape costs one pass over services and nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kubeagora.kubelet.traffic import BUCKETS_S, TrafficModel
from kubeagora.model import BoolArray

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SERVICE_KEYS = ["namespace", "workload"]


def service_labels(key: str) -> list[str]:
    """A traffic-model service key "namespace/workload" → its label values (no namespace: "")."""
    namespace, _, workload = key.rpartition("/")
    return [namespace, workload]


def _le(bound: float) -> str:
    return f"{bound:g}"


class TrafficCollector(Collector):
    def __init__(self, model: TrafficModel, node_names: Sequence[str], heard: Callable[[], BoolArray]) -> None:
        self.model = model
        self.node_names = tuple(node_names)
        self.heard = heard
        self.node_labels = [
            (name, str(n.tier), str(n.node_class), n.region, n.zone)
            for name, n in zip(self.node_names, model.nodes, strict=True)
        ]

    def collect(self) -> Iterator[Metric]:
        m = self.model
        requests = CounterMetricFamily("kubeagora_requests", "Requests served by the mock pods.", labels=SERVICE_KEYS)
        dropped = CounterMetricFamily("kubeagora_requests_dropped",
                                      "Requests dropped: no Ready pod, or the pod's queue was full.",
                                      labels=SERVICE_KEYS)
        hist = HistogramMetricFamily("kubeagora_request_duration_seconds",
                                     "Request latency (network + queueing + service) from the latency model.",
                                     labels=SERVICE_KEYS)
        ready = GaugeMetricFamily("kubeagora_service_ready_pods", "Ready pods serving the service.",
                                  labels=SERVICE_KEYS)
        offered = GaugeMetricFamily("kubeagora_service_offered_rps",
                                    "Requests per second offered to the service (its load, see POST /load).",
                                    labels=SERVICE_KEYS)
        cumulative = np.cumsum(m.bucket_counts, axis=1)
        for s, p in enumerate(m.profiles):
            labels = service_labels(p.name)
            requests.add_metric(labels, float(m.requests[s]))
            dropped.add_metric(labels, float(m.dropped[s]))
            buckets = [(_le(b), float(cumulative[s, i])) for i, b in enumerate(BUCKETS_S)]
            buckets.append(("+Inf", float(cumulative[s, -1])))
            hist.add_metric(labels, buckets, float(m.latency_sum_s[s]))
            ready.add_metric(labels, float(m.ready_pods[s]) if s < m.ready_pods.shape[0] else 0.0)
            offered.add_metric(labels, float(p.rps))
        yield from (requests, dropped, hist, ready, offered)

        node_keys = ["node", "tier", "node_class", "region", "zone"]
        util = GaugeMetricFamily("kubeagora_node_utilization", "Busy share of the node's CPU or accelerators.",
                                 labels=node_keys)
        power = GaugeMetricFamily("kubeagora_node_power_watts", "Wall power of the node (0 while it is down).",
                                  labels=node_keys)
        beat = GaugeMetricFamily("kubeagora_node_heartbeat", "1 while the node's Lease is being renewed.",
                                 labels=["node"])
        heard = self.heard()
        for j, key in enumerate(self.node_labels):
            util.add_metric(list(key), float(m.node_utilization[j]))
            power.add_metric(list(key), float(m.node_power_w[j]))
            beat.add_metric([key[0]], 1.0 if heard[j] else 0.0)
        yield from (util, power, beat)


def make_registry(model: TrafficModel, node_names: Sequence[str], heard: Callable[[], BoolArray]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrafficCollector(model, node_names, heard))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
