"""One step's flow through the pod slots: routing to the endpoints, fluid queues, CPU use, and the latency
description per replica group that the recorder turns into histograms.

Two implementations that give the same floats: `serve_numpy` (numpy over the slot arrays) and
`serve_compiled` (one pass of `kubeagora.sim.kernels`, numba; about 60 numpy calls fewer per step). The
engine picks the compiled one when numba is installed (`kernels.ENABLED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kubeagora.model import BoolArray, FloatArray, IntArray
from kubeagora.sim import kernels
from kubeagora.sim import latency as lat

if TYPE_CHECKING:
    from kubeagora.sim.engine import Engine

READY, TERMINATING = kernels.READY, kernels.TERMINATING


@dataclass(frozen=True, slots=True)
class Flow:
    backlog: FloatArray
    """Each slot's queue after the step."""
    served_s: FloatArray
    lost_s: FloatArray | None
    """Routed to a replica the network cannot reach (None while the network is whole)."""
    overflow_s: FloatArray | None
    """Dropped at full queues (None where nothing overflowed)."""
    busy_core_s: FloatArray
    slowdown_weighted: FloatArray
    """Σ arrivals × (1 − 1/interference slowdown), per service (the recorder's interference penalty)."""
    capacity_rps: FloatArray
    """Service rate of the listed, reachable replicas."""
    served_n: FloatArray
    served_x_ms_n: FloatArray
    """Σ served × service time (ms), per node."""
    cpu_n: FloatArray
    """Cores in use, per node."""
    accelerators_n: FloatArray
    groups: lat.ReplicaGroups


def serve_numpy(eng: Engine, listed: BoolArray, ep_count: IntArray, to_route: FloatArray,
                expected_s: FloatArray) -> Flow:
    """`to_route` requests per service spread over its listed replicas (`ep_count` of them), served at each
    replica's speed; `expected_s` is the expected arrival rate per service (the queueing model's load)."""
    st, r, p, dt = eng.state, eng.state.replicas, eng.platform, eng.dt
    n_s, n_n = eng.n_services, eng.n_nodes
    svc, node = r.service, r.node
    share = np.where(listed, 1.0 / np.maximum(ep_count[svc], 1), 0.0)
    a_r = to_route[svc] * share
    lost_s = None
    if eng.network_whole:
        deliverable = listed
    else:
        deliverable = st.node_alive[node] & st.region_reachable[eng.svc_origin[svc], eng.node_region[node]]
        lost_r = np.where(deliverable, 0.0, a_r)
        lost_s = _sums(svc, lost_r, n_s)
        a_r = a_r - lost_r

    # service: fluid queues per replica, speed from node class, throttling and interference
    slowdown = lat.interference_slowdown(eng.node_beta[node], st.node_util[node])
    conc = st.concurrency[svc].astype(float)
    # slots beyond the service's native parallelism (its threads / batch size at its CPU request)
    # time-share the same CPU: each request takes proportionally longer, throughput stays the same
    oversubscribed = np.maximum(conc / eng.svc_concurrency[svc], 1.0)
    svc_ms = r.base_ms / st.node_speed[node] * slowdown * oversubscribed
    serving = ((r.state == READY) | (r.state == TERMINATING)) & st.node_alive[node]
    mu = np.where(serving, conc * 1000.0 / svc_ms, 0.0)
    q0 = r.backlog
    total = q0 + a_r
    served = np.minimum(total, mu * dt)
    q1 = total - served
    overflow = np.maximum(q1 - eng.svc_queue_limit[svc] * conc, 0.0)
    q1 = q1 - overflow
    served_s = _sums(svc, served, n_s)
    busy_share = np.minimum(served * svc_ms / (1000.0 * dt), conc) / conc
    cpu_used = r.cpu_request * (p.idle_cpu_fraction + (1 - p.idle_cpu_fraction) * busy_share)
    if not eng.network_whole:
        cpu_used = np.where(st.node_alive[node], cpu_used, 0.0)

    # latency per replica group (traffic-weighted over a service's replicas, far or slow ones apart)
    # queueing at the expected load (the rate, not this second's Poisson draw; see lat.queueing)
    pwait, cw_ms, fluid_ms, rho = lat.queueing_at_load(expected_s[svc] * share, mu, conc, svc_ms, eng.svc_cv[svc],
                                                       (q0 + q1) / 2.0)
    return Flow(
        backlog=q1, served_s=served_s, lost_s=lost_s,
        overflow_s=_sums(svc, overflow, n_s) if overflow.any() else None,
        busy_core_s=_sums(svc, cpu_used * dt, n_s),
        slowdown_weighted=_sums(svc, a_r * (1.0 - 1.0 / slowdown), n_s),
        capacity_rps=_sums(svc, np.where(listed & deliverable, mu, 0.0), n_s),
        served_n=_sums(node, served, n_n),
        served_x_ms_n=_sums(node, served * svc_ms, n_n),
        cpu_n=_sums(node, cpu_used, n_n),
        accelerators_n=_sums(node, r.accelerators * busy_share, n_n),
        groups=lat.replica_groups(svc, a_r, served, served_s, svc_ms, r.net_ms + fluid_ms, pwait, cw_ms, rho, n_s),
    )


def serve_compiled(eng: Engine, listed: BoolArray, ep_count: IntArray, to_route: FloatArray,
                   expected_s: FloatArray) -> Flow:
    """`serve_numpy` in two compiled passes over the slots; P(wait)'s power is numpy's in both."""
    st, r, p = eng.state, eng.state.replicas, eng.platform
    per_pod, q1, per_s, per_n, any_overflow = kernels.serve_pods(
        r.service, r.node, r.state, listed, r.backlog, r.base_ms, r.cpu_request, r.accelerators, to_route, ep_count,
        expected_s, st.concurrency, eng.svc_concurrency, eng.svc_queue_limit, st.node_speed, eng.node_beta,
        st.node_util, st.node_alive, eng.network_whole, eng.svc_origin, eng.node_region, st.region_reachable, eng.dt,
        p.idle_cpu_fraction, 1 - p.idle_cpu_fraction, lat.RHO_MAX, eng.n_services, eng.n_nodes)
    conc = per_pod[4]
    pwait = np.power(per_pod[6], np.sqrt(2.0 * (conc + 1.0)) - 1.0)  # as lat.queueing_at_load
    terms, sums, far = kernels.group_terms(r.service, r.state, per_pod, pwait, r.net_ms, eng.svc_cv, per_s[0],
                                           lat.FAR_LATENCY_FACTOR)
    ids, stats = kernels.merge_groups(r.service, terms, sums, far, eng.n_services)
    return Flow(
        backlog=q1, served_s=per_s[0], lost_s=None if eng.network_whole else per_s[1],
        overflow_s=per_s[2] if any_overflow else None, busy_core_s=per_s[3], slowdown_weighted=per_s[4],
        capacity_rps=per_s[5], served_n=per_n[0], served_x_ms_n=per_n[1], cpu_n=per_n[2], accelerators_n=per_n[3],
        groups=lat.ReplicaGroups(ids % eng.n_services, ids, stats),
    )


def _sums(index: IntArray, weight: FloatArray, n: int) -> FloatArray:
    """Σ weight per index value (np.bincount: in slot order)."""
    return np.asarray(np.bincount(index, weight, minlength=n), dtype=np.float64)
