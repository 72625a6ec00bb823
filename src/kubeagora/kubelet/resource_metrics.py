"""The resource metrics API (``metrics.k8s.io/v1beta1``) as the mock kubelet serves it (pure).

What metrics-server would report for the mock pods and nodes, computed from the traffic model:

- a pod's CPU usage is the rate of its cumulative busy core-seconds over the last ``WINDOW_S``
  (as metrics-server reports the rate between two scrapes). Per tick the traffic model charges a
  running pod ``request × (idle + (1 − idle) × busy)`` cores, busy being the work it served over
  its nominal capacity (concurrency / service time): up to its nominal capacity, the same formula as
  the simulator engine's ``busy_core_seconds_total`` (which the simulated HPA reads). Pods are
  Burstable (``cpu_share``): overloaded, a pod without a CPU limit uses more than its request, up to
  its share of the node's cores (up to its limit if it has one), and serves faster. So under a burst
  the utilisation the real HPA computes (usage / request) rises above 100 %, as on a real cluster;
- the pod's usage is split over its containers by their CPU requests (evenly if none has one);
- memory is not modelled: a container reports ``MEMORY_REQUEST_FRACTION`` of its memory request
  (``DEFAULT_MEMORY_BYTES`` without one), so the ``memory`` figures are steady placeholders;
- a node reports the sum over its pods.

``UsageHistory`` keeps the cumulative samples; the rest turns usages into API objects: the
discovery documents, ``PodMetrics`` / ``NodeMetrics`` and their lists, and ``Status`` errors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeagora.kubeapi.quantity import quantity
from kubeagora.kubelet.selectors import Selector, matches

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
WINDOW_S = 15.0
"""Rate window of the reported CPU usage (metrics-server's default ``--metric-resolution``)."""
MEMORY_REQUEST_FRACTION = 0.6
DEFAULT_MEMORY_BYTES = 32 * 2**20


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU cores used on average over [start, end] (wall-clock seconds since the epoch)."""

    cores: float
    start: float
    end: float

    @property
    def window_s(self) -> float:
        return self.end - self.start


class UsageHistory:
    """Cumulative core-seconds per key (a pod or a node), one sample set per traffic tick."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        if window_s <= 0:
            raise ValueError(f"the usage window must be > 0 s (got {window_s:g})")
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, float]]] = deque()

    def record(self, t: float, cumulative: Mapping[str, float]) -> None:
        """Samples at time ``t``; older sample sets beyond one window (plus one) are dropped."""
        self._samples.append((t, dict(cumulative)))
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.window_s:
            self._samples.popleft()

    def usage(self, key: str) -> Usage | None:
        """The rate over the longest span up to the window with two samples of ``key``; None
        until the key has two samples (metrics-server, too, skips a pod it has scraped once)."""
        if not self._samples:
            return None
        t1, last = self._samples[-1]
        if key not in last:
            return None
        for t0, first in self._samples:
            if t0 >= t1:
                return None
            if t0 >= t1 - self.window_s - 1e-6 and key in first:
                used = last[key] - first[key]
                if used < 0:  # the key was reused by a new pod since: no clean span yet
                    continue
                return Usage(used / (t1 - t0), t0, t1)
        return None


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    name: str
    cpu_cores: float
    memory_bytes: float


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    name: str
    cpu_cores: float
    memory_bytes: float


def container_requests(pod: Mapping[str, Any]) -> list[ContainerRequest]:
    """Each main container's CPU and memory request (its limit where the request is missing)."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or ():
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        out.append(ContainerRequest(str(c.get("name", "")), quantity(req.get("cpu", lim.get("cpu"))),
                                    quantity(req.get("memory", lim.get("memory")))))
    return out


def split_usage(cpu_cores: float, containers: Sequence[ContainerRequest]) -> list[ContainerUsage]:
    """The pod's CPU over its containers by CPU request (evenly when none has one); memory as
    the module docstring says."""
    total = sum(c.cpu_cores for c in containers)
    out = []
    for c in containers:
        share = c.cpu_cores / total if total > 0 else 1.0 / len(containers)
        memory = c.memory_bytes * MEMORY_REQUEST_FRACTION if c.memory_bytes > 0 else DEFAULT_MEMORY_BYTES
        out.append(ContainerUsage(c.name, cpu_cores * share, memory))
    return out


# --- quantities and times -------------------------------------------------------------------------


def cpu_quantity(cores: float) -> str:
    """Cores as a nanocore quantity ("250000000n"), as metrics-server writes them."""
    return f"{max(round(cores * 1e9), 0)}n"


def memory_quantity(n_bytes: float) -> str:
    """Bytes as a kibibyte quantity ("32768Ki")."""
    return f"{max(round(n_bytes / 1024), 0)}Ki"


def timestamp(t: float) -> str:
    """Seconds since the epoch as a Kubernetes Time (RFC 3339, whole seconds, UTC)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """A Go duration string ("15s", "14.5s")."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


# --- API objects ----------------------------------------------------------------------------------


def discovery() -> dict[str, Any]:
    """``GET /apis/metrics.k8s.io/v1beta1``: the APIResourceList of pods and nodes."""
    def resource(name: str, kind: str, namespaced: bool) -> dict[str, Any]:
        return {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get", "list"]}

    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
            "resources": [resource("nodes", "NodeMetrics", False), resource("pods", "PodMetrics", True)]}


def api_group() -> dict[str, Any]:
    """``GET /apis/metrics.k8s.io``: the APIGroup, with v1beta1 as its only (preferred) version."""
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [version],
            "preferredVersion": version}


def api_group_list() -> dict[str, Any]:
    """``GET /apis``: the legacy group list (the aggregator falls back to it and the above)."""
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()]}


def pod_metrics(namespace: str, name: str, labels: Mapping[str, str] | None, usage: Usage,
                containers: Sequence[ContainerUsage]) -> dict[str, Any]:
    """One ``PodMetrics`` object."""
    return {
        "kind": "PodMetrics", "apiVersion": GROUP_VERSION,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                     "creationTimestamp": timestamp(usage.end)},
        "timestamp": timestamp(usage.end), "window": duration(usage.window_s),
        "containers": [{"name": c.name, "usage": {"cpu": cpu_quantity(c.cpu_cores),
                                                  "memory": memory_quantity(c.memory_bytes)}}
                       for c in containers],
    }


def node_metrics(name: str, labels: Mapping[str, str] | None, usage: Usage, memory_bytes: float) -> dict[str, Any]:
    """One ``NodeMetrics`` object."""
    return {
        "kind": "NodeMetrics", "apiVersion": GROUP_VERSION,
        "metadata": {"name": name, "labels": dict(labels or {}), "creationTimestamp": timestamp(usage.end)},
        "timestamp": timestamp(usage.end), "window": duration(usage.window_s),
        "usage": {"cpu": cpu_quantity(usage.cores), "memory": memory_quantity(memory_bytes)},
    }


def metrics_list(kind: str, items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``PodMetricsList`` / ``NodeMetricsList`` (``kind`` is the item kind)."""
    return {"kind": f"{kind}List", "apiVersion": GROUP_VERSION, "metadata": {}, "items": list(items)}


def status_error(code: int, reason: str, message: str, details: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``Status`` failure body (``NotFound``, ``BadRequest``, ...), as clients expect one."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = dict(details)
    return body


def not_found(resource: str, name: str) -> dict[str, Any]:
    return status_error(404, "NotFound", f'{resource}.{GROUP} "{name}" not found',
                        {"name": name, "group": GROUP, "kind": resource})


# --- what the mock kubelet knows, and the list / get replies ---------------------------------------


@dataclass(frozen=True, slots=True)
class PodSnapshot:
    """A running pod with a measured usage."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    usage: Usage
    containers: tuple[ContainerRequest, ...]

    def metrics(self) -> dict[str, Any]:
        return pod_metrics(self.namespace, self.name, self.labels, self.usage,
                           split_usage(self.usage.cores, self.containers))

    def memory_bytes(self) -> float:
        return sum(c.memory_bytes for c in split_usage(self.usage.cores, self.containers))


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    name: str
    labels: Mapping[str, str]
    usage: Usage
    memory_bytes: float

    def metrics(self) -> dict[str, Any]:
        return node_metrics(self.name, self.labels, self.usage, self.memory_bytes)


def list_pod_metrics(pods: Iterable[PodSnapshot], namespace: str | None, selector: Selector) -> dict[str, Any]:
    """``PodMetricsList`` of the pods in ``namespace`` (None: every namespace) the selector matches."""
    chosen = sorted((p for p in pods
                     if (namespace is None or p.namespace == namespace) and matches(selector, p.labels)),
                    key=lambda p: (p.namespace, p.name))
    return metrics_list("PodMetrics", (p.metrics() for p in chosen))


def list_node_metrics(nodes: Iterable[NodeSnapshot], selector: Selector) -> dict[str, Any]:
    return metrics_list("NodeMetrics", (n.metrics() for n in sorted(nodes, key=lambda n: n.name)
                                        if matches(selector, n.labels)))
