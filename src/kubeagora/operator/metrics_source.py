"""The operator's view of load, latency and node state, read from Prometheus; all its PromQL lives here.

The series come from the mock kubelet's ``/metrics`` (``kubeagora.kubelet.metrics``) or from any
workload exporting the same names. Per service (a workload in a namespace: labels ``namespace`` and
``workload``, keyed "namespace/workload" as ``adapter.service_key`` names a managed service):

    offered_rps   the offered-load gauge where exported, else served + dropped
    served_rps    rate of kubeagora_requests_total over the rate window (30 s)
    dropped_rps   rate of kubeagora_requests_dropped_total over the rate window
    p95_ms/p99_ms histogram_quantile over kubeagora_request_duration_seconds_bucket rated over the
                  quantile window (10 s: it needs at least two scrapes in it, hence the 2 s scrape
                  interval of the devcluster's and the manifest's Prometheus)
    ready_pods    kubeagora_service_ready_pods

and per node its utilisation, wall power and Lease heartbeat. No traffic yet reads as 0 rps and
NaN percentiles; a series that is absent reads the same way (0 rps, NaN, 0 pods).

Everything here is synchronous, as ``prometheus_api_client`` is: the operator calls
``PrometheusSignals.services``/``nodes`` through ``asyncio.to_thread``. Turning query results into
signals (``parse_services``, ``parse_nodes``) is pure and tested on recorded responses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: One instant-vector result as ``PrometheusConnect.custom_query`` returns it:
#: ``[{"metric": {"namespace": "shop", "workload": "web"}, "value": [1717000000.0, "12.5"]}, ...]``.
Vector = Sequence[Mapping[str, Any]]


class MetricsUnavailable(Exception):
    """Prometheus could not be reached, or answered something other than a query result."""


@dataclass(frozen=True)
class Windows:
    """The look-back of each kind of query, in seconds."""

    rate_s: float = 30.0
    """Window of the request rates: long enough to smooth Poisson noise, short enough to follow a burst."""
    quantile_s: float = 10.0
    """Window of the latency percentiles; must hold at least two scrapes (2.5 × the scrape interval or more)."""

    def __post_init__(self) -> None:
        if not (self.rate_s > 0 and self.quantile_s > 0):
            raise ValueError(f"query windows must be positive (got rate {self.rate_s}s, quantile {self.quantile_s}s)")


@dataclass(frozen=True)
class ServiceSignals:
    """Load and latency of one service, as Prometheus saw it over the query windows."""

    service: str
    offered_rps: float
    served_rps: float
    dropped_rps: float
    p95_ms: float
    """NaN while no request was served in the quantile window; +Inf if it lies past the last bucket."""
    p99_ms: float
    ready_pods: int


@dataclass(frozen=True)
class NodeSignals:
    """Utilisation, power and liveness of one node (NaN where a series is absent)."""

    node: str
    utilization: float
    power_w: float
    heartbeat: bool
    tier: str = ""
    node_class: str = ""
    region: str = ""
    zone: str = ""


# --- PromQL ----------------------------------------------------------------------------------------

REQUESTS = "kubeagora_requests_total"
DROPPED = "kubeagora_requests_dropped_total"
DURATION_BUCKETS = "kubeagora_request_duration_seconds_bucket"
READY_PODS = "kubeagora_service_ready_pods"
OFFERED = "kubeagora_service_offered_rps"
NODE_UTILIZATION = "kubeagora_node_utilization"
NODE_POWER = "kubeagora_node_power_watts"
NODE_HEARTBEAT = "kubeagora_node_heartbeat"
NODE_KEYS = ("node", "tier", "node_class", "region", "zone")


SERVICE_KEYS = ("namespace", "workload")
"""What identifies a service in the series: never the workload name alone (tenants reuse names)."""


def _range(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


SERVICE_SIGNALS = ("served", "dropped", "offered", "p95", "p99", "ready")
NODE_SIGNALS = ("utilization", "power", "heartbeat")


def service_queries(windows: Windows = Windows()) -> dict[str, str]:
    """The PromQL of each per-service signal, keyed by the name ``parse_services`` expects."""
    rate, q = _range(windows.rate_s), _range(windows.quantile_s)
    by = ", ".join(SERVICE_KEYS)
    buckets = f"sum by ({by}, le) (rate({DURATION_BUCKETS}[{q}]))"
    return {
        "served": f"sum by ({by}) (rate({REQUESTS}[{rate}]))",
        "dropped": f"sum by ({by}) (rate({DROPPED}[{rate}]))",
        "offered": f"sum by ({by}) ({OFFERED})",
        "p95": f"histogram_quantile(0.95, {buckets})",
        "p99": f"histogram_quantile(0.99, {buckets})",
        "ready": f"sum by ({by}) ({READY_PODS})",
    }


def node_queries() -> dict[str, str]:
    """The PromQL of each per-node signal, keyed by the name ``parse_nodes`` expects."""
    by = ", ".join(NODE_KEYS)
    return {
        "utilization": f"max by ({by}) ({NODE_UTILIZATION})",
        "power": f"max by ({by}) ({NODE_POWER})",
        "heartbeat": f"max by (node) ({NODE_HEARTBEAT})",
    }


# --- parsing (pure) --------------------------------------------------------------------------------


def _sample(item: Mapping[str, Any]) -> float:
    """The value of one sample; Prometheus sends numbers as strings ("12.5", "NaN", "+Inf")."""
    value = item.get("value")
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise MetricsUnavailable(f"not an instant-vector sample: {item!r}")
    try:
        return float(value[1])
    except (TypeError, ValueError):
        raise MetricsUnavailable(f"not a sample value: {value[1]!r}") from None


def by_label(vector: Vector, label: str) -> dict[str, float]:
    """``{label value: sample}`` of a vector; series without the label are ignored."""
    out: dict[str, float] = {}
    for item in vector:
        key = (item.get("metric") or {}).get(label)
        if isinstance(key, str) and key:
            out[key] = _sample(item)
    return out


def by_service(vector: Vector) -> dict[str, float]:
    """``{"namespace/workload": sample}`` of a vector; series missing either label are ignored."""
    out: dict[str, float] = {}
    for item in vector:
        metric = item.get("metric") or {}
        namespace, workload = (metric.get(k) for k in SERVICE_KEYS)
        if isinstance(namespace, str) and namespace and isinstance(workload, str) and workload:
            out[f"{namespace}/{workload}"] = _sample(item)
    return out


def _rate(values: Mapping[str, float], key: str) -> float:
    v = values.get(key, 0.0)
    return v if math.isfinite(v) and v > 0 else 0.0


def parse_services(results: Mapping[str, Vector]) -> dict[str, ServiceSignals]:
    """Signals per service from the results of ``service_queries`` (a missing key = an empty result)."""
    parsed = {name: by_service(results.get(name, ())) for name in SERVICE_SIGNALS}
    served, dropped, offered = parsed["served"], parsed["dropped"], parsed["offered"]
    names = set().union(*parsed.values())
    out = {}
    for name in sorted(names):
        served_rps, dropped_rps = _rate(served, name), _rate(dropped, name)
        ready = parsed["ready"].get(name, 0.0)
        out[name] = ServiceSignals(
            service=name,
            offered_rps=_rate(offered, name) if name in offered else served_rps + dropped_rps,
            served_rps=served_rps,
            dropped_rps=dropped_rps,
            p95_ms=parsed["p95"].get(name, math.nan) * 1000.0,
            p99_ms=parsed["p99"].get(name, math.nan) * 1000.0,
            ready_pods=int(ready) if math.isfinite(ready) and ready > 0 else 0,
        )
    return out


def parse_nodes(results: Mapping[str, Vector]) -> dict[str, NodeSignals]:
    """Signals per node from the results of ``node_queries`` (a missing key = an empty result)."""
    labels: dict[str, dict[str, str]] = {}
    for name in ("utilization", "power"):
        for item in results.get(name, ()):
            metric = item.get("metric") or {}
            node = metric.get("node")
            if isinstance(node, str) and node:
                labels.setdefault(node, {}).update({k: str(metric[k]) for k in NODE_KEYS[1:] if k in metric})
    util = by_label(results.get("utilization", ()), "node")
    power = by_label(results.get("power", ()), "node")
    beat = by_label(results.get("heartbeat", ()), "node")
    out = {}
    for node in sorted(set(util) | set(power) | set(beat)):
        extra = labels.get(node, {})
        out[node] = NodeSignals(
            node=node,
            utilization=util.get(node, math.nan),
            power_w=power.get(node, math.nan),
            heartbeat=beat.get(node, 0.0) >= 1.0,
            tier=extra.get("tier", ""),
            node_class=extra.get("node_class", ""),
            region=extra.get("region", ""),
            zone=extra.get("zone", ""),
        )
    return out


# --- the reader (thin adapter over prometheus_api_client) --------------------------------------------


class QueryClient(Protocol):
    """What this module needs of ``prometheus_api_client.PrometheusConnect``."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None, timeout: int | None = None) -> Any: ...


class PrometheusSignals:
    """Reads ``ServiceSignals`` and ``NodeSignals`` from the Prometheus at ``url`` (blocking calls).

    Every failure to get an answer — refused connection, timeout, an HTTP error, a body that is
    not a query result — raises ``MetricsUnavailable`` naming the URL.
    """

    def __init__(self, url: str, windows: Windows = Windows(), timeout_s: float = 5.0,
                 client: QueryClient | None = None) -> None:
        self.url = url.rstrip("/")
        self.windows = windows
        self.timeout_s = timeout_s
        if client is None:
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            # One quick retry: the operator asks again on its next tick anyway.
            client = PrometheusConnect(url=self.url, retry=Retry(total=1, backoff_factor=0.1),
                                       timeout=timeout_s)
        self.client: QueryClient = client

    def query(self, promql: str) -> Vector:
        """One instant query; its result list."""
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        try:
            result = self.client.custom_query(promql)
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise MetricsUnavailable(f"Prometheus at {self.url} did not answer {promql!r}: {reason}") from None
        if not isinstance(result, list):
            raise MetricsUnavailable(f"Prometheus at {self.url} answered {promql!r} with {type(result).__name__},"
                                     " not an instant vector")
        return result

    def services(self) -> dict[str, ServiceSignals]:
        return parse_services({name: self.query(q) for name, q in service_queries(self.windows).items()})

    def nodes(self) -> dict[str, NodeSignals]:
        return parse_nodes({name: self.query(q) for name, q in node_queries().items()})
