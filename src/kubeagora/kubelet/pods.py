"""Pod lifecycle on a mock node (pure): what to do about a pod, its status, its IP, its cold start.

A pod bound to one of our nodes is started at once (phase Running, containers started but not
ready, a pod IP from the node's CIDR) and turns Ready after its cold start: the node class's
(``DEFAULT_COLD_START_S``, or the scenario service's own), or the pod's ``kubeagora.io/cold-start-s``
annotation. A pod with a ``deletionTimestamp`` has its containers "stop" and is then deleted with
grace period 0, as a kubelet does once its containers are gone.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kubeagora.kubeapi.quantity import quantity
from kubeagora.model import DEFAULT_COLD_START_S, NodeClass

LABEL_SERVICE = "kubeagora.io/service"
LABEL_APP = "app"
LABEL_TEMPLATE_HASH = "pod-template-hash"
ANNOTATION_COLD_START = "kubeagora.io/cold-start-s"
ANNOTATION_RPS = "kubeagora.io/rps"
ANNOTATION_TEMPLATE = "kubeagora.io/template"
STOP_DELAY_S = 0.5
"""Seconds between a pod's deletionTimestamp and its deletion (its containers stopping)."""


def service_of(labels: Mapping[str, str] | None) -> str | None:
    """The service a pod serves: its ``kubeagora.io/service`` label, else its ``app`` label."""
    if not labels:
        return None
    return labels.get(LABEL_SERVICE) or labels.get(LABEL_APP) or None


def workload_of(meta: Mapping[str, Any]) -> str:
    """The workload a pod belongs to, as OpenTelemetry's ``k8s.deployment.name`` names it: a
    ReplicaSet owner's name without its ``-<pod-template-hash>`` (the Deployment), another
    controller's name as it is, else the ``service_of`` label, else the pod's own name."""
    labels = meta.get("labels") or {}
    for ref in meta.get("ownerReferences") or ():
        if not isinstance(ref, Mapping) or not ref.get("controller") or not ref.get("name"):
            continue
        name = str(ref["name"])
        suffix = f"-{labels.get(LABEL_TEMPLATE_HASH)}"
        if ref.get("kind") == "ReplicaSet" and labels.get(LABEL_TEMPLATE_HASH) and name.endswith(suffix):
            return name[: -len(suffix)]
        return name
    return service_of(labels) or str(meta.get("name") or "")


def cold_start_s(annotations: Mapping[str, str] | None, node_class: NodeClass,
                 service_cold_start: Mapping[NodeClass, float] | None = None) -> float:
    """Seconds from container start to Ready on a node of ``node_class``."""
    raw = (annotations or {}).get(ANNOTATION_COLD_START)
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    if service_cold_start and node_class in service_cold_start:
        return float(service_cold_start[node_class])
    return float(DEFAULT_COLD_START_S[node_class])


class IpPool:
    """Pod IPs of one node: hosts 2..254 of its /24 (host 1 is the node), reused after deletion."""

    def __init__(self, cidr: ipaddress.IPv4Network) -> None:
        self._base = int(cidr.network_address)
        self._free = list(range(254, 1, -1))
        self._used: set[int] = set()

    def take(self, preferred: str | None = None) -> str:
        if preferred:
            host = int(ipaddress.IPv4Address(preferred)) - self._base
            if 2 <= host <= 254 and host not in self._used:
                self._used.add(host)
                if host in self._free:
                    self._free.remove(host)
                return preferred
        if not self._free:
            raise RuntimeError("no pod IP left on this node (more than 253 pods)")
        host = self._free.pop()
        self._used.add(host)
        return str(ipaddress.IPv4Address(self._base + host))

    def give_back(self, ip: str) -> None:
        host = int(ipaddress.IPv4Address(ip)) - self._base
        if host in self._used:
            self._used.discard(host)
            self._free.append(host)


class Action(Enum):
    NONE = "none"
    START = "start"
    """Bound to our node and not yet run by us: start its containers."""
    ADOPT = "adopt"
    """Already Running (a previous mock kubelet ran it): take it over as it is."""
    STOP = "stop"
    """Has a deletionTimestamp: stop the containers, then delete with grace 0."""
    FORGET = "forget"
    """Gone from the API server."""


def decide(event_type: str, pod: Mapping[str, Any], known: bool, stopping: bool) -> Action:
    """What to do about a watch event of a pod bound to one of our nodes."""
    if event_type == "DELETED":
        return Action.FORGET if known else Action.NONE
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Action.NONE if stopping else Action.STOP
    if known:
        return Action.NONE
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return Action.NONE
    return Action.ADOPT if phase == "Running" else Action.START


def containers(pod: Mapping[str, Any], key: str = "containers") -> list[tuple[str, str]]:
    return [(c.get("name", ""), c.get("image", "")) for c in (pod.get("spec") or {}).get(key) or ()]


def _condition(kind: str, ok: bool, since: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": since}


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """How the pod's containers are running now."""

    started_at: str
    """When the current containers started (RFC 3339)."""
    ready: bool
    ready_since: str
    """When the pod last changed readiness."""
    restart_count: int = 0
    last_terminated: tuple[str, str] | None = None
    """(started_at, finished_at) of the previous containers, after a crash."""


def pod_status(uid: str, host_ip: str, pod_ip: str, scheduled_at: str, started_pod_at: str,
               main: Sequence[tuple[str, str]], init: Sequence[tuple[str, str]], run: ContainerRun) -> dict[str, Any]:
    """The pod's whole status, for a merge patch of its ``status`` subresource."""

    def container_status(name: str, image: str) -> dict[str, Any]:
        last: dict[str, Any] = {}
        if run.last_terminated is not None:
            last = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": run.last_terminated[0],
                                   "finishedAt": run.last_terminated[1],
                                   "containerID": f"mock://{uid[:8]}-{name}-{run.restart_count - 1}"}}
        return {
            "name": name, "image": image, "imageID": f"mock://{image}",
            "containerID": f"mock://{uid[:8]}-{name}-{run.restart_count}",
            "ready": run.ready, "started": True, "restartCount": run.restart_count,
            "state": {"running": {"startedAt": run.started_at}}, "lastState": last,
        }

    def init_status(name: str, image: str) -> dict[str, Any]:
        return {
            "name": name, "image": image, "imageID": f"mock://{image}", "containerID": f"mock://{uid[:8]}-{name}",
            "ready": True, "started": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_pod_at,
                                     "finishedAt": started_pod_at}},
            "lastState": {},
        }

    status: dict[str, Any] = {
        "phase": "Running",
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": started_pod_at,
        "conditions": [
            _condition("PodReadyToStartContainers", True, started_pod_at),
            _condition("Initialized", True, started_pod_at),
            _condition("Ready", run.ready, run.ready_since),
            _condition("ContainersReady", run.ready, run.ready_since),
            _condition("PodScheduled", True, scheduled_at),
        ],
        "containerStatuses": [container_status(n, i) for n, i in main],
    }
    if init:
        status["initContainerStatuses"] = [init_status(n, i) for n, i in init]
    return {"status": status}


def scheduled_at(pod: Mapping[str, Any], default: str) -> str:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("lastTransitionTime"):
            return str(c["lastTransitionTime"])
    return default


def delete_options(uid: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}}


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    kind: str = field(compare=False)
    key: str = field(compare=False)
    token: int = field(compare=False)


class Timeline:
    """Pending per-pod transitions (ready, delete) by due time; a later ``at`` for a key replaces it."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._seq = 0
        self._token: dict[tuple[str, str], int] = {}

    def at(self, due: float, kind: str, key: str) -> None:
        self._seq += 1
        self._token[(kind, key)] = self._seq
        heapq.heappush(self._heap, _Entry(due, self._seq, kind, key, self._seq))

    def cancel(self, key: str) -> None:
        for kind in ("ready", "delete"):
            self._token.pop((kind, key), None)

    def pop_due(self, now: float) -> list[tuple[str, str]]:
        """(kind, key) of every live transition due by ``now``, in due order."""
        out = []
        while self._heap and self._heap[0].due <= now:
            e = heapq.heappop(self._heap)
            if self._token.get((e.kind, e.key)) == e.token:
                del self._token[(e.kind, e.key)]
                out.append((e.kind, e.key))
        return out

    def __len__(self) -> int:
        return len(self._token)


def requests(pod: Mapping[str, Any], resource: str) -> float:
    """The pod's request of a resource: the sum over its containers (a limit stands in for a
    missing request, as the API server defaults it)."""
    total = 0.0
    for c in (pod.get("spec") or {}).get("containers") or ():
        res = c.get("resources") or {}
        value = (res.get("requests") or {}).get(resource, (res.get("limits") or {}).get(resource))
        total += quantity(value)
    return total


def limits(pod: Mapping[str, Any], resource: str) -> float:
    """The pod's limit of a resource: the sum over its containers; ``inf`` if any container has
    none (it may then use what the node has)."""
    total = 0.0
    for c in (pod.get("spec") or {}).get("containers") or ():
        value = ((c.get("resources") or {}).get("limits") or {}).get(resource)
        if value is None:
            return math.inf
        total += quantity(value)
    return total
