"""The ``/metrics`` exposition: one Prometheus registry with a collector over the traffic model.

Per service, the series a real application and its mesh export, so the operator reads the mock pods
exactly as it reads real ones (``operator.metric_presets``):

    http_server_request_duration_seconds{k8s_namespace_name, k8s_deployment_name, http_request_method,
        http_response_status_code}   OpenTelemetry's HTTP server histogram (_bucket{le}, _sum, _count), as
                                     its Prometheus exporter names it with the k8s resource attributes
                                     turned into labels
    istio_requests_total{reporter, destination_workload_namespace, destination_workload, response_code}
    istio_request_duration_milliseconds{...same}   (_bucket{le}, _sum, _count) Istio's standard metrics

Served requests are status 200 with the latency model's latency; dropped ones (no Ready endpoint, or
the pod's queue full) are 503s answered at once (the first bucket), as a proxy in front of the pods
would answer them. Per node, the series no standard exporter gives for a mock node:

    kubeagora_node_utilization_ratio{node,tier,node_class,region,zone}   busy share of CPU or accelerators
    kubeagora_node_power_watts{node,tier,node_class,region,zone}         wall power (0 when down)
    kubeagora_node_heartbeat{node}                                        1 while the node's Lease is renewed

A service is a workload (the pods' Deployment) in a namespace: the traffic model's service key
"namespace/workload" becomes the two labels. The load offered to each service is ``GET /load``'s.

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
OTEL_LABELS = ["k8s_namespace_name", "k8s_deployment_name", "http_request_method", "http_response_status_code"]
ISTIO_LABELS = ["reporter", "destination_workload_namespace", "destination_workload", "response_code"]
SERVED, DROPPED = "200", "503"


def service_labels(key: str) -> tuple[str, str]:
    """A traffic-model service key "namespace/workload" → (namespace, workload) (no namespace: "")."""
    namespace, _, workload = key.rpartition("/")
    return namespace, workload


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
        otel = HistogramMetricFamily("http_server_request_duration_seconds", "Duration of HTTP server requests.",
                                     labels=OTEL_LABELS, unit="seconds")
        istio_requests = CounterMetricFamily("istio_requests", "Requests the destination workload's sidecar saw.",
                                             labels=ISTIO_LABELS)
        istio_latency = HistogramMetricFamily("istio_request_duration_milliseconds", "Request latency at the "
                                              "destination sidecar.", labels=ISTIO_LABELS, unit="milliseconds")
        cumulative = np.cumsum(m.bucket_counts, axis=1)
        for s, p in enumerate(m.profiles):
            namespace, workload = service_labels(p.name)
            served = [float(c) for c in cumulative[s]]  # the last is +Inf
            dropped = float(m.dropped[s])
            latency_s = float(m.latency_sum_s[s])
            otel.add_metric([namespace, workload, "GET", SERVED], _buckets(BUCKETS_S, served), latency_s)
            otel.add_metric([namespace, workload, "GET", DROPPED], _buckets(BUCKETS_S, [dropped] * len(served)), 0.0)
            for code, count, buckets, total_ms in (
                    (SERVED, float(m.requests[s]), served, 1000.0 * latency_s),
                    (DROPPED, dropped, [dropped] * len(served), 0.0)):
                istio = ["destination", namespace, workload, code]
                istio_requests.add_metric(istio, count)
                istio_latency.add_metric(istio, _buckets([1000.0 * b for b in BUCKETS_S], buckets), total_ms)
        yield from (otel, istio_requests, istio_latency)

        node_keys = ["node", "tier", "node_class", "region", "zone"]
        util = GaugeMetricFamily("kubeagora_node_utilization_ratio", "Busy share of the node's CPU or accelerators.",
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


def _buckets(bounds: Sequence[float], cumulative: Sequence[float]) -> list[tuple[str, float]]:
    """``(le, cumulative count)`` pairs of one histogram series, +Inf last."""
    return [*((_le(b), c) for b, c in zip(bounds, cumulative, strict=False)), ("+Inf", cumulative[-1])]


def make_registry(model: TrafficModel, node_names: Sequence[str], heard: Callable[[], BoolArray]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrafficCollector(model, node_names, heard))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
