"""Predict the tail latency the engine will record for a service, from a replica plan.

The same model the engine applies each step (`kubeagora.sim.engine.Engine.step`, with the formulas
of `kubeagora.sim.latency`), evaluated for a plan instead of the live state:

- every listed replica receives an equal share of the service's arrivals (even routing);
- a replica's service time is the class time / node speed × (1 + β·u²), u its node's utilisation;
- per replica, `latency.queueing` gives P(wait) and the mean wait given waiting at the expected load;
- the service's latency distribution mixes the replicas the way the engine does for a service whose
  replicas are alike (one group: traffic-weighted mean service time, P(wait), wait and network
  offset), takes the knots of `mixture_knot_table(cv)` for service time with and without an
  exponential wait, adds the retransmission timeout for the lost share, and reads p95 and p99 from
  the same log-binned histogram the recorder uses (`latency.knot_histogram`).

Node utilisation depends on the service times it inflates, so `node_utilisation` solves that small
fixed point for a whole plan (all services on all nodes).
"""

from __future__ import annotations

import numpy as np

from kubeagora.model import FloatArray
from kubeagora.sim import latency as lat
from kubeagora.sim.engine import PlatformDefaults

IDLE_CPU_FRACTION = PlatformDefaults().idle_cpu_fraction
"""CPU an idle replica burns, as a share of its request."""


def predict_latency_ms(
    service_ms: FloatArray,
    network_ms: FloatArray,
    arrivals_per_replica_rps: float,
    concurrency: int,
    service_time_cv: float,
    loss_fraction: float = 0.0,
    backlog_per_replica: FloatArray | None = None,
) -> tuple[float, float]:
    """(p95, p99) in ms of one service's requests for a plan of replicas.

    `service_ms[k]` is replica k's mean service time on its node (after speed and interference),
    `network_ms[k]` the network delay from the users to that node, and every replica receives
    `arrivals_per_replica_rps`. Infinite when a replica cannot keep up (ρ ≥ 1: its backlog grows
    without bound), or when there is no replica and there is traffic.
    """
    service_ms = np.asarray(service_ms, dtype=np.float64)
    if service_ms.size == 0:
        return (0.0, 0.0) if arrivals_per_replica_rps <= 0 else (np.inf, np.inf)
    p95, p99 = predict_latency_batch_ms(
        service_ms[None, :], np.asarray(network_ms, dtype=np.float64)[None, :],
        np.array([float(arrivals_per_replica_rps)]), concurrency, service_time_cv, loss_fraction,
        None if backlog_per_replica is None else np.asarray(backlog_per_replica, dtype=np.float64)[None, :],
    )
    return float(p95[0]), float(p99[0])


def predict_latency_batch_ms(
    service_ms: FloatArray,
    network_ms: FloatArray,
    arrivals_per_replica_rps: FloatArray,
    concurrency: int,
    service_time_cv: float,
    loss_fraction: float = 0.0,
    backlog_per_replica: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """`predict_latency_ms` for many plans of one service at once: arrays [plan, replica] in, and
    (p95, p99) per plan out."""
    plans, replicas = service_ms.shape
    if replicas == 0:
        idle = np.where(np.asarray(arrivals_per_replica_rps) > 0, np.inf, 0.0) * np.ones(plans)
        return idle, idle.copy()
    servers = float(concurrency)
    rate_per_s = np.broadcast_to(np.asarray(arrivals_per_replica_rps, dtype=np.float64)[:, None], service_ms.shape)
    service_rate_per_s = servers * 1000.0 / service_ms
    overloaded = np.any(rate_per_s >= service_rate_per_s, axis=1)
    backlog = np.zeros(service_ms.shape) if backlog_per_replica is None else backlog_per_replica
    p_wait, wait_ms, fluid_ms = lat.queueing(
        rate_per_s, service_rate_per_s, np.full(service_ms.shape, servers), service_ms,
        np.full(service_ms.shape, float(service_time_cv)), backlog,
    )
    # the engine weights each replica by its traffic; with even routing the weights are equal
    mean_ms = service_ms.mean(axis=1)
    p_wait_mean = p_wait.mean(axis=1)
    wait_given_waiting_ms = (p_wait * wait_ms).sum(axis=1) / np.maximum(p_wait.sum(axis=1), 1e-12)
    offset_ms = (network_ms + fluid_ms).mean(axis=1)

    knots = lat.mixture_knots_ms(lat.mixture_knot_table(round(float(service_time_cv), 3)), p_wait_mean,
                                 wait_given_waiting_ms, mean_ms, offset_ms)
    histogram = lat.knot_histogram(knots, np.ones(plans), np.full(plans, float(loss_fraction)),
                                   mean_ms + offset_ms + lat.RTO_MS)
    quantiles = lat.percentiles(histogram, (0.95, 0.99))
    p95 = np.where(overloaded, np.inf, quantiles[:, 0])
    p99 = np.where(overloaded, np.inf, quantiles[:, 1])
    return p95, p99


def node_utilisation(
    replica_node: np.ndarray,
    replica_base_ms: FloatArray,
    replica_arrivals_rps: FloatArray,
    replica_concurrency: FloatArray,
    replica_cpu: FloatArray,
    replica_accelerators: FloatArray,
    node_speed: FloatArray,
    node_beta: FloatArray,
    node_cores: FloatArray,
    node_accelerators: FloatArray,
    iterations: int = 8,
) -> FloatArray:
    """Per node: the utilisation a plan of replicas settles at, as the engine measures it.

    A replica's busy share is ρ = λ·S/(1000·c) (capped at 1), S its service time at the node's
    slowdown; a node's utilisation is the larger of its CPU share (each replica burns its request ×
    (idle share + (1 − idle share)·ρ)) and its accelerator share (accelerators × ρ). The slowdown
    depends on the utilisation, so this iterates to the fixed point.
    """
    n_nodes = node_speed.shape[0]
    utilisation = np.zeros(n_nodes)
    if replica_node.size == 0:
        return utilisation
    for _ in range(iterations):
        slowdown = lat.interference_slowdown(node_beta[replica_node], utilisation[replica_node])
        service_ms = replica_base_ms / node_speed[replica_node] * slowdown
        busy = np.minimum(replica_arrivals_rps * service_ms / (1000.0 * replica_concurrency), 1.0)
        cpu = replica_cpu * (IDLE_CPU_FRACTION + (1.0 - IDLE_CPU_FRACTION) * busy)
        cpu_share = np.bincount(replica_node, cpu, minlength=n_nodes) / node_cores
        accelerator_share = np.bincount(replica_node, replica_accelerators * busy, minlength=n_nodes) / np.maximum(
            node_accelerators, 1.0
        )
        updated = np.clip(np.maximum(cpu_share, accelerator_share), 0.0, 1.0)
        if np.allclose(updated, utilisation, atol=1e-4):
            return updated
        utilisation = updated
    return utilisation
