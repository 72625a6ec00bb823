"""Nodes and services: the static description of a cluster and its workloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Tier(StrEnum):
    EDGE = "edge"
    FOG = "fog"
    CLOUD = "cloud"


class NodeClass(StrEnum):
    MCU = "mcu"
    CPU = "cpu"
    GPU = "gpu"
    TPU = "tpu"


NODE_CLASSES: tuple[NodeClass, ...] = tuple(NodeClass)


@dataclass(frozen=True, slots=True)
class Node:
    """One machine. Capacity is what pods may request (allocatable), power is the wall draw."""

    name: str
    tier: Tier
    region: str
    zone: str
    node_class: NodeClass
    cpu_cores: float
    memory_gib: float
    accelerators: int = 0
    speed_factor: float = 1.0
    """Relative speed against the class's reference machine (2.0 serves twice as fast)."""
    idle_power_w: float = 60.0
    peak_power_w: float = 200.0


@dataclass(frozen=True, slots=True)
class Service:
    """A Deployment-like workload and what it needs to meet its SLO."""

    name: str
    service_time_ms: Mapping[NodeClass, float]
    """Mean service time of one request on a reference node of each class; a class absent here
    cannot run the service (an LLM does not fit an MCU)."""
    cpu_request: float = 0.5
    memory_request_gib: float = 0.5
    accelerator_request: int = 0
    """Accelerators each replica takes when it runs on a gpu or tpu node."""
    service_time_cv: float = 0.6
    """Coefficient of variation of the (lognormal) service time."""
    slo_p95_ms: float = 150.0
    slo_p99_ms: float = 250.0
    tenant: str = "default"
    priority_weight: float = 1.0
    origin_region: str = "region-0"
    """Where its users are: requests enter the cluster at this region's edge."""
    allowed_regions: tuple[str, ...] | None = None
    """Data residency: replicas may run only in these regions (None = anywhere)."""
    accelerator_affinity: NodeClass | None = None
    min_replicas: int = 1
    max_replicas: int = 50
    cold_start_s: Mapping[NodeClass, float] = field(default_factory=dict)
    """Pod start until Ready, per node class (image pull + model load)."""
    concurrency: int = 4
    """Requests one replica serves at once (worker threads, batch slots)."""
    queue_limit: int = 256
    """Waiting requests per worker slot: a replica sheds (HTTP 503) beyond queue_limit × concurrency."""
    traffic_weight: float = 1.0
    """Share of the scenario's load that arrives at this service."""
    downstream: tuple[str, ...] = ()
    """Services each served request calls once (a fan-out DAG, one step later)."""

    def can_run_on(self, node_class: NodeClass) -> bool:
        return node_class in self.service_time_ms

    def cold_start_on(self, node_class: NodeClass) -> float:
        return self.cold_start_s.get(node_class, DEFAULT_COLD_START_S[node_class])


DEFAULT_COLD_START_S: Mapping[NodeClass, float] = {
    NodeClass.MCU: 2.0,
    NodeClass.CPU: 8.0,
    NodeClass.GPU: 25.0,
    NodeClass.TPU: 30.0,
}
"""Typical pod start to Ready: a cached small image on CPU is seconds; a GPU/TPU model server
pays for loading weights (tens of seconds)."""
