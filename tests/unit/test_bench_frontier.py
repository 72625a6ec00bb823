"""Baseline frontiers and the comparison at equal replica-seconds, on hand-made points and runs."""

from __future__ import annotations

from typing import Any

import pytest

from kubeagora.bench.equal_cost import (
    baseline_families,
    compare_at_equal_cost,
    mean_frontier,
    median_ratio,
)
from kubeagora.bench.frontier import CostPoint, Position, pareto_frontier, violations_at


def _p(cost: float, violations: float, label: str = "") -> CostPoint:
    return CostPoint(cost, violations, label)


def test_the_frontier_keeps_only_settings_no_other_beats_on_both() -> None:
    points = [_p(100, 10), _p(150, 12), _p(200, 5), _p(200, 6), _p(300, 5), _p(400, 1)]
    assert pareto_frontier(points) == [_p(100, 10), _p(200, 5), _p(400, 1)]


def test_violations_are_interpolated_between_neighbouring_frontier_points() -> None:
    points = [_p(100, 10), _p(200, 4), _p(400, 2)]
    assert violations_at(points, 150) == (pytest.approx(7.0), Position.INSIDE)
    assert violations_at(points, 300) == (pytest.approx(3.0), Position.INSIDE)
    assert violations_at(points, 200) == (pytest.approx(4.0), Position.INSIDE)


def test_the_generous_reading_gives_the_baseline_its_dearer_neighbour_between_settings() -> None:
    points = [_p(100, 10), _p(200, 4), _p(400, 2)]
    assert violations_at(points, 150, generous=True) == (4.0, Position.INSIDE)
    assert violations_at(points, 300, generous=True) == (2.0, Position.INSIDE)
    assert violations_at(points, 100, generous=True) == (10.0, Position.INSIDE)  # a setting that was run
    assert violations_at(points, 50, generous=True) == (10.0, Position.CHEAPER)


def test_outside_the_swept_costs_the_nearest_end_is_used_and_flagged() -> None:
    points = [_p(100, 10), _p(200, 4)]
    assert violations_at(points, 50) == (10.0, Position.CHEAPER)
    assert violations_at(points, 250) == (4.0, Position.DEARER)


def test_dearer_settings_that_bought_nothing_make_the_frontier_flat_not_unknown() -> None:
    # the 300 setting was run and violated as much as the 200 one: at 250 the baseline is at 4, inside
    points = [_p(100, 10), _p(200, 4), _p(300, 4)]
    assert violations_at(points, 250) == (4.0, Position.INSIDE)
    assert violations_at(points, 350) == (4.0, Position.DEARER)


def _run(scenario: str, controller: str, seed: int, cost: float, violations: float) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "controller": controller,
        "seed": seed,
        "metrics": {"replica_seconds": cost, "slo_violation_pct": violations},
    }


def _sweep(scenario: str, seed: int, shift: float) -> list[dict[str, Any]]:
    """hpa's frontier on one seed: 100 → 10 %, 200 → 4 %, 400 → 2 %, all shifted by the seed's load."""
    return [
        _run(scenario, "hpa@target=0.9", seed, 100, 10 + shift),
        _run(scenario, "hpa", seed, 200, 4 + shift),
        _run(scenario, "hpa@target=0.5", seed, 400, 2 + shift),
    ]


def test_a_contender_below_the_frontier_on_every_seed_beats_it() -> None:
    runs = []
    for seed, shift in enumerate([0.0, 3.0, 6.0, 1.0, 2.0], start=1):
        runs += _sweep("s", seed, shift)
        runs.append(_run("s", "mas", seed, 150, 5 + shift))  # the frontier gives 7 + shift at 150
    comparison = compare_at_equal_cost(runs, "s", "mas", "hpa")
    assert comparison is not None
    assert comparison.seeds == (1, 2, 3, 4, 5)
    assert comparison.baseline_violations == pytest.approx([7.0, 10.0, 13.0, 8.0, 9.0])
    assert comparison.difference.estimate == pytest.approx(-2.0)
    assert comparison.difference.high == pytest.approx(-2.0)  # the seeds' shared load cancels out
    assert comparison.beats
    assert not comparison.loses
    assert comparison.dearer_seeds == comparison.cheaper_seeds == 0
    # generously, hpa has its 200-replica-second setting's 4 % at 150: mas's 5 % no longer beats it
    assert comparison.generous_violations == pytest.approx([4.0, 7.0, 10.0, 5.0, 6.0])
    assert comparison.generous_difference.estimate == pytest.approx(1.0)
    assert not comparison.robust
    assert comparison.as_json()["robust"] is False


def test_a_win_that_survives_the_generous_reading_is_robust() -> None:
    runs = []
    for seed, shift in enumerate([0.0, 3.0, 6.0, 1.0, 2.0], start=1):
        runs += _sweep("s", seed, shift)
        runs.append(_run("s", "mas", seed, 150, 3 + shift))  # below even the 200 setting's 4 + shift
    comparison = compare_at_equal_cost(runs, "s", "mas", "hpa")
    assert comparison is not None
    assert comparison.beats
    assert comparison.robust


def test_a_contender_that_wins_on_some_seeds_and_loses_on_others_does_not_beat() -> None:
    runs = []
    for seed, own in enumerate([5.0, 9.0, 6.0, 8.5, 7.5], start=1):
        runs += _sweep("s", seed, 0.0)
        runs.append(_run("s", "mas", seed, 150, own))  # the frontier gives 7 at 150 on every seed
    comparison = compare_at_equal_cost(runs, "s", "mas", "hpa")
    assert comparison is not None
    assert comparison.difference.low < 0 < comparison.difference.high
    assert not comparison.beats
    assert not comparison.loses


def test_one_seed_has_no_interval_and_claims_nothing() -> None:
    runs = [*_sweep("s", 1, 0.0), _run("s", "mas", 1, 150, 3.0)]  # far below the frontier's 7, and its 4
    comparison = compare_at_equal_cost(runs, "s", "mas", "hpa")
    assert comparison is not None
    assert comparison.difference.estimate == pytest.approx(-4.0)
    assert comparison.difference.n == 1
    assert not comparison.beats
    assert not comparison.robust
    worse = compare_at_equal_cost([*_sweep("s", 1, 0.0), _run("s", "mas", 1, 150, 30.0)], "s", "mas", "hpa")
    assert worse is not None
    assert not worse.loses


def test_a_contender_dearer_than_every_setting_is_flagged() -> None:
    runs = [*_sweep("s", 1, 0.0), _run("s", "mas", 1, 900, 1.0)]
    comparison = compare_at_equal_cost(runs, "s", "mas", "hpa")
    assert comparison is not None
    assert comparison.dearer_seeds == 1
    assert comparison.as_json()["positions"] == ["dearer"]


def test_no_shared_seed_no_comparison() -> None:
    runs = [*_sweep("s", 1, 0.0), _run("s", "mas", 2, 150, 1.0)]
    assert compare_at_equal_cost(runs, "s", "mas", "hpa") is None


def test_median_over_scenarios_and_which_baselines_have_a_frontier() -> None:
    runs = []
    for scenario, own in (("a", 3.5), ("b", 7.0), ("c", 14.0)):  # ratios 0.5, 1, 2 against 7 %
        for seed in (1, 2):
            runs += _sweep(scenario, seed, 0.0)
            runs.append(_run(scenario, "mas", seed, 150, own))
            runs.append(_run(scenario, "keda", seed, 150, own))  # one setting only: no frontier
    assert baseline_families(runs) == ["hpa"]
    comparisons = [c for s in "abc" if (c := compare_at_equal_cost(runs, s, "mas", "hpa")) is not None]
    median = median_ratio(comparisons)
    assert (median.estimate, median.low, median.high) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))


def test_the_plotted_frontier_is_built_from_means_over_seeds() -> None:
    runs = _sweep("s", 1, 0.0) + _sweep("s", 2, 2.0)
    means, frontier = mean_frontier(runs, "s", "hpa")
    assert {p.label: p.violation_pct for p in means} == {"hpa@target=0.9": 11.0, "hpa": 5.0, "hpa@target=0.5": 3.0}
    assert [p.replica_seconds for p in frontier] == [100, 200, 400]
