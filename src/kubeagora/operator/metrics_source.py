"""The operator's view of load and latency, read from Prometheus; all its PromQL lives here.

A managed service is a workload in a namespace ("namespace/deployment", ``adapter.service_key``). Its
signals come from the standard series of its preset (``metric_presets``: OpenTelemetry HTTP semantic
conventions by default, Istio, Linkerd, ingress-nginx), aggregated by the preset's namespace and
workload labels, or from its intent's custom PromQL:

    offered_rps   requests reaching the workload: the larger of the request counter's ``rate`` and its
                  ``irate`` over the rate window: a burst counts from the first scrape that sees it (the
                  ``rate`` alone would ramp over the whole window), a lull only once the window has it
    dropped_rps   the failed ones' rate (5xx, or the preset's failure class)
    served_rps    offered − dropped
    p95_ms/p99_ms histogram_quantile over the buckets of the requests that did not fail, rated over the
                  quantile window; NaN while none was served, +Inf past the last bucket

Both windows default to four scrape intervals (``Windows.for_scrape_interval``): ``rate`` needs two
samples in its window, and four survive a missed scrape, so a 30 s scrape means 2-minute windows.
Which interval: ``scrape_interval`` (the operator's flag, else Prometheus's own, else 30 s).
Per node only wall power is read here (``kubeagora_node_power_watts``: no standard series for it
exists); node CPU comes from ``metrics.k8s.io`` (``resource_usage``). A series that is absent reads as
0 rps and NaN percentiles, and ``load_read`` says that no request rate was read.

Everything here is synchronous, as ``prometheus_api_client`` is: the operator calls ``PrometheusSignals``
through ``asyncio.to_thread``. Turning query results into signals is pure and tested on recorded responses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kubeagora.operator.metric_presets import DEFAULT_PRESET, PRESETS, Preset

#: One instant-vector result as ``PrometheusConnect.custom_query`` returns it:
#: ``[{"metric": {"k8s_namespace_name": "shop", "k8s_deployment_name": "web"}, "value": [1717e6, "12.5"]}]``.
Vector = Sequence[Mapping[str, Any]]


class MetricsUnavailable(Exception):
    """Prometheus could not be reached, or answered something other than a query result."""


SCRAPE_MULTIPLE = 4
"""Windows span this many scrape intervals."""


@dataclass(frozen=True)
class Windows:
    """The look-back of each kind of query, in seconds."""

    rate_s: float = 120.0
    """Window of the request rates (default: four 30 s scrapes)."""
    quantile_s: float = 120.0
    """Window of the latency percentiles; it must hold at least two scrapes."""

    def __post_init__(self) -> None:
        if not (self.rate_s > 0 and self.quantile_s > 0):
            raise ValueError(f"query windows must be positive (got rate {self.rate_s}s, quantile {self.quantile_s}s)")

    @classmethod
    def for_scrape_interval(cls, scrape_interval_s: float) -> Windows:
        """Windows of ``SCRAPE_MULTIPLE`` scrape intervals each."""
        if not scrape_interval_s > 0:
            raise ValueError(f"the scrape interval must be positive (got {scrape_interval_s:g}s)")
        return cls(SCRAPE_MULTIPLE * scrape_interval_s, SCRAPE_MULTIPLE * scrape_interval_s)


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
    load_read: bool = True
    """Whether Prometheus had a request rate for it at all: a rate needs two scrapes in its window, so a
    workload whose series are new (or absent) reads 0 rps without having been measured."""


@dataclass(frozen=True)
class NodeSignals:
    """CPU utilisation (0..1) and wall power of one node; NaN where unknown."""

    node: str
    utilization: float
    power_w: float


@dataclass(frozen=True)
class Source:
    """Where one service's signals come from: a preset, and custom PromQL by signal name
    (``metric_presets.CUSTOM_QUERIES``) that replaces the preset's for that signal."""

    preset: Preset
    queries: Mapping[str, str] = field(default_factory=dict)


# --- PromQL ----------------------------------------------------------------------------------------

NODE_POWER = "kubeagora_node_power_watts"
PRESET_SIGNALS = ("offered", "offered_now", "dropped", "p95", "p99")


def _range(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _selector(*matchers: str) -> str:
    inside = ", ".join(m for m in matchers if m)
    return f"{{{inside}}}" if inside else ""


def service_queries(preset: Preset, windows: Windows = Windows()) -> dict[str, str]:
    """The PromQL of each per-service signal of ``preset``, keyed by the name ``parse_services`` expects."""
    rate, q = _range(windows.rate_s), _range(windows.quantile_s)
    by = f"{preset.namespace_label}, {preset.workload_label}"
    every = _selector(preset.matchers)
    failed = _selector(preset.matchers, preset.failed)
    served = _selector(preset.matchers, preset.succeeded)
    buckets = f"sum by ({by}, le) (rate({preset.latency_buckets}{served}[{q}]))"
    to_s = "" if preset.latency_unit_s == 1 else f" * {preset.latency_unit_s:g}"
    return {
        "offered": f"sum by ({by}) (rate({preset.requests}{every}[{rate}]))",
        "offered_now": f"sum by ({by}) (irate({preset.requests}{every}[{rate}]))",
        "dropped": f"sum by ({by}) (rate({preset.requests}{failed}[{rate}]))",
        "p95": f"histogram_quantile(0.95, {buckets}){to_s}",
        "p99": f"histogram_quantile(0.99, {buckets}){to_s}",
    }


def node_queries() -> dict[str, str]:
    return {"power": f"max by (node) ({NODE_POWER})"}


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


def by_service(vector: Vector, preset: Preset) -> dict[str, float]:
    """``{"namespace/workload": sample}`` of a vector by the preset's labels; series missing either
    label are ignored (a workload is never identified by its name alone: tenants reuse names)."""
    out: dict[str, float] = {}
    for item in vector:
        metric = item.get("metric") or {}
        namespace, workload = metric.get(preset.namespace_label), metric.get(preset.workload_label)
        if isinstance(namespace, str) and namespace and isinstance(workload, str) and workload:
            out[f"{namespace}/{workload}"] = _sample(item)
    return out


def _rate(v: float) -> float:
    return v if math.isfinite(v) and v > 0 else 0.0


def signals_of(service: str, offered: float = math.nan, dropped: float = math.nan, p95_s: float = math.nan,
               p99_s: float = math.nan, offered_now: float = math.nan) -> ServiceSignals:
    """One service's signals from raw samples (NaN: no sample)."""
    offered_rps = max(_rate(offered), _rate(offered_now))
    dropped_rps = min(_rate(dropped), offered_rps)
    return ServiceSignals(service, offered_rps, offered_rps - dropped_rps, dropped_rps, p95_s * 1000.0,
                          p99_s * 1000.0, not (math.isnan(offered) and math.isnan(offered_now)))


def parse_services(results: Mapping[str, Vector], preset: Preset) -> dict[str, ServiceSignals]:
    """Signals per service from the results of ``service_queries(preset)`` (a missing key = an empty result)."""
    parsed = {name: by_service(results.get(name, ()), preset) for name in PRESET_SIGNALS}
    names = set().union(*parsed.values())
    return {name: signals_of(name, *(parsed[s].get(name, math.nan) for s in ("offered", "dropped", "p95", "p99",
                                                                            "offered_now")))
            for name in sorted(names)}


def custom_signal(service: str, vector: Vector, query: str) -> float:
    """The one sample a custom query must return (none: NaN, as an absent series reads)."""
    if len(vector) > 1:
        raise MetricsUnavailable(f"{service}: custom query {query!r} returned {len(vector)} series, not one "
                                 "(aggregate it, e.g. sum(...))")
    return _sample(vector[0]) if vector else math.nan


def with_custom(base: ServiceSignals, values: Mapping[str, float]) -> ServiceSignals:
    """``base`` with the signals its intent's custom queries gave (by ``CUSTOM_QUERIES`` name)."""
    offered = values.get("requestsPerSecond", base.offered_rps if base.load_read else math.nan)
    dropped = values.get("errorsPerSecond", base.dropped_rps)
    return signals_of(base.service, offered, dropped, values.get("p95Seconds", base.p95_ms / 1000.0),
                      values.get("p99Seconds", base.p99_ms / 1000.0))


def parse_nodes(results: Mapping[str, Vector]) -> dict[str, NodeSignals]:
    """Power per node from the results of ``node_queries`` (utilisation unknown here: NaN)."""
    power = by_label(results.get("power", ()), "node")
    return {node: NodeSignals(node, math.nan, watts) for node, watts in sorted(power.items())}


# --- the reader (thin adapter over prometheus_api_client) --------------------------------------------


class QueryClient(Protocol):
    """What this module needs of ``prometheus_api_client.PrometheusConnect``."""

    def custom_query(self, query: str, params: dict[str, Any] | None = None, timeout: int | None = None) -> Any: ...


@dataclass(frozen=True)
class Reading:
    """One tick's signals: per service, and what could not be read for a service (its custom queries)."""

    services: dict[str, ServiceSignals]
    errors: dict[str, str] = field(default_factory=dict)


class PrometheusSignals:
    """Reads ``ServiceSignals`` and ``NodeSignals`` from the Prometheus at ``url`` (blocking calls).

    Every failure to get an answer — refused connection, timeout, an HTTP error, a body that is
    not a query result — raises ``MetricsUnavailable`` naming the URL; a custom query that fails
    is that service's error only (``Reading.errors``).
    """

    def __init__(self, url: str, windows: Windows = Windows(), timeout_s: float = 5.0,
                 client: QueryClient | None = None, preset: Preset = PRESETS[DEFAULT_PRESET]) -> None:
        self.url = url.rstrip("/")
        self.windows = windows
        self.timeout_s = timeout_s
        self.preset = preset
        """The default for services whose intent names none."""
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

    def source(self, preset: str | None, queries: Mapping[str, str] | None = None) -> Source:
        """An intent's ``spec.metrics`` as a ``Source`` (its preset by name, else this reader's default)."""
        return Source(PRESETS.get(preset or "", self.preset), dict(queries or {}))

    def services(self, sources: Mapping[str, Source] | None = None) -> Reading:
        """Signals of every workload the presets in use see (the default preset when ``sources`` is
        None), each managed service from its own source."""
        presets = {s.preset for s in (sources or {}).values()} or {self.preset}
        seen: dict[Preset, dict[str, ServiceSignals]] = {}
        for preset in sorted(presets, key=lambda p: p.name):
            results = {name: self.query(q) for name, q in service_queries(preset, self.windows).items()}
            seen[preset] = parse_services(results, preset)
        if sources is None:
            return Reading(seen[self.preset])
        out: dict[str, ServiceSignals] = {}
        errors: dict[str, str] = {}
        for service, source in sources.items():
            base = seen[source.preset].get(service) or signals_of(service)
            if not source.queries:
                out[service] = base
                continue
            try:
                values = {name: custom_signal(service, self.query(q), q) for name, q in source.queries.items()}
            except MetricsUnavailable as e:
                errors[service] = str(e)
                values = {}
            out[service] = with_custom(base, values)
        return Reading(out, errors)

    def nodes(self) -> dict[str, NodeSignals]:
        return parse_nodes({name: self.query(q) for name, q in node_queries().items()})


def with_utilization(nodes: Mapping[str, NodeSignals], utilization: Mapping[str, float]) -> dict[str, NodeSignals]:
    """Node signals with their CPU utilisation (from ``metrics.k8s.io``) filled in."""
    out = dict(nodes)
    for node, ratio in utilization.items():
        out[node] = replace(out.get(node) or NodeSignals(node, math.nan, math.nan), utilization=ratio)
    return out
