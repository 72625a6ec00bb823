"""The engine's per-slot loops compiled with numba (the optional `fast` extra); numpy does the same without it.

Each kernel stands for a stretch of numpy code (`kubeagora.sim.flow`'s numpy path, `latency.DensityEntries`)
and does its float operations in the same order and precision: per-bin sums in slot order, as `np.bincount`
adds them, float32 where numpy computes in float32. The transcendental functions (log, power) stay with
numpy in both paths: numba calls the C library's and numpy has its own SIMD versions, which can differ in the
last bit. A run therefore gives the same bench JSON with and without numba (tests/unit/test_kernels.py).

What it buys: one pass over the pod slots instead of ~60 numpy calls on them, and a window's latency
histograms summed as they come instead of buffered and binned at the window's end. `KUBEAGORA_NUMBA=0`
turns the kernels off (the numpy path); the engine reads `ENABLED` when it is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from kubeagora.model import FloatArray
from kubeagora.sim import latency as lat

try:
    import numba
except ImportError:  # the core install: the numpy path
    numba = None

AVAILABLE = numba is not None
ENABLED = AVAILABLE and os.environ.get("KUBEAGORA_NUMBA", "1") != "0"

F = TypeVar("F", bound=Callable[..., Any])


def _jit(f: F) -> F:
    if numba is None:
        return f
    # error_model="numpy": a float division by zero gives inf/nan as numpy's does, instead of raising
    try:
        return numba.njit(cache=True, error_model="numpy", nogil=True)(f)  # type: ignore[no-any-return]
    except RuntimeError:  # nowhere writable to cache the machine code (a read-only install): compile per process
        return numba.njit(error_model="numpy", nogil=True)(f)  # type: ignore[no-any-return]


FREE, READY, TERMINATING = 0, 2, 3  # the engine's slot states (the engine imports this module)
POD_ROWS = ("arrivals", "served", "service_ms", "service_rate", "servers", "expected_rps", "rho", "mean_backlog")
"""Rows of `serve_pods`'s per-slot output."""
SERVICE_ROWS = ("served", "lost", "overflow", "busy_core_s", "slowdown_weighted", "capacity_rps")
NODE_ROWS = ("served", "served_x_ms", "cpu_used", "accelerators_used")


@_jit
def serve_pods(service: Any, node: Any, state: Any, listed: Any, backlog: Any, base_ms: Any, cpu_request: Any,
               accelerators: Any, to_route: Any, ep_count: Any, expected_s: Any, concurrency: Any,
               native_concurrency: Any, queue_limit: Any, node_speed: Any, node_beta: Any, node_util: Any,
               node_alive: Any, whole: bool, svc_origin: Any, node_region: Any, reachable: Any, dt: float,
               idle_fraction: float, busy_fraction: float, rho_max: float, n_services: int,
               n_nodes: int) -> Any:
    """One step of routing, fluid queues and CPU use over all slots (`flow.serve_numpy` in numpy).
    Returns (per slot [POD_ROWS], new backlog, per service [SERVICE_ROWS], per node [NODE_ROWS], any overflow)."""
    pods = service.shape[0]
    per_pod = np.zeros((8, pods))
    q1_all = np.empty(pods)
    per_s = np.zeros((6, n_services))
    per_n = np.zeros((4, n_nodes))
    any_overflow = False
    for k in range(pods):
        s = service[k]
        if state[k] == FREE and backlog[k] == 0.0:
            # an empty slot: it adds +0.0 to every sum and its rows stay 0 (the numpy path's values)
            q1_all[k] = 0.0
            per_pod[4, k] = float(concurrency[s])
            continue
        n = node[k]
        share = 1.0 / max(ep_count[s], 1) if listed[k] else 0.0
        a = to_route[s] * share
        deliverable = listed[k]
        if not whole:
            deliverable = node_alive[n] and reachable[svc_origin[s], node_region[n]]
            lost = 0.0 if deliverable else a
            per_s[1, s] += lost
            a = a - lost
        u = min(max(node_util[n], 0.0), 1.0)
        slowdown = 1.0 + node_beta[n] * u * u
        conc = float(concurrency[s])
        oversubscribed = max(conc / native_concurrency[s], 1.0)
        svc_ms = base_ms[k] / node_speed[n] * slowdown * oversubscribed
        serving = (state[k] == READY or state[k] == TERMINATING) and node_alive[n]
        mu = conc * 1000.0 / svc_ms if serving else 0.0
        q0 = backlog[k]
        total = q0 + a
        served = min(total, mu * dt)
        q1 = total - served
        overflow = max(q1 - queue_limit[s] * conc, 0.0)
        q1 = q1 - overflow
        q1_all[k] = q1
        per_s[0, s] += served
        per_n[0, n] += served
        per_n[1, n] += served * svc_ms
        per_s[2, s] += overflow
        if overflow != 0.0:
            any_overflow = True
        busy_share = min(served * svc_ms / (1000.0 * dt), conc) / conc
        cpu = cpu_request[k] * (idle_fraction + busy_fraction * busy_share)
        if not whole and not node_alive[n]:
            cpu = 0.0
        per_s[3, s] += cpu * dt
        per_n[2, n] += cpu
        per_n[3, n] += accelerators[k] * busy_share
        per_s[4, s] += a * (1.0 - 1.0 / slowdown)
        per_s[5, s] += mu if (listed[k] and deliverable) else 0.0
        expected = expected_s[s] * share
        rho = expected / max(mu, 1e-12) if mu > 0 else 0.0
        per_pod[0, k] = a
        per_pod[1, k] = served
        per_pod[2, k] = svc_ms
        per_pod[3, k] = mu
        per_pod[4, k] = conc
        per_pod[5, k] = expected
        per_pod[6, k] = min(rho, rho_max)
        per_pod[7, k] = (q0 + q1) / 2.0
    return per_pod, q1_all, per_s, per_n, any_overflow


@_jit
def group_terms(service: Any, state: Any, per_pod: Any, p_wait: Any, net_ms: Any, svc_cv: Any, served_s: Any,
                far_factor: float) -> Any:
    """Queueing per slot and its replica-group sums (`latency.queueing_at_load` then `latency.group_terms`).
    Returns (terms [8, slot], sums [8, service], far slots)."""
    pods = service.shape[0]
    n_services = served_s.shape[0]
    terms = np.zeros((8, pods))
    sums = np.zeros((8, n_services))
    mean_latency = np.zeros(pods)
    for k in range(pods):
        if state[k] == FREE and per_pod[7, k] == 0.0:
            continue  # an empty slot (`serve_pods`): its terms are 0
        s = service[k]
        w, svc_ms, mu, conc = per_pod[0, k], per_pod[2, k], per_pod[3, k], per_pod[4, k]
        expected, rho, p = per_pod[5, k], per_pod[6, k], p_wait[k]
        cv = svc_cv[s]
        wait = svc_ms / (conc * (1.0 - rho)) * (1.0 + cv * cv) / 2.0
        stationary = expected * p * wait / 1000.0
        excess = max(per_pod[7, k] - stationary, 0.0)
        fluid = excess / max(mu, 1e-12) * 1000.0 if mu > 0 else 0.0
        offset = net_ms[k] + fluid
        mean_latency[k] = offset + svc_ms + p * wait
        terms[0, k] = per_pod[1, k]
        terms[1, k] = w * svc_ms
        terms[2, k] = w * offset
        t3 = w * p
        terms[3, k] = t3
        terms[4, k] = t3 * wait
        terms[5, k] = w * (wait / (500.0 * (1.0 - rho)))
        terms[6, k] = w * w
        terms[7, k] = w
        for t in range(1, 8):
            sums[t, s] += terms[t, k]
    sums[0, :] = served_s
    far = np.zeros(pods, np.bool_)
    for k in range(pods):
        s = service[k]
        latency = (sums[1, s] + sums[2, s] + sums[4, s]) / max(sums[7, s], 1e-12)
        far[k] = mean_latency[k] > far_factor * latency and terms[7, k] > 0
    return terms, sums, far


@_jit
def merge_groups(service: Any, terms: Any, sums: Any, far: Any, n_services: int) -> Any:
    """`latency.groups_from_terms`: the far slots' sums apart, as their services' second groups (in service
    order, as np.unique sorts them), then `latency._group_stats`. Returns (group ids, stats)."""
    pods = service.shape[0]
    slot = np.full(n_services, -1, np.int64)
    for k in range(pods):
        if far[k]:
            slot[service[k]] = 0
    n_far = 0
    for s in range(n_services):
        if slot[s] == 0:
            slot[s] = n_far
            n_far += 1
    rows = terms.shape[0]
    out = np.empty((rows, n_services + n_far))
    out[:, :n_services] = sums
    far_sums = np.zeros((rows, n_far))
    for k in range(pods):
        if far[k]:
            for t in range(rows):
                far_sums[t, slot[service[k]]] += terms[t, k]
    ids = np.empty(n_services + n_far, np.int64)
    for s in range(n_services):
        ids[s] = s
        if slot[s] >= 0:
            ids[n_services + slot[s]] = n_services + s
            for t in range(rows):
                out[t, s] -= far_sums[t, slot[s]]
                out[t, n_services + slot[s]] = far_sums[t, slot[s]]
    stats = out[:-1]
    for g in range(n_services + n_far):
        w = out[rows - 1, g]
        inv = 1.0 / max(w, 1e-12)
        for t in range(1, 6):
            stats[t, g] *= inv
        stats[6, g] = w * w / max(stats[6, g], 1e-12)
    return ids, stats


@_jit
def cumulate_rows(density: Any, rows: int, bins: int) -> Any:
    """[row, bin] running sums along each row of the flat `density` (np.cumsum(axis=1)), which is zeroed."""
    out = np.empty((rows, bins))
    for i in range(rows):
        total = 0.0
        base = i * bins
        for b in range(bins):
            total += density[base + b]
            density[base + b] = 0.0
            out[i, b] = total
    return out


@_jit
def knot_values(table: Any, svc_knot_base: Any, service: Any, stats: Any, ratio_bounds: Any, ratio_count: int,
                p_wait_steps: int, knots: Any) -> None:
    """The recorder's knots (ms, float32 [knot, group]) of each group's latency mixture: its row of the
    services' knot tables (`latency.knot_row`) × its mean service time + its offset (`latency.mixture_knots_ms`)."""
    for i in range(service.shape[0]):
        p, mean, offset = stats[3, i], stats[1, i], stats[2, i]
        ratio = stats[4, i] / max(p * mean, 1e-12)
        row = np.int64(p * p_wait_steps + 0.5) * ratio_count + np.searchsorted(ratio_bounds, ratio)
        column = svc_knot_base[service[i]] + row
        for j in range(knots.shape[0]):
            scaled = np.float32(np.float64(table[column, j]) * mean)
            knots[j, i] = np.float32(np.float64(scaled) + offset)


@_jit
def window_sums(stats: Any, base: Any, loss_g: Any, group: Any, service: Any, n_services: int, rto_ms: float,
                latency_sum_s: Any, acc: Any) -> None:
    """The recorder's per-step window sums: Σ requests × mean latency per service into `latency_sum_s`, and
    per group requests n, then n × each of its means, into `acc` ([GROUP_STATS, 2 × services])."""
    rows = base.shape[0]
    if rows > n_services:
        per_service = np.zeros(n_services)
        for i in range(rows):
            per_service[service[i]] += base[i] * (stats[2, i] + stats[1, i] + stats[4, i] + loss_g[i] * rto_ms)
        for s in range(n_services):
            latency_sum_s[s] += per_service[s]
    else:
        for i in range(rows):
            latency_sum_s[i] += base[i] * (stats[2, i] + stats[1, i] + stats[4, i] + loss_g[i] * rto_ms)
    for i in range(rows):
        column = group[i]
        acc[0, column] += base[i]
        for t in range(1, acc.shape[0]):
            acc[t, column] += base[i] * stats[t, i]


@_jit
def endpoints(state: Any, service: Any, node: Any, silence: Any, grace_s: float, quarantined: Any,
              n_services: int) -> Any:
    """Slots that are a Service's endpoints (Ready, on a node heard within the grace period and not
    quarantined) and their count per service."""
    listed = np.zeros(state.shape[0], np.bool_)
    count = np.zeros(n_services, np.int64)
    for k in range(state.shape[0]):
        n = node[k]
        if state[k] == READY and silence[n] < grace_s and not quarantined[n]:
            listed[k] = True
            count[service[k]] += 1
    return listed, count


@_jit
def scatter_knots(x: Any, mass: Any, row_offset: Any, segment_mass: Any, density: Any) -> None:
    """`latency.DensityEntries.add_knots` after `latency.knot_positions`, added straight into `density`
    (flat [row × BINS]) in the order `np.bincount` would add the entries."""
    k, n = x.shape
    step = np.empty((k, n))
    frac = np.empty((k, n), np.float64)
    bins = np.empty((k, n), np.int64)
    for i in range(n):
        previous = 0.0
        for j in range(k):
            current = 0.0
            if j < k - 1:
                width = np.float64(x[j + 1, i] - x[j, i])  # a float32 difference, as numpy takes it
                current = segment_mass[j] / width * mass[i]
            if j == 0:
                step[j, i] = current
            elif j < k - 1:
                step[j, i] = current - previous
            else:
                step[j, i] = -previous
            previous = current
            floor = np.floor(x[j, i])
            frac[j, i] = np.float64(x[j, i] - floor)
            bins[j, i] = np.int64(np.float64(floor) + row_offset[i])
    for j in range(k):
        for i in range(n):
            density[bins[j, i]] += step[j, i] - step[j, i] * frac[j, i]
    for j in range(k):
        for i in range(n):
            density[bins[j, i] + 1] += step[j, i] * frac[j, i]


@_jit
def scatter_points(flat_bin: Any, mass: Any, density: Any) -> None:
    """`latency.DensityEntries.add_points`, added straight into `density`."""
    n = flat_bin.shape[0]
    for i in range(n):
        density[np.int64(flat_bin[i])] += mass[i]
    for i in range(n):
        density[np.int64(flat_bin[i]) + 1] += -mass[i]


class DensityAccumulator:
    """`latency.DensityEntries` with the entries summed into [row, bin] densities as they come (compiled)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.density = np.zeros(rows * lat.BINS)

    def add_knots(self, knots_ms: npt.NDArray[np.float32], mass: FloatArray, row_offset: FloatArray) -> None:
        scatter_knots(lat.knot_positions(knots_ms), mass, row_offset, lat.SEGMENT_MASS, self.density)

    def add_points(self, flat_bin: FloatArray, mass: FloatArray) -> None:
        scatter_points(np.asarray(flat_bin, dtype=np.float64), np.asarray(mass, dtype=np.float64), self.density)

    def histograms(self) -> FloatArray:
        return np.asarray(cumulate_rows(self.density, self.rows, lat.BINS), dtype=np.float64)
