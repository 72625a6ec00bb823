"""Whether a 10-second window's p95 or p99 exceeded its target: the probability under the engine's model.

The engine's window histogram is the *expected* distribution of the window's latencies. A real window
(and the per-request simulation) is one draw: its share of requests above the target scatters around
the expected share, because the queues' own fluctuations (a few long busy periods, or none) last a good
part of a window. A window violates its p95 target when more than 5 % of its requests exceed it, so
near the target the verdict is a coin whose bias depends on that scatter; judging the expected
histogram instead makes it all-or-nothing and errs both ways (none below the target, all above).

The scatter of the share F of a window's requests above a latency x, over a window of T seconds:

- per request, given the path of the queues: binomial, f(1 − f)/n for n requests;
- the path of the queues: given the wait W a request meets, it exceeds x with probability
  g(W) = P(S > x − W) (S its network + service time); the window's share follows the time average of
  g(W(t)). Its stationary variance, Var g(W), is E[g(W)²] − f²: with W = 0 (probability 1 − P(wait))
  or exponential, E[g(W)²] = (1 − P(wait))·g(0)² + P(wait)·P(E·w + min(S₁, S₂) > x), the last term
  tabulated per service-time cv (`pair_tail_table`); where service times are short against the wait
  this is p(1 − p) of a hard threshold, and far less where the service time's own spread blurs it
  (many servers, moderate load). Its time scale: a replica's waiting time is taken as a reflected
  Brownian motion (the heavy-traffic limit of a G/G/c queue) with relaxation time
  t₀ = 2·E[W | wait]/(1 − ρ); for the indicator that it exceeds a level of stationary probability p,
  the Poisson equation of the RBM's generator gives the integrated autocorrelation time
  τ = t₀ (1 + p ln p / (1 − p)), p here the part of the share above x that waiting explains (the
  model's share minus its share without any wait). The variance of the time average over T is the
  stationary variance × κ(T/τ), κ(u) = 2(u − 1 + e^(−u))/u² (exponential correlation: 1 for T ≪ τ,
  2τ/T for T ≫ τ). Replicas fluctuate independently: a group's variance is divided by its effective
  number of replicas, and a service's groups add by their squared shares of its requests.

F is taken as gamma-distributed with that mean and variance (a sum of clustered events). Against
simulated M/G/c windows (c = 1–16, ρ = 0.5–0.95, levels at the 90th–99th percentile) the predicted
standard deviation is mostly within ±20 % (the hard-threshold variance alone overstated it up to
threefold with 16 servers at moderate load), and the gamma's P(F > level) follows the simulated
frequency where a normal approximation overstates it several-fold in the skewed cases. The window
violates if F₉₅ > 5 % or F₉₉ > 1 %; the two are strongly dependent, so the probability of either is
taken as the larger of the two.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.special import gammaincc, ndtri

from kubeagora.model import FloatArray

P95_LEVEL, P99_LEVEL = 0.05, 0.01
"""A window's p95 exceeds the target iff more than 5 % of its requests do; p99: 1 %."""


PAIR_RATIO_LOG10 = (-2.0, 2.5)
PAIR_RATIOS_PER_DECADE = 10
PAIR_RATIO_GRID: FloatArray = 10.0 ** np.arange(PAIR_RATIO_LOG10[0], PAIR_RATIO_LOG10[1] + 1e-9,
                                                 1.0 / PAIR_RATIOS_PER_DECADE)
PAIR_LEVEL_MAX, PAIR_LEVELS_PER_UNIT = 40.0, 4
PAIR_LEVEL_GRID: FloatArray = np.arange(0.0, PAIR_LEVEL_MAX + 1e-9, 1.0 / PAIR_LEVELS_PER_UNIT)
"""Levels in units of (1 + ratio) mean service times: the tail beyond 40 is nil at any ratio."""


@lru_cache(maxsize=32)
def pair_tail_table(cv: float, points: int = 1_000) -> FloatArray:
    """[ratio, level]: P(r·E + min(Z₁, Z₂) > v) with v = level × (1 + r), for Z lognormal with mean 1 and
    this cv and E ~ Exp(1): the exponential part exact, min(Z₁, Z₂) at `points` equal-probability
    midpoints (its survival is P(Z > y)²)."""
    sigma = float(np.sqrt(np.log1p(cv * cv)))
    u = (np.arange(points) + 0.5) / points
    pair_min = np.exp(-sigma * sigma / 2.0 + sigma * ndtri(1.0 - np.sqrt(1.0 - u)))
    out = np.empty((PAIR_RATIO_GRID.shape[0], PAIR_LEVEL_GRID.shape[0]))
    for i, r in enumerate(PAIR_RATIO_GRID):
        v = PAIR_LEVEL_GRID * (1.0 + r)
        out[i] = np.exp(-np.maximum(v[:, None] - pair_min[None, :], 0.0) / r).mean(axis=1)
    return out


def pair_tail(tables: FloatArray, base: npt.NDArray[np.int64], ratio: FloatArray, level: FloatArray) -> FloatArray:
    """P(r·E + min(Z₁, Z₂) > level) from flattened `pair_tail_table`s (each column's starts at `base`):
    nearest ratio, linear in the level (in mean service times). `level` may have leading axes."""
    r_idx = np.rint((np.log10(np.maximum(ratio, 1e-12)) - PAIR_RATIO_LOG10[0]) * PAIR_RATIOS_PER_DECADE)
    r_idx = np.minimum(np.maximum(r_idx, 0), PAIR_RATIO_GRID.shape[0] - 1).astype(np.int64)
    pos = np.maximum(level, 0.0) / (1.0 + PAIR_RATIO_GRID[r_idx]) * PAIR_LEVELS_PER_UNIT
    pos = np.minimum(pos, PAIR_LEVEL_GRID.shape[0] - 1.001)
    w_idx = pos.astype(np.int64)
    at = base + r_idx * PAIR_LEVEL_GRID.shape[0] + w_idx
    frac = pos - w_idx
    return np.asarray(tables[at] * (1.0 - frac) + tables[at + 1] * frac, dtype=np.float64)


def stationary_variance(share: FloatArray, share_no_wait: FloatArray, p_wait: FloatArray,
                        pair_tail: FloatArray) -> FloatArray:
    """Var g(W) = (1 − P(wait))·g(0)² + P(wait)·P(E·w + min(S₁, S₂) > x) − f² (see the module doc)."""
    second = (1.0 - p_wait) * share_no_wait * share_no_wait + p_wait * pair_tail
    return np.asarray(np.maximum(second - share * share, 0.0), dtype=np.float64)


def correlation_time_s(p: FloatArray, relaxation_s: FloatArray) -> FloatArray:
    """Integrated autocorrelation time of the indicator {W > level}, P(W > level) = p, for a reflected
    Brownian motion with relaxation time t₀: t₀ (1 + p ln p / (1 − p)), t₀ for rare levels and → 0 as
    p → 1."""
    q = np.minimum(np.maximum(p, 1e-12), 1.0 - 1e-12)
    return np.asarray(relaxation_s * (1.0 + q * np.log(q) / (1.0 - q)), dtype=np.float64)


def time_average_factor(window_s: float, correlation_s: FloatArray) -> FloatArray:
    """κ(T/τ): variance of a time average over T relative to the process's own variance (exponential
    correlation with integrated time τ)."""
    u = window_s / np.maximum(correlation_s, 1e-12)
    small = u < 1e-3
    u[small] = 1.0
    kappa = 2.0 * (u - 1.0 + np.exp(-u)) / (u * u)
    kappa[small] = 1.0
    return np.asarray(kappa, dtype=np.float64)


def queue_share_variance(variance: FloatArray, p: FloatArray, relaxation_s: FloatArray, window_s: float,
                         replicas: FloatArray) -> FloatArray:
    """Variance of a window's share above a level from the queues' fluctuations: the stationary
    `variance` of g(W), averaged over the window with the correlation time of a level that waiting
    exceeds with probability `p` (see the module doc)."""
    tau = correlation_time_s(np.minimum(np.maximum(p, 0.0), 1.0), relaxation_s)
    return np.asarray(variance * time_average_factor(window_s, tau) / np.maximum(replicas, 1.0), dtype=np.float64)


def exceed_probability(mean: FloatArray, variance: FloatArray, level: float) -> FloatArray:
    """P(F > level) for F gamma-distributed with this mean and variance (a point mass where the variance
    is 0)."""
    f = np.minimum(np.maximum(mean, 0.0), 1.0)
    out = (f > level).astype(np.float64)
    var = np.minimum(variance, f * (1.0 - f))
    spread = np.flatnonzero((f > 0) & (var > 1e-14))
    if spread.size:
        fs, vs = f[spread], var[spread]
        out[spread] = gammaincc(fs * fs / vs, level * fs / vs)
    return out


def violation_probability(share95: FloatArray, variance95: FloatArray, share99: FloatArray,
                          variance99: FloatArray) -> FloatArray:
    """P(p95 or p99 of the window above target) from the expected shares above each target and their
    variances."""
    return np.maximum(exceed_probability(share95, variance95, P95_LEVEL),
                      exceed_probability(share99, variance99, P99_LEVEL))
