"""The latency model shared by the engine, the twin and the fidelity checks.

A request's latency is network + queueing + service time. The engine does not draw a sample per
request; each step it describes each service's latency distribution by a few probability strata
(point masses at the strata's conditional means) and adds them to log-spaced histograms:

- service time: lognormal with the service's mean and coefficient of variation, scaled by node
  speed and interference;
- queueing: with probability P(wait) (Sakasegawa's M/M/c approximation, ρ^(√(2(c+1))−1)) a request
  waits an exponential time of mean S / (c (1 − ρ)) × (1 + cv²)/2 (Allen–Cunneen for M/G/c), plus
  the deterministic wait behind a fluid backlog when arrivals outrun capacity;
- network: the RTT from the users' region to the replica, plus one 200 ms retransmission timeout
  (Linux's minimum RTO) for the share of requests that lose a packet.

Quantiles of "service time + exponential wait" depend only on the ratio wait/service and the cv,
so they are tabulated once per cv from a fixed sample and looked up each step.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from kubeagora.model import FloatArray, NodeClass

STRATA = np.array([0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0])
STRATUM_MASS: FloatArray = np.diff(STRATA)
RATIO_GRID: FloatArray = np.geomspace(1e-3, 1e3, 61)
"""wait/service ratios tabulated, 10 per decade."""
RTO_MS = 200.0

INTERFERENCE: dict[NodeClass, float] = {NodeClass.MCU: 0.2, NodeClass.CPU: 0.4, NodeClass.GPU: 0.6,
                                         NodeClass.TPU: 0.5}
"""Slowdown at full node utilisation from co-located work: 1 + β·u² (shared caches, memory
bandwidth, and on accelerators the shared PCIe/HBM). β per node class."""


def interference_slowdown(beta: FloatArray | float, utilisation: FloatArray | float) -> FloatArray:
    """Service-time multiplier on a node at this utilisation: 1 + β·u²."""
    u = np.clip(np.asarray(utilisation, dtype=np.float64), 0.0, 1.0)
    return np.asarray(1.0 + np.asarray(beta, dtype=np.float64) * u * u, dtype=np.float64)


BINS = 256
HIST_MIN_MS = 0.5
HIST_MAX_MS = 200_000.0
LOG_MIN = float(np.log(HIST_MIN_MS))
LOG_STEP = float((np.log(HIST_MAX_MS) - np.log(HIST_MIN_MS)) / BINS)
BIN_EDGES_MS: FloatArray = np.exp(LOG_MIN + LOG_STEP * np.arange(BINS + 1))


def lognormal_sigma(cv: float) -> float:
    return float(np.sqrt(np.log1p(cv * cv)))


def _stratum_means(sorted_samples: FloatArray) -> FloatArray:
    n = sorted_samples.shape[-1]
    bounds = np.round(STRATA * n).astype(np.int64)
    csum = np.concatenate([np.zeros((*sorted_samples.shape[:-1], 1)), np.cumsum(sorted_samples, axis=-1)], axis=-1)
    means = (csum[..., bounds[1:]] - csum[..., bounds[:-1]]) / np.maximum(bounds[1:] - bounds[:-1], 1)
    return np.asarray(means, dtype=np.float64)


@lru_cache(maxsize=64)
def service_time_table(cv: float, samples: int = 40_000) -> tuple[FloatArray, FloatArray]:
    """Strata means of Z (lognormal, mean 1) and of Z + r·E (E ~ Exp(1)) for r in RATIO_GRID."""
    rng = np.random.default_rng(20_240_601)
    sigma = lognormal_sigma(cv)
    z = rng.lognormal(-sigma * sigma / 2, sigma, samples)
    e = rng.exponential(1.0, samples)
    z_only = _stratum_means(np.sort(z))
    with_wait = _stratum_means(np.sort(z[None, :] + RATIO_GRID[:, None] * e[None, :], axis=1))
    return z_only, with_wait


def ratio_index(ratio: FloatArray) -> FloatArray:
    idx = np.rint((np.log10(np.maximum(ratio, 1e-12)) + 3.0) * 10.0)
    return np.clip(idx, 0, RATIO_GRID.shape[0] - 1)


def wait_probability(rho: FloatArray, servers: FloatArray) -> FloatArray:
    """Sakasegawa's approximation of the M/M/c probability of waiting (exact for c = 1)."""
    return np.power(np.clip(rho, 0.0, 1.0), np.sqrt(2.0 * (servers + 1.0)) - 1.0)


RHO_MAX = 0.98
"""The stationary formulas are evaluated at most at this load; beyond it the fluid backlog speaks."""


def queueing(expected_arrivals_per_s: FloatArray, service_rate_per_s: FloatArray, servers: FloatArray,
             service_ms: FloatArray, service_cv: FloatArray,
             backlog: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per replica: (P(wait), mean wait given waiting in ms, deterministic backlog wait in ms).

    The stationary M/G/c terms are evaluated at the *expected* load, not at this second's Poisson
    draw: they already describe what Poisson fluctuations do to a queue, and evaluating them at the
    realised count instead (ρ jumps around its mean each second, and 1/(1 − ρ) is convex) inflated
    the tail by 20–100 % at ρ ≥ 0.8 against the per-request simulation. For the same reason the fluid
    backlog (which also grows from Poisson excess) only adds the part beyond the stationary mean
    queue λ·P(wait)·E[W | wait]: the deterministic excess of an overload.
    """
    serving = service_rate_per_s > 0
    rho = np.clip(np.where(serving, expected_arrivals_per_s / np.maximum(service_rate_per_s, 1e-12), 0.0),
                  0.0, RHO_MAX)
    pwait = wait_probability(rho, servers)
    wait_ms = service_ms / (servers * (1.0 - rho)) * (1.0 + service_cv**2) / 2.0
    stationary_queue = expected_arrivals_per_s * pwait * wait_ms / 1000.0
    excess = np.maximum(backlog - stationary_queue, 0.0)
    fluid_ms = np.where(serving, excess / np.maximum(service_rate_per_s, 1e-12) * 1000.0, 0.0)
    return pwait, wait_ms, fluid_ms


def bin_index(latency_ms: FloatArray) -> FloatArray:
    """Histogram bin of each latency (float32 log: a bin is 5 % wide, float32 is exact enough)."""
    pos = np.log(np.maximum(latency_ms, HIST_MIN_MS).astype(np.float32))
    pos -= np.float32(LOG_MIN)
    pos *= np.float32(1.0 / LOG_STEP)
    return np.clip(pos, 0, BINS - 1)


def bin_index_into(latency_ms: npt.NDArray[np.float32], out: npt.NDArray[np.int32]) -> None:
    """`bin_index` in place on float32 input (the engine's hot path: no temporaries)."""
    np.maximum(latency_ms, np.float32(HIST_MIN_MS), out=latency_ms)
    np.log(latency_ms, out=latency_ms)
    latency_ms -= np.float32(LOG_MIN)
    latency_ms *= np.float32(1.0 / LOG_STEP)
    np.clip(latency_ms, 0, BINS - 1, out=latency_ms)
    np.copyto(out, latency_ms, casting="unsafe")


def bin_position(latency_ms: FloatArray) -> FloatArray:
    """Fractional bin coordinate of a latency (the inverse of the log-linear interpolation below)."""
    pos = (np.log(np.maximum(latency_ms, HIST_MIN_MS)) - LOG_MIN) / LOG_STEP
    return np.clip(pos, 0.0, BINS - 1e-9)


def mass_below_weights(latency_ms: FloatArray) -> FloatArray:
    """[row, bin] share of each bin below each row's latency: a dot product with a histogram row
    gives the mass under that latency (log-linear inside the bin, as `percentiles` interpolates)."""
    pos = bin_position(latency_ms)
    bins = np.arange(BINS)[None, :]
    return np.clip(pos[:, None] - bins, 0.0, 1.0)


def _percentiles_1d(h: FloatArray, qs: tuple[float, ...]) -> FloatArray:
    cum = np.cumsum(h)
    total = cum[-1]
    if total <= 0:
        return np.full(len(qs), np.nan)
    out = np.empty(len(qs))
    for k, q in enumerate(qs):
        b = min(int(np.searchsorted(cum, q * total)), BINS - 1)
        prev = cum[b - 1] if b > 0 else 0.0
        frac = min(max((q * total - prev) / h[b], 0.0), 1.0) if h[b] > 0 else 0.5
        out[k] = np.exp(LOG_MIN + LOG_STEP * (b + frac))
    return out


def percentiles(hist: FloatArray, qs: tuple[float, ...]) -> FloatArray:
    """Percentiles (ms) of histograms over the last axis; log-linear inside a bin; NaN where empty.

    Returns shape hist.shape[:-1] + (len(qs),).
    """
    h = np.asarray(hist, dtype=np.float64)
    if h.ndim == 1:
        return _percentiles_1d(h, qs)
    lead = h.shape[:-1]
    h2 = h.reshape(-1, BINS)
    total = h2.sum(axis=1)
    cum = np.cumsum(h2, axis=1)
    out = np.full((h2.shape[0], len(qs)), np.nan)
    nonempty = total > 0
    for k, q in enumerate(qs):
        target = q * total
        b = np.minimum((cum < target[:, None]).sum(axis=1), BINS - 1)
        prev = np.where(b > 0, cum[np.arange(len(b)), b - 1], 0.0)
        mass = h2[np.arange(len(b)), b]
        frac = np.clip(np.where(mass > 0, (target - prev) / np.where(mass > 0, mass, 1.0), 0.5), 0.0, 1.0)
        val = np.exp(LOG_MIN + LOG_STEP * (b + frac))
        out[:, k] = np.where(nonempty, val, np.nan)
    return out.reshape(*lead, len(qs))
