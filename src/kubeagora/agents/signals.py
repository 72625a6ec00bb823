"""Readings every agent takes from an Observation: load, SLO pressure, where replicas are, silent nodes.

Pure functions of one Observation, so two agents reading the same snapshot agree on what they see
(the scaling agent's "at risk" is the cost agent's "do not touch").
"""

from __future__ import annotations

import math

import numpy as np

from kubeagora.model import BoolArray, FloatArray, IntArray, NodeClass, Observation
from kubeagora.model.spec_tables import spec_column

ACCELERATOR_CLASSES = frozenset({NodeClass.GPU, NodeClass.TPU})


def per_replica_capacity_rps(obs: Observation, s: int) -> float:
    """What one Ready replica serves per second now (measured), or flat out on its fastest node class."""
    ready = int(obs.ready_replicas[s])
    if ready > 0 and obs.capacity_rps[s] > 0:
        return float(obs.capacity_rps[s]) / ready
    service = obs.services[s]
    fastest_ms = min(service.service_time_ms.values()) if service.service_time_ms else math.inf
    return float(obs.concurrency[s]) * 1000.0 / fastest_ms


def load_ratio(obs: Observation, s: int) -> float:
    """Arrivals over Ready capacity: 1.0 means every slot is busy (inf when nothing Ready takes load)."""
    arrival, capacity = float(obs.arrival_rps[s]), float(obs.capacity_rps[s])
    if capacity <= 0:
        return math.inf if arrival > 0 else 0.0
    return arrival / capacity


def latency_ratio(obs: Observation, s: int) -> float:
    """The worse of p95 / target and p99 / target in the last window (0 when nothing was served)."""
    service = obs.services[s]
    p95, p99 = float(obs.p95_ms[s]), float(obs.p99_ms[s])
    ratios = [v / t for v, t in ((p95, service.slo_p95_ms), (p99, service.slo_p99_ms)) if not math.isnan(v)]
    return max(ratios, default=0.0)


def load_ratios(obs: Observation) -> FloatArray:
    """`load_ratio` of every service, as one array."""
    arrival = np.asarray(obs.arrival_rps, dtype=np.float64)
    capacity = np.asarray(obs.capacity_rps, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = arrival / capacity
    return np.asarray(np.where(capacity <= 0, np.where(arrival > 0, math.inf, 0.0), ratio), dtype=np.float64)


def latency_ratios(obs: Observation) -> FloatArray:
    """`latency_ratio` of every service, as one array."""
    p95 = np.asarray(obs.p95_ms, dtype=np.float64) / spec_column(obs.services, "slo_p95_ms")
    p99 = np.asarray(obs.p99_ms, dtype=np.float64) / spec_column(obs.services, "slo_p99_ms")
    return np.asarray(np.nan_to_num(np.fmax(p95, p99), nan=0.0, posinf=math.inf), dtype=np.float64)


def slo_at_risk_all(obs: Observation, latency_share: float, load_share: float) -> BoolArray:
    """`slo_at_risk` of every service, as one array."""
    return np.asarray((latency_ratios(obs) > latency_share) | (load_ratios(obs) > load_share), dtype=np.bool_)


def within_slo(obs: Observation, s: int) -> bool:
    """p95 and p99 within target and the load within Ready capacity."""
    return latency_ratio(obs, s) <= 1.0 and load_ratio(obs, s) <= 1.0


def slo_at_risk(obs: Observation, s: int, latency_share: float, load_share: float) -> bool:
    """Tail latency above `latency_share` of its target, or load above `load_share` of Ready capacity."""
    return latency_ratio(obs, s) > latency_share or load_ratio(obs, s) > load_share


def ready_per_node(obs: Observation, s: int) -> IntArray:
    """Ready replicas of service `s` on each node."""
    mine = obs.replica_ready & (obs.replica_service == s)
    return np.bincount(obs.replica_node[mine], minlength=len(obs.nodes)).astype(np.int64)


def silent_nodes(obs: Observation, heartbeat_timeout_s: float) -> BoolArray:
    """Nodes not heard from for longer than the timeout (whether or not the control plane says NotReady)."""
    return np.asarray(obs.node_heartbeat_age_s > heartbeat_timeout_s, dtype=np.bool_)


def nominal_speed(obs: Observation) -> FloatArray:
    return np.array([n.speed_factor for n in obs.nodes], dtype=np.float64)


def throttled_nodes(obs: Observation, tolerance: float) -> BoolArray:
    """Accelerator nodes running more than `tolerance` below their nominal speed (a power or thermal cap)."""
    is_accelerator = np.array([n.node_class in ACCELERATOR_CLASSES for n in obs.nodes], dtype=np.bool_)
    return np.asarray(is_accelerator & (obs.node_speed < nominal_speed(obs) * (1.0 - tolerance)), dtype=np.bool_)


def nodes_in(obs: Observation, *, region: str | None = None, zone: str | None = None) -> BoolArray:
    return np.array([(region is None or n.region == region) and (zone is None or n.zone == zone)
                     for n in obs.nodes], dtype=np.bool_)


def fastest_cold_start_s(obs: Observation, s: int) -> float:
    """The shortest pod start to Ready on any schedulable node class that can run the service."""
    service = obs.services[s]
    usable = obs.node_ready & ~obs.node_quarantined
    classes = {n.node_class for n, ok in zip(obs.nodes, usable, strict=True) if ok and service.can_run_on(n.node_class)}
    return min((service.cold_start_on(c) for c in classes), default=math.inf)


def region_of_replica_nodes(obs: Observation, s: int) -> tuple[str, ...]:
    """The region of each Ready replica of service `s`, in replica order."""
    mine = obs.replica_ready & (obs.replica_service == s)
    return tuple(obs.nodes[int(n)].region for n in obs.replica_node[mine])
