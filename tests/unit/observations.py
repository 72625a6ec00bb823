"""Hand-made Observations for controller tests: one or a few services on a tiny cluster."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from kubeagora.model import Node, NodeClass, Observation, Service, Tier


def cpu_node(name: str = "node-0", cores: float = 32.0) -> Node:
    return Node(name, Tier.CLOUD, "region-0", "region-0-z0", NodeClass.CPU, cores, 128.0)


def web_service(name: str = "web", **fields: Any) -> Service:
    """25 ms on a CPU node, 4 slots, 0.5 core request: 160 req/s flat out per replica."""
    return Service(name, {NodeClass.CPU: 25.0}, **{"cpu_request": 0.5, "concurrency": 4, **fields})


def observation(
    *,
    time_s: float = 0.0,
    services: tuple[Service, ...] | None = None,
    nodes: tuple[Node, ...] | None = None,
    ready: int = 1,
    pending: int = 0,
    **per_service: Any,
) -> Observation:
    """An Observation where every service has `ready` Ready replicas (on node 0) and `pending` starting ones.

    Per-service arrays (counters, gauges) default to zeros; pass scalars or arrays to override them.
    """
    services = services or (web_service(),)
    nodes = nodes or (cpu_node(),)
    n_s, n_n = len(services), len(nodes)

    def per(name: str, default: float = 0.0, dtype: Any = np.float64) -> Any:
        value = per_service.pop(name, default)
        return np.broadcast_to(np.asarray(value, dtype=dtype), (n_s,)).copy()

    replica_service = np.repeat(np.arange(n_s), ready + pending).astype(np.int64)
    replica_ready = np.tile(np.array([True] * ready + [False] * pending), n_s)
    cpu_allocated = np.zeros(n_n)
    cpu_allocated[0] = sum(s.cpu_request for s in services) * (ready + pending)
    memory_allocated = np.zeros(n_n)
    memory_allocated[0] = sum(s.memory_request_gib for s in services) * (ready + pending)
    obs = Observation(
        time_s=time_s,
        nodes=nodes,
        services=services,
        arrived_total=per("arrived_total"),
        served_total=per("served_total"),
        dropped_total=per("dropped_total"),
        busy_core_seconds_total=per("busy_core_seconds_total"),
        arrival_rps=per("arrival_rps"),
        queue_length=per("queue_length"),
        desired_replicas=per("desired_replicas", ready + pending, np.int64),
        ready_replicas=per("ready_replicas", ready, np.int64),
        pending_replicas=per("pending_replicas", pending, np.int64),
        concurrency=np.array([s.concurrency for s in services], dtype=np.int64),
        p95_ms=per("p95_ms", np.nan),
        p99_ms=per("p99_ms", np.nan),
        capacity_rps=per("capacity_rps"),
        shed_fraction=per("shed_fraction"),
        node_ready=np.ones(n_n, bool),
        node_heartbeat_age_s=np.zeros(n_n),
        node_quarantined=np.zeros(n_n, bool),
        node_cpu_allocated=cpu_allocated,
        node_memory_allocated_gib=memory_allocated,
        node_accelerators_allocated=np.zeros(n_n, np.int64),
        node_utilization=np.zeros(n_n),
        node_power_w=np.zeros(n_n),
        node_speed=np.array([n.speed_factor for n in nodes]),
        region_carbon_g_per_kwh={"region-0": 300.0},
        regions=("region-0",),
        ingress_rtt_ms=np.full((1, n_n), 20.0),
        replica_service=replica_service,
        replica_node=np.zeros(replica_service.shape[0], np.int64),
        replica_ready=replica_ready,
    )
    if per_service:
        raise TypeError(f"unknown Observation fields: {', '.join(per_service)}")
    return obs


def advance(obs: Observation, seconds: float, **changes: Any) -> Observation:
    """The same observation `seconds` later, with some fields changed."""
    shaped = {
        k: np.broadcast_to(np.asarray(v, dtype=getattr(obs, k).dtype), getattr(obs, k).shape).copy()
        for k, v in changes.items()
    }
    return replace(obs, time_s=obs.time_s + seconds, **shaped)


def node(name: str, region: str = "region-0", *, zone: str | None = None, node_class: NodeClass = NodeClass.CPU,
         cores: float = 4.0, accelerators: int = 0, speed: float = 1.0) -> Node:
    """A node in `region` (zone `<region>-z0` unless named); 60 W idle, 200 W peak."""
    return Node(name, Tier.CLOUD, region, zone or f"{region}-z0", node_class, cores, 16.0, accelerators, speed)


def with_replicas(obs: Observation, replicas: list[tuple[int, int, bool]]) -> Observation:
    """The observation with exactly these replicas, as (service index, node index, ready) rows.

    Ready/pending/desired counts and the nodes' allocations follow from the rows.
    """
    n_s, n_n = len(obs.services), len(obs.nodes)
    service = np.array([r[0] for r in replicas], dtype=np.int64)
    node_of = np.array([r[1] for r in replicas], dtype=np.int64)
    ready = np.array([r[2] for r in replicas], dtype=np.bool_)
    cpu = np.array([s.cpu_request for s in obs.services])
    memory = np.array([s.memory_request_gib for s in obs.services])
    ready_count = np.bincount(service[ready], minlength=n_s).astype(np.int64)
    pending_count = np.bincount(service[~ready], minlength=n_s).astype(np.int64)
    return replace(
        obs,
        replica_service=service,
        replica_node=node_of,
        replica_ready=ready,
        ready_replicas=ready_count,
        pending_replicas=pending_count,
        desired_replicas=ready_count + pending_count,
        node_cpu_allocated=np.bincount(node_of, weights=cpu[service], minlength=n_n).astype(np.float64),
        node_memory_allocated_gib=np.bincount(node_of, weights=memory[service], minlength=n_n).astype(np.float64),
    )


def in_regions(obs: Observation, regions: tuple[str, ...], *, rtt_ms: Any = None,
               carbon: dict[str, float] | None = None) -> Observation:
    """The observation with these regions: RTT 20 ms from a region's users to its own nodes, 80 ms to others."""
    if rtt_ms is None:
        rtt_ms = [[20.0 if n.region == r else 80.0 for n in obs.nodes] for r in regions]
    return replace(obs, regions=regions, ingress_rtt_ms=np.asarray(rtt_ms, dtype=np.float64),
                   region_carbon_g_per_kwh=carbon or dict.fromkeys(regions, 300.0))
