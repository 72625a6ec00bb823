"""95 % confidence intervals over seeds: the percentile bootstrap, paired by seed where two controllers meet.

Every interval here resamples seeds with replacement (`N_RESAMPLES` times, a fixed generator seed,
so a report is reproducible) and takes the 2.5th and 97.5th percentiles of the statistic over the
resamples. Paired statistics resample the same seeds for both sides: a controller and a baseline on
seed 3 saw the same arrivals and faults, so their difference on that seed is one observation and
the seed-to-seed variation of the load cancels out of it.

A claim that one controller beats another holds only where the paired interval of the difference
excludes zero (`Interval.excludes(0)`), the rule of docs/benchmarks.md. With fewer than two seeds
there is no spread to resample: the interval is the point itself, and `n` says so.

Pure functions of numbers: no bench document is read here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.model import FloatArray

N_RESAMPLES = 10_000
CONFIDENCE = 0.95
GENERATOR_SEED = 20_240_917
"""Fixed, so the same runs give the same intervals in the JSON, the report and the docs."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate and its bootstrap interval; `n` is the number of seeds (or pairs) behind it."""

    estimate: float
    low: float
    high: float
    n: int

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high

    def as_list(self) -> list[float]:
        return [self.estimate, self.low, self.high]


Statistic = Callable[[Sequence[FloatArray]], FloatArray]
"""Given resampled columns, each shaped (resamples, n), the statistic per resample, shaped (resamples,)."""


def _columns(*samples: Sequence[float]) -> list[FloatArray]:
    columns = [np.asarray(s, dtype=np.float64) for s in samples]
    n = columns[0].shape[0]
    if n == 0:
        raise ValueError("no samples to bootstrap")
    if any(c.shape != (n,) for c in columns):
        raise ValueError("paired samples must have the same length")
    if not all(np.all(np.isfinite(c)) for c in columns):
        raise ValueError("samples must be finite numbers")
    return columns


def bootstrap(
    columns: Sequence[FloatArray],
    statistic: Statistic,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    generator_seed: int = GENERATOR_SEED,
) -> Interval:
    """Percentile bootstrap of `statistic` over paired columns (one row per seed, resampled together)."""
    n = columns[0].shape[0]
    estimate = float(statistic([c[None, :] for c in columns])[0])
    if n < 2:
        return Interval(estimate, estimate, estimate, n)
    rng = np.random.default_rng(generator_seed)
    picks = rng.integers(0, n, size=(n_resamples, n))
    values = statistic([c[picks] for c in columns])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Interval(estimate, float("nan"), float("nan"), n)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Interval(estimate, float(low), float(high), n)


def _mean(columns: Sequence[FloatArray]) -> FloatArray:
    return np.asarray(columns[0].mean(axis=1))


def _mean_difference(columns: Sequence[FloatArray]) -> FloatArray:
    return np.asarray((columns[0] - columns[1]).mean(axis=1))


def _ratio_of_means(columns: Sequence[FloatArray]) -> FloatArray:
    denominator = columns[1].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(denominator > 0, columns[0].mean(axis=1) / denominator, np.nan))


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean over seeds and its 95 % interval."""
    return bootstrap(_columns(values), _mean)


def paired_difference_interval(a: Sequence[float], b: Sequence[float]) -> Interval:
    """mean(a − b) over seeds, a[i] and b[i] from the same seed; below zero means a is lower."""
    return bootstrap(_columns(a, b), _mean_difference)


def paired_ratio_interval(a: Sequence[float], b: Sequence[float]) -> Interval:
    """mean(a) / mean(b) over the same resampled seeds (NaN estimate where mean(b) is 0)."""
    return bootstrap(_columns(a, b), _ratio_of_means)


def median_ratio_interval(
    groups: Sequence[tuple[Sequence[float], Sequence[float]]],
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    generator_seed: int = GENERATOR_SEED,
) -> Interval:
    """The median over groups (scenarios) of mean(a) / mean(b), each group's seeds resampled on their own.

    A stratified bootstrap: a scenario keeps its own seeds; `n` is the number of groups. Groups whose
    mean(b) is 0 have no ratio and are left out (of the estimate and of every resample).
    """
    paired = [_columns(a, b) for a, b in groups]
    ratios = [float(_ratio_of_means([c[None, :] for c in g])[0]) for g in paired]
    kept = [g for g, r in zip(paired, ratios, strict=True) if np.isfinite(r)]
    if not kept:
        raise ValueError("no group has a ratio (every denominator is zero)")
    estimate = float(np.median([r for r in ratios if np.isfinite(r)]))
    if all(g[0].shape[0] < 2 for g in kept):
        return Interval(estimate, estimate, estimate, len(kept))
    rng = np.random.default_rng(generator_seed)
    per_group = np.empty((n_resamples, len(kept)))
    for j, columns in enumerate(kept):
        n = columns[0].shape[0]
        picks = rng.integers(0, n, size=(n_resamples, n))
        per_group[:, j] = _ratio_of_means([c[picks] for c in columns])
    # a resample whose denominator came out zero gives no ratio for that group: median of the rest
    per_group = np.where(np.isfinite(per_group), per_group, np.nan)
    some = ~np.all(np.isnan(per_group), axis=1)
    medians = np.nanmedian(per_group[some], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return Interval(estimate, float(low), float(high), len(kept))
