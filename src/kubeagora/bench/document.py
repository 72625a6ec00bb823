"""The bench JSON document (the contract the README describes) and its summary.

`{"runs": [...], "summary": {...}, "scenarios": {...}, "command": ...}`. Each run keeps its
metrics, its per-10-second time series (rounded) and its first decisions, so the tables, plots,
report and `explain` can all be made from the file alone.

Summary, per scenario and controller: the mean of each metric over seeds (seeds where a metric is
undefined are left out of its mean), its 95 % bootstrap interval over seeds (`ci95`, [low, high];
equal to the mean with one seed) and, where the clairvoyant planner ran on the same scenario, the
ratio of the controller's mean SLO violation %, p99 and replica-seconds to the planner's (null
where the planner's value is 0 or undefined).

`equal_cost`: for each contender (mas, mpc) and each baseline run with more than one setting of its
knob, per scenario, the paired comparison at equal replica-seconds (`bench.equal_cost`);
`equal_cost_median` (and `equal_cost_median_generous`, with the frontier read generously to the
baseline, see `bench.frontier`): per contender and baseline, the median over scenarios of the ratio of
violations, with its interval. Scenario records carry the capacity check (`bench.capacity`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

from kubeagora.bench.equal_cost import baseline_families, compare_at_equal_cost, median_ratio
from kubeagora.bench.matrix import ScenarioInfo
from kubeagora.bench.stats import mean_interval
from kubeagora.controllers.registry import CLAIRVOYANT
from kubeagora.sim.recorder import METRIC_KEYS
from kubeagora.sim.run import RunResult

VS_CLAIRVOYANT_KEYS = ("slo_violation_pct", "p99_ms", "replica_seconds")
CONTENDERS = ("mas", "mpc")
"""Our controllers: each is compared with every tuned baseline at equal replica-seconds."""
DECISIONS_KEPT = 200
"""Decisions kept per run in the JSON: enough to explain a run's start, not a megabyte per run."""
SERIES_DECIMALS = 2

Metrics = dict[str, float | None]


class RunRecord(TypedDict):
    scenario: str
    seed: int
    controller: str
    metrics: Metrics
    extras: dict[str, float]
    faults: list[list[Any]]
    wall_s: float
    timeseries: dict[str, list[float | None]]
    decisions: list[dict[str, Any]]
    decisions_total: int


class ControllerSummary(TypedDict, total=False):
    seeds: list[int]
    mean: Metrics
    ci95: dict[str, list[float] | None]
    vs_clairvoyant: dict[str, float | None]


class ScenarioRecord(TypedDict, total=False):
    source: str
    description: str
    seeds: list[int]
    duration_s: float
    capacity: dict[str, Any]
    capacity_warning: str | None
    model_error: float
    """Log-sd of the world's deviation from the declared specs the runs used (0 = the world as declared)."""


class BenchDocument(TypedDict, total=False):
    runs: list[RunRecord]
    summary: dict[str, dict[str, ControllerSummary]]
    scenarios: dict[str, ScenarioRecord]
    command: str
    trace: dict[str, Any] | None
    equal_cost: list[dict[str, Any]]
    equal_cost_median: dict[str, dict[str, list[float] | None]]
    equal_cost_median_generous: dict[str, dict[str, list[float] | None]]


def _finite_or_none(value: float, decimals: int) -> float | None:
    return round(value, decimals) if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """Decision fields as JSON: enums by value, tuples as lists, numpy scalars as numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return _finite_or_none(value, 6)
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    if hasattr(value, "value"):  # enum
        return _jsonable(value.value)
    return str(value)


def run_record(result: RunResult) -> RunRecord:
    series = {
        key: [_finite_or_none(float(v), SERIES_DECIMALS) for v in values]
        for key, values in result.timeseries.items()
    }
    return RunRecord(
        scenario=result.scenario,
        seed=result.seed,
        controller=result.controller,
        metrics={key: result.metrics.get(key) for key in METRIC_KEYS},
        extras={k: float(f"{float(v):.6g}") for k, v in result.extras.items()},
        faults=[[t, label] for t, label in result.faults],
        wall_s=round(result.wall_s, 3),
        timeseries=series,
        decisions=[_jsonable(d) for d in result.decisions[:DECISIONS_KEPT]],
        decisions_total=len(result.decisions),
    )


def mean_metrics(runs: Sequence[RunRecord]) -> Metrics:
    means: Metrics = {}
    for key in METRIC_KEYS:
        values = [v for r in runs if (v := r["metrics"].get(key)) is not None]
        means[key] = round(sum(values) / len(values), 4) if values else None
    return means


def metric_intervals(runs: Sequence[RunRecord]) -> dict[str, list[float] | None]:
    """Per metric, the 95 % bootstrap interval of its mean over seeds, [low, high] (None if undefined)."""
    intervals: dict[str, list[float] | None] = {}
    for key in METRIC_KEYS:
        values = [float(v) for r in runs if (v := r["metrics"].get(key)) is not None]
        if not values:
            intervals[key] = None
            continue
        interval = mean_interval(values)
        intervals[key] = [round(interval.low, 4), round(interval.high, 4)]
    return intervals


def summarize(runs: Sequence[RunRecord]) -> dict[str, dict[str, ControllerSummary]]:
    groups: dict[str, dict[str, list[RunRecord]]] = {}
    for run in runs:
        groups.setdefault(run["scenario"], {}).setdefault(run["controller"], []).append(run)
    summary: dict[str, dict[str, ControllerSummary]] = {}
    for scenario, by_controller in groups.items():
        summary[scenario] = {
            c: ControllerSummary(seeds=[r["seed"] for r in rs], mean=mean_metrics(rs), ci95=metric_intervals(rs))
            for c, rs in by_controller.items()
        }
        clairvoyant = summary[scenario].get(CLAIRVOYANT)
        if clairvoyant is None:
            continue
        for controller, entry in summary[scenario].items():
            if controller != CLAIRVOYANT:
                entry["vs_clairvoyant"] = {
                    key: _ratio(entry["mean"][key], clairvoyant["mean"][key]) for key in VS_CLAIRVOYANT_KEYS
                }
    return summary


Medians = dict[str, dict[str, list[float] | None]]
"""Contender → baseline family → [median ratio, low, high] (None where no scenario has a ratio)."""


def equal_cost_section(runs: Sequence[RunRecord]) -> tuple[list[dict[str, Any]], Medians, Medians]:
    """(per scenario, contender and tuned baseline: the comparison; per contender and baseline: the median
    ratio on the frontier read as a straight line, and read generously to the baseline)."""
    families = baseline_families(runs)
    scenarios = list(dict.fromkeys(r["scenario"] for r in runs))
    present = {r["controller"] for r in runs}
    comparisons: list[dict[str, Any]] = []
    medians: Medians = {}
    generous: Medians = {}
    for contender in (c for c in CONTENDERS if c in present):
        for family in families:
            found = [
                c for s in scenarios if (c := compare_at_equal_cost(runs, s, contender, family)) is not None
            ]
            comparisons.extend(c.as_json() for c in found)
            for target, reading in ((medians, False), (generous, True)):
                try:
                    interval = median_ratio(found, generous=reading)
                except ValueError:  # no scenario where the baseline violated at all
                    target.setdefault(contender, {})[family] = None
                    continue
                target.setdefault(contender, {})[family] = [round(v, 4) for v in interval.as_list()]
    return comparisons, medians, generous


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return round(value / reference, 4)


def bench_document(
    results: Sequence[RunResult],
    scenarios: Sequence[ScenarioInfo],
    command: str,
    trace: dict[str, Any] | None = None,
) -> BenchDocument:
    runs = [run_record(r) for r in results]
    comparisons, medians, generous = equal_cost_section(runs)
    return BenchDocument(
        runs=runs,
        summary=summarize(runs),
        scenarios={s.name: scenario_record(s) for s in scenarios},
        command=command,
        trace=trace,
        equal_cost=comparisons,
        equal_cost_median=medians,
        equal_cost_median_generous=generous,
    )


def scenario_record(info: ScenarioInfo) -> ScenarioRecord:
    record = ScenarioRecord(
        source=info.source, description=info.description, seeds=list(info.seeds), duration_s=info.duration_s,
        model_error=info.model_error,
    )
    if info.capacity is not None:
        check = info.capacity
        record["capacity"] = {
            "peak_demand_rps": round(check.peak_demand_rps, 1),
            "at_s": check.at_s,
            "demand_rps": round(check.demand_rps, 1),
            "capacity_rps": round(check.capacity_rps, 1),
            "over_capacity_s": check.over_capacity_s,
            "over_capacity_pct": round(100 * check.over_capacity_share, 3),
            "limiting": check.limiting,
        }
        record["capacity_warning"] = check.warning()
    return record


def merge_documents(documents: Sequence[BenchDocument], command: str) -> BenchDocument:
    """One document from several bench runs (e.g. one per scenario, run apart): their runs together,
    the summary and the comparisons computed again over all of them. Runs of the same scenario,
    controller and seed must not appear twice; the trace must be the same in all."""
    runs: list[RunRecord] = []
    seen: set[tuple[str, str, int]] = set()
    scenarios: dict[str, ScenarioRecord] = {}
    traces = {json.dumps(d.get("trace"), sort_keys=True) for d in documents}
    if len(traces) > 1:
        raise ValueError("the documents replay different traces; merge only runs of the same arrivals")
    for document in documents:
        for run in document["runs"]:
            key = (run["scenario"], run["controller"], run["seed"])
            if key in seen:
                raise ValueError(f"run {key} appears in more than one document")
            seen.add(key)
            runs.append(run)
        for name, record in document.get("scenarios", {}).items():
            if name in scenarios and scenarios[name].get("model_error", 0.0) != record.get("model_error", 0.0):
                raise ValueError(f"scenario {name!r} ran at different model errors in these documents; "
                                 "merge only runs of the same world")
            if name in scenarios:
                merged = sorted(set(scenarios[name]["seeds"]) | set(record["seeds"]))
                scenarios[name] = ScenarioRecord(**{**scenarios[name], "seeds": merged})
            else:
                scenarios[name] = record
    comparisons, medians, generous = equal_cost_section(runs)
    return BenchDocument(
        runs=runs,
        summary=summarize(runs),
        scenarios=scenarios,
        command=command,
        trace=documents[0].get("trace") if documents else None,
        equal_cost=comparisons,
        equal_cost_median=medians,
        equal_cost_median_generous=generous,
    )


def trace_note(document: BenchDocument) -> str:
    """' · arrivals from FILE × SCALE' when a trace replaced the arrivals, else ''."""
    trace = document.get("trace")
    if not trace:
        return ""
    return f" · arrivals from {Path(str(trace['path'])).name} × {trace['scale']:g}"


def write_document(document: BenchDocument, path: Path) -> None:
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")


def read_document(path: Path) -> BenchDocument:
    return cast(BenchDocument, json.loads(path.read_text()))
