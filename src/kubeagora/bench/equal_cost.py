"""A contender (mas) against each tuned baseline at equal replica-seconds, paired by seed.

On each seed, the baseline's settings (its default and every swept value, all run on that seed)
form a frontier (`frontier.pareto_frontier`), and the baseline's violations are read off it at the
replica-seconds the contender spent on the same seed. The per-seed pairs give
- the difference contender − baseline (percentage points) and its paired 95 % interval: the
  contender *beats* the baseline only where the whole interval is below zero;
- the ratio of the mean violations, with its paired interval;
- how many seeds fell outside the baseline's swept costs (see `frontier.Position`);
- the same difference against the `generous` reading of the frontier (the dearer neighbouring
  setting's violations at the contender's cost): `robust` where the contender beats that too.
Over scenarios, the median ratio and its stratified interval (`stats.median_ratio_interval`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeagora.bench.frontier import CostPoint, Position, pareto_frontier, violations_at
from kubeagora.bench.stats import (
    Interval,
    median_ratio_interval,
    paired_difference_interval,
    paired_ratio_interval,
)
from kubeagora.controllers.tuning import parse_label

VIOLATIONS = "slo_violation_pct"
COST = "replica_seconds"


@dataclass(frozen=True, slots=True)
class EqualCostComparison:
    scenario: str
    contender: str
    baseline: str
    """The baseline family."""
    seeds: tuple[int, ...]
    contender_violations: tuple[float, ...]
    baseline_violations: tuple[float, ...]
    """The baseline's frontier at the contender's replica-seconds, per seed."""
    positions: tuple[Position, ...]
    difference: Interval
    ratio: Interval
    generous_violations: tuple[float, ...]
    """The baseline's dearer neighbouring setting's violations at the contender's cost, per seed."""
    generous_difference: Interval
    generous_ratio: Interval

    @property
    def beats(self) -> bool:
        """The contender violates less, with the paired interval of the difference below zero (which
        takes two seeds at least: one seed has no interval, and claims nothing either way)."""
        return self.difference.n >= 2 and self.difference.high < 0.0

    @property
    def loses(self) -> bool:
        return self.difference.n >= 2 and self.difference.low > 0.0

    @property
    def robust(self) -> bool:
        """Beats the baseline even where its frontier is read as generously as the settings allow."""
        return self.generous_difference.n >= 2 and self.generous_difference.high < 0.0

    @property
    def dearer_seeds(self) -> int:
        """Seeds where the contender spent more than the baseline's dearest setting (favours the contender)."""
        return sum(p is Position.DEARER for p in self.positions)

    @property
    def cheaper_seeds(self) -> int:
        return sum(p is Position.CHEAPER for p in self.positions)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "contender": self.contender,
            "baseline": self.baseline,
            "seeds": list(self.seeds),
            "contender_violation_pct": list(self.contender_violations),
            "baseline_violation_pct_at_equal_cost": [round(v, 4) for v in self.baseline_violations],
            "positions": [p.value for p in self.positions],
            "difference_pp": _rounded(self.difference),
            "ratio": _rounded(self.ratio),
            "beats": self.beats,
            "loses": self.loses,
            "baseline_violation_pct_generous": [round(v, 4) for v in self.generous_violations],
            "generous_difference_pp": _rounded(self.generous_difference),
            "generous_ratio": _rounded(self.generous_ratio),
            "robust": self.robust,
        }


def _rounded(interval: Interval) -> list[float | None]:
    return [None if v != v else round(v, 4) for v in interval.as_list()]


RunLike = Mapping[str, Any]
"""A run record of a bench document: scenario, seed, controller, metrics."""


def _point(run: RunLike) -> CostPoint | None:
    cost, violations = run["metrics"].get(COST), run["metrics"].get(VIOLATIONS)
    if cost is None or violations is None:
        return None
    return CostPoint(float(cost), float(violations), run["controller"])


def family_points(runs: Iterable[RunLike], scenario: str, family: str) -> dict[int, list[CostPoint]]:
    """Seed → the points of every setting of `family` run on that seed."""
    points: dict[int, list[CostPoint]] = defaultdict(list)
    for run in runs:
        if run["scenario"] != scenario or parse_label(run["controller"]).family != family:
            continue
        point = _point(run)
        if point is not None:
            points[int(run["seed"])].append(point)
    return dict(points)


def compare_at_equal_cost(
    runs: Sequence[RunLike], scenario: str, contender: str, baseline: str
) -> EqualCostComparison | None:
    """None where the two share no seed on this scenario."""
    contender_points = {
        int(r["seed"]): p
        for r in runs
        if r["scenario"] == scenario and r["controller"] == contender and (p := _point(r)) is not None
    }
    by_seed = family_points(runs, scenario, baseline)
    seeds = tuple(sorted(set(contender_points) & set(by_seed)))
    if not seeds:
        return None
    mine, theirs, generous, positions = [], [], [], []
    for seed in seeds:
        point = contender_points[seed]
        value, position = violations_at(by_seed[seed], point.replica_seconds)
        mine.append(point.violation_pct)
        theirs.append(value)
        generous.append(violations_at(by_seed[seed], point.replica_seconds, generous=True)[0])
        positions.append(position)
    return EqualCostComparison(
        scenario,
        contender,
        baseline,
        seeds,
        tuple(mine),
        tuple(theirs),
        tuple(positions),
        paired_difference_interval(mine, theirs),
        paired_ratio_interval(mine, theirs),
        tuple(generous),
        paired_difference_interval(mine, generous),
        paired_ratio_interval(mine, generous),
    )


def median_ratio(comparisons: Sequence[EqualCostComparison], generous: bool = False) -> Interval:
    """Median over scenarios of the contender's violations ÷ the baseline's at equal cost."""
    return median_ratio_interval(
        [(c.contender_violations, c.generous_violations if generous else c.baseline_violations) for c in comparisons]
    )


def baseline_families(runs: Iterable[RunLike]) -> list[str]:
    """Families that ran with more than one setting (those have a frontier), in order of appearance."""
    settings: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        settings[parse_label(run["controller"]).family].add(run["controller"])
    return [family for family, labels in settings.items() if len(labels) > 1]


def mean_frontier(runs: Iterable[RunLike], scenario: str, family: str) -> tuple[list[CostPoint], list[CostPoint]]:
    """(every setting's mean point over seeds, the Pareto set of those means): what the plot draws."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for points in family_points(runs, scenario, family).values():
        for p in points:
            acc = sums[p.label]
            acc[0] += p.replica_seconds
            acc[1] += p.violation_pct
            acc[2] += 1
    means = [CostPoint(c / n, v / n, label) for label, (c, v, n) in sums.items()]
    return means, pareto_frontier(means)
