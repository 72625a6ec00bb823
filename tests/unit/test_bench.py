"""The bench matrix, its JSON summary and its tables, without the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeagora.bench.document import RunRecord, bench_document, summarize
from kubeagora.bench.matrix import RunSpec, plan_matrix, run_matrix
from kubeagora.bench.tables import KEY_COLUMNS, best_controllers, format_value
from kubeagora.sim.recorder import METRIC_KEYS
from kubeagora.sim.scenario import ScenarioError

SHORT_S = 120.0
TIMED_METRICS = {"overhead_us_per_req"}
"""Measured CPU time: the one metric that differs between two runs of the same seed."""


def _record(scenario: str, controller: str, seed: int, **metrics: float | None) -> RunRecord:
    return RunRecord(
        scenario=scenario,
        seed=seed,
        controller=controller,
        metrics={key: metrics.get(key) for key in METRIC_KEYS},
        extras={},
        faults=[],
        wall_s=0.0,
        timeseries={},
        decisions=[],
        decisions_total=0,
    )


def test_plan_counts_seeds_up_from_the_scenarios_own() -> None:
    plan = plan_matrix(["steady-drift", "burst-hotspot"], ["static"], n_seeds=3, duration_s=SHORT_S)
    assert [(r.scenario, r.seed) for r in plan.runs] == [
        ("steady-drift", 1),
        ("steady-drift", 2),
        ("steady-drift", 3),
        ("burst-hotspot", 2),
        ("burst-hotspot", 3),
        ("burst-hotspot", 4),
    ]
    assert [s.seeds for s in plan.scenarios] == [(1, 2, 3), (2, 3, 4)]
    assert all(s.description and s.duration_s == SHORT_S for s in plan.scenarios)


def test_a_seed_offset_runs_one_seed_of_a_longer_bench_alone() -> None:
    # seed by seed (how benchmarks/evidence.sh runs Table 1): the third of each scenario's seeds
    whole = plan_matrix(["steady-drift", "burst-hotspot"], ["static"], n_seeds=3, duration_s=SHORT_S)
    third = plan_matrix(["steady-drift", "burst-hotspot"], ["static"], n_seeds=1, duration_s=SHORT_S, seed_offset=2)
    assert [(r.scenario, r.seed) for r in third.runs] == [("steady-drift", 3), ("burst-hotspot", 4)]
    assert set(third.runs) <= set(whole.runs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"controllers": ["no-such-controller"]}, "unknown controller 'no-such-controller'"),
        ({"n_seeds": 0}, "--seeds must be at least 1"),
        ({"duration_s": -5.0}, "--duration must be a positive"),
        ({"seed_offset": -1}, "--seed-offset must be zero or more"),
    ],
)
def test_plan_refuses_bad_arguments_before_running_anything(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"scenarios": ["steady-drift"], "controllers": ["static"]} | kwargs
    with pytest.raises(ValueError, match=message):
        plan_matrix(**args)  # type: ignore[arg-type]


def test_plan_refuses_an_unknown_scenario() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'atlantis'"):
        plan_matrix(["atlantis"], ["static"])


def test_plan_refuses_two_scenarios_under_one_name(tmp_path: Path) -> None:
    twin = tmp_path / "twin.yaml"
    twin.write_text("name: steady-drift\nservices: {count: 2}\n")
    with pytest.raises(ScenarioError, match=r"twin\.yaml: field 'name': 'steady-drift' is also the name of"):
        plan_matrix(["steady-drift", str(twin)], ["static"])


def test_parallel_and_serial_runs_give_identical_metrics() -> None:
    runs = [RunSpec("steady-drift", "knative", 1, SHORT_S), RunSpec("burst-hotspot", "heuristic", 2, SHORT_S)]
    serial = run_matrix(runs, jobs=1)
    parallel = run_matrix(runs, jobs=2)
    assert [(r.scenario, r.controller, r.seed) for r in parallel] == [
        ("steady-drift", "knative", 1),
        ("burst-hotspot", "heuristic", 2),
    ]
    for a, b in zip(serial, parallel, strict=True):
        assert {k: v for k, v in a.metrics.items() if k not in TIMED_METRICS} == {
            k: v for k, v in b.metrics.items() if k not in TIMED_METRICS
        }
        assert a.timeseries == b.timeseries
        assert a.decisions == b.decisions
    assert any(r.decisions for r in serial)  # the controllers acted, so there was something to diverge


def test_summary_means_over_seeds_and_ratios_to_the_clairvoyant_planner() -> None:
    runs = [
        _record("s", "hpa", 1, slo_violation_pct=4.0, p99_ms=300.0, replica_seconds=100.0, mttr_s=None),
        _record("s", "hpa", 2, slo_violation_pct=6.0, p99_ms=500.0, replica_seconds=300.0, mttr_s=30.0),
        _record("s", "clairvoyant", 1, slo_violation_pct=0.0, p99_ms=200.0, replica_seconds=100.0),
    ]
    summary = summarize(runs)
    hpa = summary["s"]["hpa"]
    assert hpa["seeds"] == [1, 2]
    assert hpa["mean"]["slo_violation_pct"] == 5.0
    assert hpa["mean"]["mttr_s"] == 30.0  # a seed where it is undefined does not count
    assert hpa["mean"]["jitter_ms"] is None
    # the two seeds' values bound the interval of the mean; one value is its own interval
    assert hpa["ci95"]["slo_violation_pct"] == [4.0, 6.0]
    assert hpa["ci95"]["mttr_s"] == [30.0, 30.0]
    assert hpa["ci95"]["jitter_ms"] is None
    # the planner violated nothing: a ratio to zero is undefined, not infinite
    assert hpa["vs_clairvoyant"] == {"slo_violation_pct": None, "p99_ms": 2.0, "replica_seconds": 2.0}
    assert "vs_clairvoyant" not in summary["s"]["clairvoyant"]


def test_summary_without_the_clairvoyant_planner_has_no_ratios() -> None:
    summary = summarize([_record("s", "hpa", 1, p99_ms=1.0)])
    assert "vs_clairvoyant" not in summary["s"]["hpa"]


def test_document_keeps_series_finite_and_decisions_capped() -> None:
    (result,) = run_matrix([RunSpec("steady-drift", "static", 1, SHORT_S)])
    result.timeseries["p99_ms"][0] = float("nan")
    result.decisions = [{"t_s": float(i), "kind": "Scale"} for i in range(1000)]
    plan = plan_matrix(["steady-drift"], ["static"], duration_s=SHORT_S)
    (run,) = bench_document([result], plan.scenarios, "kubeagora bench")["runs"]
    assert run["timeseries"]["p99_ms"][0] is None
    assert len(run["timeseries"]["t_s"]) == SHORT_S / 10
    assert len(run["decisions"]) < run["decisions_total"] == 1000


def test_best_of_a_column_leaves_the_clairvoyant_planner_out_and_knows_which_way_is_better() -> None:
    summary = summarize(
        [
            _record("s", "hpa", 1, p99_ms=300.0, throughput_rps=900.0),
            _record("s", "keda", 1, p99_ms=250.0, throughput_rps=1000.0),
            _record("s", "clairvoyant", 1, p99_ms=100.0, throughput_rps=1100.0),
        ]
    )["s"]
    columns = {c.metric: c for c in KEY_COLUMNS}
    assert best_controllers(summary, columns["p99_ms"]) == {"keda"}
    assert best_controllers(summary, columns["throughput_rps"]) == {"keda"}
    assert best_controllers(summary, columns["mttr_s"]) == set()


def test_no_best_latency_for_a_controller_that_dropped_over_one_percent() -> None:
    summary = summarize(
        [
            _record("s", "hpa", 1, p95_ms=300.0, slo_violation_pct=30.0, lost_per_million=2_000.0),
            _record("s", "keda", 1, p95_ms=90.0, slo_violation_pct=35.0, lost_per_million=330_000.0),
        ]
    )["s"]
    columns = {c.metric: c for c in KEY_COLUMNS}
    assert best_controllers(summary, columns["p95_ms"]) == {"hpa"}  # keda's 90 ms left out a third of its requests
    assert best_controllers(summary, columns["slo_violation_pct"]) == {"hpa"}
    assert best_controllers(summary, columns["lost_per_million"]) == {"hpa"}


def test_a_scenario_over_capacity_is_flagged_in_the_document_and_the_table_caption() -> None:
    plan = plan_matrix(["burst-hotspot", "steady-drift"], ["static"], duration_s=SHORT_S)
    document = bench_document([], plan.scenarios, "kubeagora bench")
    # the check covers the simulated time only: the first 120 s hold no burst
    assert document["scenarios"]["steady-drift"]["capacity_warning"] is None
    assert document["scenarios"]["burst-hotspot"]["capacity_warning"] is None
    full = plan_matrix(["burst-hotspot"], ["static"])
    warning = bench_document([], full.scenarios, "kubeagora bench")["scenarios"]["burst-hotspot"]["capacity_warning"]
    assert warning is not None
    assert "web-0 needs 78 replicas" in warning
    assert "can have 50" in warning


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (0.0, "0.00"),
        (0.00042, "0.00042"),
        (3.14159, "3.14"),
        (42.42, "42.4"),
        (2398.9, "2399"),
        (12_193.0, "12.2k"),
        (611_000.0, "611k"),
        (1_072_000.0, "1.07M"),
    ],
)
def test_values_print_in_at_most_six_characters(value: float | None, text: str) -> None:
    assert format_value(value) == text
