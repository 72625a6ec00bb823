"""The latency model shared by the engine, the twin and the fidelity checks.

A request's latency is network + queueing + service time. The engine does not draw a sample per
request; each step it describes each service's latency distribution by its quantiles at a few
probability levels (knots), spreads the mass between neighbouring knots evenly in log-latency over a
log-spaced histogram, and sums the steps of a 10-second window:

- service time: lognormal with the service's mean and coefficient of variation, scaled by node
  speed and interference;
- queueing: with probability P(wait) (Sakasegawa's M/M/c approximation, ρ^(√(2(c+1))−1)) a request
  waits an exponential time of mean S / (c (1 − ρ)) × (1 + cv²)/2 (Allen–Cunneen for M/G/c), plus
  the deterministic wait behind a fluid backlog when arrivals outrun capacity;
- network: the RTT from the users' region to the replica, plus one 200 ms retransmission timeout
  (Linux's minimum RTO) for the share of requests that lose a packet.

Quantiles of "service time, plus with probability P(wait) an exponential wait" depend only on
P(wait), the ratio wait/service and the cv, so they are tabulated once per cv and looked up each step
(`mixture_knot_table`). The older strata tables (`service_time_table`: point masses at the strata's
conditional means) remain for the mock kubelet, which draws requests from them.

A service's replicas are merged into at most two groups (`replica_groups`): its replicas, and apart
from them those whose mean latency is well above the service's own (one far or slow replica among
many: merged, it would add a little to every request instead of a lot to a few).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

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
    return queueing_at_load(expected_arrivals_per_s, service_rate_per_s, servers, service_ms, service_cv, backlog)[:3]


def queueing_at_load(expected_arrivals_per_s: FloatArray, service_rate_per_s: FloatArray, servers: FloatArray,
                     service_ms: FloatArray, service_cv: FloatArray,
                     backlog: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """`queueing`, and the load ρ (capped at RHO_MAX) it was evaluated at."""
    serving = service_rate_per_s > 0
    rate = np.maximum(service_rate_per_s, 1e-12)
    rho = np.where(serving, expected_arrivals_per_s / rate, 0.0)
    np.minimum(rho, RHO_MAX, out=rho)
    pwait = np.power(rho, np.sqrt(2.0 * (servers + 1.0)) - 1.0)  # Sakasegawa, as `wait_probability`
    wait_ms = service_ms / (servers * (1.0 - rho)) * (1.0 + service_cv**2) / 2.0
    stationary_queue = expected_arrivals_per_s * pwait * wait_ms / 1000.0
    excess = np.maximum(backlog - stationary_queue, 0.0)
    fluid_ms = np.where(serving, excess / rate * 1000.0, 0.0)
    return pwait, wait_ms, fluid_ms, rho


def bin_index(latency_ms: FloatArray) -> FloatArray:
    """Histogram bin of each latency (float32 log: a bin is 5 % wide, float32 is exact enough)."""
    pos = np.log(np.maximum(latency_ms, HIST_MIN_MS).astype(np.float32))
    pos -= np.float32(LOG_MIN)
    pos *= np.float32(1.0 / LOG_STEP)
    return np.minimum(pos, BINS - 1, out=pos)


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


# ---------------------------------------------------------------------- knots of the latency mixture
KNOT_LEVELS: FloatArray = np.array([0.0, 0.5, 0.85, 0.93, 0.97, 0.99, 0.995, 0.998, 1.0])
"""Cumulative probability at each knot. Between two knots the CDF is linear in log-latency (the mass is
spread evenly over the histogram's log bins); the knots are dense in the tail, where the SLO is judged."""
SEGMENT_MASS: FloatArray = np.diff(KNOT_LEVELS)
KNOT_PLACEMENT = 1.04
"""A tail knot (level L > 0.6) sits at the quantile of level 1 − 1.04 (1 − L). A tail's CDF is concave in
log-latency, so the chord between two knots at their exact quantiles puts too much mass above any
latency between them (+4 % of the share above it on average over lognormal-plus-exponential mixtures,
above the 85th percentile); placed this way the error is centred (+0.7 % on average, 2.1 % mean
absolute, 11 % at most). The median's knot stays at the median."""
_KNOT_QUANTILES = np.concatenate([
    [0.001],
    np.where(KNOT_LEVELS[1:-1] > 0.6, 1.0 - KNOT_PLACEMENT * (1.0 - KNOT_LEVELS[1:-1]), KNOT_LEVELS[1:-1]),
    [0.9999]])
"""The levels tabulated; the end knots stand for the 0.1 % and 99.99 % quantiles, not the extremes."""
N_KNOTS = KNOT_LEVELS.shape[0]
P_WAIT_STEPS = 100
"""P(wait) is tabulated in steps of 1 % (nearest)."""
KNOT_RATIO_LOG10_MIN, KNOT_RATIOS_PER_DECADE = -2.0, 40
KNOT_RATIO_GRID: FloatArray = 10.0 ** np.arange(KNOT_RATIO_LOG10_MIN, 2.5 + 1e-9, 1.0 / KNOT_RATIOS_PER_DECADE)
"""wait/service ratios tabulated, 40 per decade (nearest: within 3 % of the ratio)."""
KNOT_TABLE_ROWS = (P_WAIT_STEPS + 1) * KNOT_RATIO_GRID.shape[0]


@lru_cache(maxsize=32)
def mixture_knot_table(cv: float, samples: int = 50_000, grid_points: int = 1024) -> FloatArray:
    """[P(wait) step × ratio, knot]: quantiles at `KNOT_LEVELS` of Z with probability 1 − p, Z + r·E with
    probability p (Z lognormal with mean 1 and this cv, E ~ Exp(1)), in units of the mean service time.

    Built from a stratified sample (each of Z and E takes one draw in each of `samples` equal-probability
    strata, paired at random): its knots are within 2 % of a 400,000-draw sample's (99 % of them within
    0.7 %), in a quarter of a second. Row `p_step × len(KNOT_RATIO_GRID) + ratio_index` (`knot_row`).
    """
    rng = np.random.default_rng(20_240_601)
    sigma = lognormal_sigma(cv)
    strata = np.arange(samples)
    z = np.exp(-sigma * sigma / 2.0 + sigma * ndtri((strata + rng.random(samples)) / samples))
    e = -np.log1p(-rng.permutation((strata + rng.random(samples)) / samples))
    z_sorted = np.sort(z)
    p = np.linspace(0.0, 1.0, P_WAIT_STEPS + 1)
    out = np.empty((p.shape[0], KNOT_RATIO_GRID.shape[0], N_KNOTS))
    for j, ratio in enumerate(KNOT_RATIO_GRID):
        w_sorted = np.sort(z + ratio * e)
        grid = np.geomspace(z_sorted[0], w_sorted[-1], grid_points)
        log_grid = np.log(grid)
        cdf_z = np.searchsorted(z_sorted, grid, side="right") / samples
        cdf_w = np.searchsorted(w_sorted, grid, side="right") / samples
        cdf = (1.0 - p)[:, None] * cdf_z[None, :] + p[:, None] * cdf_w[None, :]
        hi = np.clip(np.array([np.searchsorted(row, _KNOT_QUANTILES) for row in cdf]), 1, grid_points - 1)
        below, above = np.take_along_axis(cdf, hi - 1, axis=1), np.take_along_axis(cdf, hi, axis=1)
        frac = np.clip((_KNOT_QUANTILES[None, :] - below) / np.maximum(above - below, 1e-12), 0.0, 1.0)
        out[:, j, :] = np.exp(log_grid[hi - 1] + frac * (log_grid[hi] - log_grid[hi - 1]))
    return out.reshape(KNOT_TABLE_ROWS, N_KNOTS)


KNOT_RATIO_BOUNDS = np.sqrt(KNOT_RATIO_GRID[1:] * KNOT_RATIO_GRID[:-1])
"""Geometric midpoints between tabulated ratios: searching them finds the nearest ratio in one call."""


def knot_row(p_wait: FloatArray, ratio: FloatArray) -> npt.NDArray[np.int64]:
    """Row of `mixture_knot_table` nearest to each (P(wait) in [0, 1], wait/service ratio)."""
    row = (p_wait * P_WAIT_STEPS + 0.5).astype(np.int64)
    row *= KNOT_RATIO_GRID.shape[0]
    row += np.searchsorted(KNOT_RATIO_BOUNDS, ratio)
    return row


MIN_SEGMENT_BINS = 1e-3
"""Knot j is moved up by j × this many bins: every segment then has room for its mass, even where two
knots fall together (a service with no traffic this step, or latencies clipped at the histogram's ends)."""
_MAX_POSITION = BINS - 1.02
"""Knots stay below the top bin, so a knot's second entry (in the next bin) stays in its own histogram row;
the top bin (latencies ≥ 190 s) is left empty."""
_KNOT_SPACING = MIN_SEGMENT_BINS * np.arange(N_KNOTS, dtype=np.float64)
_KNOT_SHIFT = (_KNOT_SPACING - LOG_MIN / LOG_STEP)[:, None].astype(np.float32)
"""Bin coordinate = log(ms)/LOG_STEP + this: the histogram's origin and each knot's spacing in one add
(latencies are at least HIST_MIN_MS, so knot j sits at ≥ j × MIN_SEGMENT_BINS)."""
_KNOT_CEILING = (_MAX_POSITION + _KNOT_SPACING)[:, None].astype(np.float32)


def knot_positions(knots_ms: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Knots ([knot, column], ms) as histogram bin coordinates, in place: in float32 (a bin is 5 % wide;
    float32 logs are twice as fast); what matters is that the same coordinates give both a segment's width
    and its entries, so its mass is exact."""
    x = knots_ms
    np.maximum(x, np.float32(HIST_MIN_MS), out=x)
    np.log(x, out=x)
    x *= np.float32(1.0 / LOG_STEP)
    x += _KNOT_SHIFT
    np.minimum(x, _KNOT_CEILING, out=x)
    return x


class DensityEntries:
    """Latency mass waiting to become histograms ([row, bin]), as density steps at fractional bin positions.

    A row's mass spread evenly (in log-latency) between two knots is a density that starts at one knot
    and stops at the next: a step up and a step down. A step δ at bin coordinate b + f (0 ≤ f < 1) adds
    (1 − f)·δ to bin b and δ to every bin above: two entries, (1 − f)·δ at b and f·δ at b + 1. Summed
    per bin and cumulated over the bins (`histograms`), the entries give each bin exactly the mass of the
    segments that overlap it; a point mass is a step up and a step down in the same bin. Flat float64
    buffers that fill step by step and empty once a window (a step can be a thousand times a segment's
    mass where knots fall together; in float32 its rounding would leave a trail across the bins above);
    new entries are written knot-major, so every operation runs along long contiguous rows.
    """

    def __init__(self, rows: int, capacity: int) -> None:
        self.rows = rows
        self.bins = np.zeros(capacity, np.int64)
        self.weights = np.zeros(capacity)
        self.cursor = 0

    def add_knots(self, knots_ms: npt.NDArray[np.float32], mass: FloatArray, row_offset: FloatArray) -> None:
        """Columns of knots ([knot, column], non-decreasing down each column): column i puts
        `mass[i] × SEGMENT_MASS[j]` evenly between its knots j and j + 1, in its row (`row_offset` = the
        row × BINS). `knots_ms` is overwritten."""
        k, n = knots_ms.shape
        c = self.cursor
        bins = self.bins[c: c + 2 * k * n].reshape(2 * k, n)
        weights = self.weights[c: c + 2 * k * n].reshape(2 * k, n)
        self.cursor = c + 2 * k * n
        x = knot_positions(knots_ms)
        # density of each segment (float64: a narrow one's is large, and its steps must cancel), then its
        # steps: + at its first knot, − at its last
        density = weights[: k - 1]
        np.subtract(x[1:], x[:-1], out=density)
        np.divide(SEGMENT_MASS[:, None], density, out=density)
        density *= mass[None, :]
        step = weights[k:]
        step[0] = density[0]
        np.subtract(density[1:], density[:-1], out=step[1:-1])
        np.negative(density[-1], out=step[-1])
        floor = np.floor(x)
        x -= floor  # the knot's place inside its bin
        np.add(floor, row_offset[None, :], out=bins[:k], casting="unsafe")
        np.add(bins[:k], 1, out=bins[k:])
        here = weights[:k]
        np.multiply(step, x, out=here)
        np.subtract(step, here, out=here)
        step *= x

    def add_points(self, flat_bin: FloatArray, mass: FloatArray) -> None:
        """Point masses in bins (`point_bin` + row × BINS)."""
        n = int(flat_bin.shape[0])
        c = self.cursor
        self.bins[c: c + n] = flat_bin
        self.bins[c + n: c + 2 * n] = self.bins[c: c + n] + 1
        self.weights[c: c + n] = mass
        self.weights[c + n: c + 2 * n] = -mass
        self.cursor = c + 2 * n

    def histograms(self) -> FloatArray:
        """[row, bin] histograms of everything added since the last call (which it forgets). Empty bins
        may hold rounding residue of the order of 1e-13 of the row's mass, either sign."""
        c = self.cursor
        self.cursor = 0
        density = np.bincount(self.bins[:c], self.weights[:c], minlength=self.rows * BINS).reshape(self.rows, BINS)
        return np.asarray(np.cumsum(density, axis=1, out=density), dtype=np.float64)


def point_bin(latency_ms: FloatArray) -> FloatArray:
    """The bin a point mass at `latency_ms` goes to in `DensityEntries` (below the top bin, whose
    density steps would spill into the next row)."""
    return np.minimum(bin_index(latency_ms), BINS - 2)


LOSS_POINT_MASS_MIN = 1e-3
"""Packet loss below this share is left inside the latency distribution (0.01 % in a quiet access network:
no p95/p99 moves by it); above it the lost share gets its own point mass, one retransmission timeout later."""


def mixture_knots_ms(table: FloatArray, p_wait: FloatArray, wait_ms: FloatArray, mean_ms: FloatArray,
                     offset_ms: FloatArray) -> npt.NDArray[np.float32]:
    """[knot, row] latency knots (ms) of rows with this mean service time, P(wait), mean wait given
    waiting and offset, from a `mixture_knot_table`."""
    rows = knot_row(p_wait, wait_ms / np.maximum(mean_ms, 1e-9))
    knots = np.ascontiguousarray(table[rows].T, dtype=np.float32)
    np.multiply(knots, mean_ms[None, :], out=knots, casting="same_kind")
    np.add(knots, offset_ms[None, :], out=knots, casting="same_kind")
    return knots


def knot_histogram(knots_ms: npt.NDArray[np.float32], served: FloatArray, loss: FloatArray,
                   lost_ms: FloatArray) -> FloatArray:
    """[row, bin] histograms: each row's `served` requests spread between its knots, the lost share
    (where it is at least LOSS_POINT_MASS_MIN) as a point mass at `lost_ms`. `knots_ms` is overwritten."""
    rows = served.shape[0]
    lossy = np.flatnonzero(loss >= LOSS_POINT_MASS_MIN)
    lost = served[lossy] * loss[lossy]
    delivered = served.copy()
    delivered[lossy] -= lost
    entries = DensityEntries(rows, 2 * rows * (N_KNOTS + 1))
    entries.add_knots(knots_ms, delivered, np.arange(rows, dtype=np.float64) * BINS)
    entries.add_points(point_bin(lost_ms[lossy]) + lossy * BINS, lost)
    return entries.histograms()


def tail_share(log_knots: FloatArray, log_latency: FloatArray) -> FloatArray:
    """Share of each column's distribution above a latency, in logs: knots [knot, column], latencies
    [threshold, column] → [threshold, column]. Log-linear between knots, as the histogram spreads the
    mass; 1 below the first knot, 0 above the last."""
    at_or_below = (log_knots[:, None, :] <= log_latency[None, :, :]).sum(axis=0)
    j = np.minimum(np.maximum(at_or_below - 1, 0), N_KNOTS - 2)
    cols = np.arange(log_knots.shape[1])[None, :]
    lo, hi = log_knots[j, cols], log_knots[j + 1, cols]
    frac = (log_latency - lo) / np.maximum(hi - lo, 1e-12)
    level = KNOT_LEVELS[j] + np.minimum(np.maximum(frac, 0.0), 1.0) * SEGMENT_MASS[j]
    level[at_or_below == 0] = 0.0
    level[at_or_below >= N_KNOTS] = 1.0
    return np.asarray(1.0 - level, dtype=np.float64)


# ---------------------------------------------------------------------- replica groups
FAR_LATENCY_FACTOR = 1.1
"""A replica whose mean latency is more than 10 % above its service's traffic-weighted mean latency is
recorded in the service's second group."""


@dataclass(frozen=True, slots=True)
class ReplicaGroups:
    """A step's latency description per replica group. Columns 0 … n_services − 1 are the services' first
    groups in service order; any further columns are second groups (far or slow replicas) of some services."""

    service: npt.NDArray[np.int64]
    group: npt.NDArray[np.int64]
    """Group id: the service, or n_services + the service for its second group."""
    stats: FloatArray
    """[GROUP_STATS, group]: requests served this step, then the traffic-weighted means of the rest."""

    @property
    def served(self) -> FloatArray:
        return np.asarray(self.stats[0], dtype=np.float64)

    @property
    def mean_ms(self) -> FloatArray:
        """Mean service time."""
        return np.asarray(self.stats[1], dtype=np.float64)

    @property
    def offset_ms(self) -> FloatArray:
        """Network delay + wait behind a fluid backlog."""
        return np.asarray(self.stats[2], dtype=np.float64)

    @property
    def p_wait(self) -> FloatArray:
        return np.asarray(self.stats[3], dtype=np.float64)

    @property
    def wait_ms(self) -> FloatArray:
        """Mean wait of the requests that wait."""
        return np.asarray(self.stats[4] / np.maximum(self.stats[3], 1e-12), dtype=np.float64)


GROUP_STATS = ("served", "mean_ms", "offset_ms", "p_wait", "p_wait_x_wait_ms", "relaxation_s", "replicas")
"""Rows of `ReplicaGroups.stats`: relaxation_s is the time scale of the queues' fluctuations
(`queue_relaxation_s`), replicas the effective number of independent replicas (Σ w)² / Σ w²."""


def queue_relaxation_s(wait_ms: FloatArray, rho: FloatArray) -> FloatArray:
    """σ²/μ² of the heavy-traffic diffusion of a replica's waiting time, 2·E[W | wait] / (1 − ρ), in s
    (ρ ≤ RHO_MAX, as `queueing_at_load` returns it).

    The virtual wait of an M/G/c queue drifts down at 1 − ρ and diffuses at ρ·S·(1 + cv²)/c; its
    stationary mean is Allen–Cunneen's wait and it forgets its state over about this long."""
    return np.asarray(wait_ms / (500.0 * (1.0 - rho)), dtype=np.float64)


def replica_groups(service: npt.NDArray[np.int64], weight: FloatArray, served: FloatArray, served_s: FloatArray,
                   service_ms: FloatArray, offset_ms: FloatArray, p_wait: FloatArray, wait_ms: FloatArray,
                   rho: FloatArray, n_services: int) -> ReplicaGroups:
    """Merge replicas (arrays over replica slots, `weight` = arrivals routed to each, `served` the
    requests each served; `served_s` their sum per service) into groups."""
    terms, sums, far = group_terms(service, weight, served, served_s, service_ms, offset_ms, p_wait, wait_ms, rho,
                                   n_services)
    return groups_from_terms(service, terms, sums, far, n_services)


def group_terms(service: npt.NDArray[np.int64], weight: FloatArray, served: FloatArray, served_s: FloatArray,
                service_ms: FloatArray, offset_ms: FloatArray, p_wait: FloatArray, wait_ms: FloatArray,
                rho: FloatArray, n_services: int) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """What each replica adds to its group's sums (terms [GROUP_STATS + 1, slot]: served, then weight × each
    quantity, weight², weight), the sums per service ([GROUP_STATS + 1, service], row 0 = `served_s`) and
    the far replicas (mean latency above FAR_LATENCY_FACTOR × their service's)."""
    mean_latency_ms = offset_ms + service_ms + p_wait * wait_ms
    terms = np.empty((len(GROUP_STATS) + 1, service.shape[0]))
    np.multiply(weight, service_ms, out=terms[1])
    np.multiply(weight, offset_ms, out=terms[2])
    np.multiply(weight, p_wait, out=terms[3])
    np.multiply(terms[3], wait_ms, out=terms[4])
    np.multiply(weight, queue_relaxation_s(wait_ms, rho), out=terms[5])
    np.multiply(weight, weight, out=terms[6])
    terms[7] = weight
    sums = np.bincount((service + _TERM_OFFSET[:-1, None] * n_services).ravel(), terms[1:].ravel(),
                       minlength=len(GROUP_STATS) * n_services).astype(np.float64).reshape(len(GROUP_STATS), n_services)
    sums = np.concatenate([served_s[None, :], sums])
    # traffic-weighted mean latency per service: Σ w·(service + offset + P(wait)·wait) / Σ w
    service_latency_ms = (sums[1] + sums[2] + sums[4]) / np.maximum(sums[-1], 1e-12)
    far = (mean_latency_ms > FAR_LATENCY_FACTOR * service_latency_ms[service]) & (weight > 0)
    terms[0] = served
    return terms, sums, far


def groups_from_terms(service: npt.NDArray[np.int64], terms: FloatArray, sums: FloatArray,
                      far: npt.NDArray[np.bool_], n_services: int) -> ReplicaGroups:
    """`ReplicaGroups` from `group_terms`: the far replicas summed apart, as their services' second groups."""
    if far.any():
        # the far replicas are few: sum them apart and take them out of their services' first groups
        k = np.flatnonzero(far)
        far_services, slot = np.unique(service[k], return_inverse=True)
        n_far = far_services.shape[0]
        far_sums = np.bincount((slot + _TERM_OFFSET[:, None] * n_far).ravel(), terms[:, k].ravel(),
                               minlength=terms.shape[0] * n_far).astype(np.float64).reshape(terms.shape[0], n_far)
        sums[:, far_services] -= far_sums
        sums = np.concatenate([sums, far_sums], axis=1)
        ids = np.concatenate([np.arange(n_services), n_services + far_services])
    else:
        ids = np.arange(n_services)
    return ReplicaGroups(ids % n_services, ids, _group_stats(sums))


_TERM_OFFSET = np.arange(len(GROUP_STATS) + 1)


def _group_stats(sums: FloatArray) -> FloatArray:
    """`ReplicaGroups.stats` from the group sums of `replica_groups`."""
    w = sums[-1]
    stats = sums[:-1]
    inv = 1.0 / np.maximum(w, 1e-12)
    stats[1:6] *= inv
    stats[6] = w * w / np.maximum(stats[6], 1e-12)
    return stats
