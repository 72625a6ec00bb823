"""The frozen snapshot a controller sees: the same shape from the simulator and from a cluster.

Per-service and per-node figures are numpy arrays indexed like `services` and `nodes`.
Counters only grow (like Prometheus counters), so a controller can take rates over any window it
keeps in its own state; gauges are the value at `time_s`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kubeagora.model.cluster import Node, NodeClass, Service
from kubeagora.model.spec_tables import per_specs

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Observation:
    time_s: float
    nodes: tuple[Node, ...]
    services: tuple[Service, ...]

    # per service: counters
    arrived_total: FloatArray
    served_total: FloatArray
    dropped_total: FloatArray
    busy_core_seconds_total: FloatArray
    """CPU time spent serving (what cAdvisor's container_cpu_usage_seconds_total counts)."""
    # per service: gauges
    arrival_rps: FloatArray
    """Requests offered in the last second (before any load shedding)."""
    queue_length: FloatArray
    """Requests waiting or in service, over all replicas."""
    desired_replicas: IntArray
    ready_replicas: IntArray
    pending_replicas: IntArray
    """Created but not Ready yet (scheduling or cold start)."""
    concurrency: IntArray
    p95_ms: FloatArray
    p99_ms: FloatArray
    """Latency percentiles of the last completed 10-second window (NaN when nothing was served)."""
    capacity_rps: FloatArray
    """What the Ready replicas can serve per second by the declared service times at `node_speed`
    (`ready_capacity_rps`): what a cluster can tell, not what the world does (no interference, no
    deviation of the machines from their specs)."""
    shed_fraction: FloatArray

    # per node: gauges
    node_ready: BoolArray
    """NodeReady as the control plane sees it (False some seconds after heartbeats stop)."""
    node_heartbeat_age_s: FloatArray
    node_quarantined: BoolArray
    node_cpu_allocated: FloatArray
    node_memory_allocated_gib: FloatArray
    node_accelerators_allocated: IntArray
    node_utilization: FloatArray
    node_power_w: FloatArray
    node_speed: FloatArray
    """The declared speed factor × a known throttle (lower under a GPU power cap); a machine's true speed
    is not reported."""
    region_carbon_g_per_kwh: dict[str, float]

    # the network as probes measure it (static unless the topology changes)
    regions: tuple[str, ...]
    ingress_rtt_ms: FloatArray
    """[region, node]: RTT from users at the region's edge to the node."""

    # replicas (one row per pod that exists)
    replica_service: IntArray
    replica_node: IntArray
    replica_ready: BoolArray
    replica_started_s: FloatArray | None = None
    """When each pod was created (a Pod's creationTimestamp), on the same clock as `time_s`; None where
    the source does not tell."""
    replica_ready_s: FloatArray | None = None
    """When each Ready pod last turned Ready (its Ready condition's lastTransitionTime); NaN while not
    Ready. With `replica_started_s`, what a pod's cold start measured."""
    node_attestation: IntArray | None = None
    """Per node: the verdict on its latest attestation claim (`kubeagora.trust.attestation.Verdict` codes: 0
    not enrolled, 1 verified, then missing, forged, replayed, stale, expired, failed); None where no node is
    enrolled."""
    node_service_ms: FloatArray | None = None
    """Per node: traffic-weighted mean service time of the requests it served lately, as the callers measure
    it (not the node's own report; NaN where it served none); None where the source does not tell."""

    def service_index(self, name: str) -> int:
        return _index_by_name(self.services)[name]

    def node_index(self, name: str) -> int:
        return _index_by_name(self.nodes)[name]


_NAME_INDEXES: dict[int, tuple[tuple[Node | Service, ...], dict[str, int]]] = {}
"""id(tuple) → (the tuple, name → first index). Observations of one run share their services and nodes
tuples, so a lookup is a dict access instead of a scan of 1,000 names (the MAS makes thousands a tick)."""


def _index_by_name(items: tuple[Node | Service, ...]) -> dict[str, int]:
    cached = _NAME_INDEXES.get(id(items))
    if cached is not None and cached[0] is items:  # the tuple is held in the entry: its id is not reused
        return cached[1]
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        index.setdefault(item.name, i)
    if len(_NAME_INDEXES) >= 64:
        _NAME_INDEXES.clear()
    _NAME_INDEXES[id(items)] = (items, index)
    return index


def class_service_time_ms(services: Sequence[Service], node_classes: Sequence[NodeClass]) -> FloatArray:
    """[service, node class] declared mean service time on the class's reference node (NaN where it cannot
    run). Computed once per run for tuples of specs (read-only then): copy it to change it."""
    def build() -> FloatArray:
        out = np.full((len(services), len(node_classes)), np.nan)
        for i, s in enumerate(services):
            for k, c in enumerate(node_classes):
                ms = s.service_time_ms.get(c)
                if ms is not None:
                    out[i, k] = ms
        return out
    if isinstance(services, tuple) and isinstance(node_classes, tuple):
        return per_specs("observation.class_service_time_ms", (services, node_classes), build)
    return build()


def ready_capacity_rps(class_time_ms: FloatArray, node_class: IntArray, node_speed: FloatArray,
                       native_concurrency: FloatArray, concurrency: FloatArray, replica_service: IntArray,
                       replica_node: IntArray, replica_ready: BoolArray) -> FloatArray:
    """Per service: what its Ready replicas serve per second flat out, by the declared service times at the
    nodes' current speed (declared speed × a known throttle). The one definition of `capacity_rps`, used by
    the simulator's and the cluster's adapters alike: neither the interference of co-located work nor a
    node's true speed is something a cluster reports, so neither is in it.

    `class_time_ms[service, node class]` (NaN where it cannot run), `node_class[node]` its column. Slots
    beyond a service's native concurrency time-share the same CPU, so they add no throughput."""
    n_s = class_time_ms.shape[0]
    svc = replica_service[replica_ready]
    node = replica_node[replica_ready]
    ms = class_time_ms[svc, node_class[node]]
    slots = np.minimum(concurrency, native_concurrency)[svc]
    per_replica = np.where(np.isfinite(ms), slots * 1000.0 * node_speed[node] / np.where(np.isfinite(ms), ms, 1.0),
                           0.0)
    return np.asarray(np.bincount(svc, per_replica, minlength=n_s), dtype=np.float64)
