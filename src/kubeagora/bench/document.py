"""The bench JSON document (DESIGN.md's contract) and its summary.

`{"runs": [...], "summary": {...}, "scenarios": {...}, "command": ...}`. Each run keeps its
metrics, its per-10-second time series (rounded) and its first decisions, so the tables, plots,
report and `explain` can all be made from the file alone.

Summary, per scenario and controller: the mean of each metric over seeds (seeds where a metric is
undefined are left out of its mean) and, where the oracle ran on the same scenario, the ratio of
the controller's mean SLO violation %, p99 and replica-seconds to the oracle's (null where the
oracle's value is 0 or undefined).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

from kubeagora.bench.matrix import ScenarioInfo
from kubeagora.sim.recorder import METRIC_KEYS
from kubeagora.sim.run import RunResult

ORACLE = "oracle"
VS_ORACLE_KEYS = ("slo_violation_pct", "p99_ms", "replica_seconds")
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
    vs_oracle: dict[str, float | None]


class ScenarioRecord(TypedDict):
    source: str
    description: str
    seeds: list[int]
    duration_s: float


class BenchDocument(TypedDict):
    runs: list[RunRecord]
    summary: dict[str, dict[str, ControllerSummary]]
    scenarios: dict[str, ScenarioRecord]
    command: str
    trace: dict[str, Any] | None


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
        extras={k: round(float(v), 3) for k, v in result.extras.items()},
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


def summarize(runs: Sequence[RunRecord]) -> dict[str, dict[str, ControllerSummary]]:
    groups: dict[str, dict[str, list[RunRecord]]] = {}
    for run in runs:
        groups.setdefault(run["scenario"], {}).setdefault(run["controller"], []).append(run)
    summary: dict[str, dict[str, ControllerSummary]] = {}
    for scenario, by_controller in groups.items():
        summary[scenario] = {
            c: ControllerSummary(seeds=[r["seed"] for r in rs], mean=mean_metrics(rs))
            for c, rs in by_controller.items()
        }
        oracle = summary[scenario].get(ORACLE)
        if oracle is None:
            continue
        for controller, entry in summary[scenario].items():
            if controller != ORACLE:
                entry["vs_oracle"] = {
                    key: _ratio(entry["mean"][key], oracle["mean"][key]) for key in VS_ORACLE_KEYS
                }
    return summary


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
    return BenchDocument(
        runs=runs,
        summary=summarize(runs),
        scenarios={
            s.name: ScenarioRecord(
                source=s.source, description=s.description, seeds=list(s.seeds), duration_s=s.duration_s
            )
            for s in scenarios
        },
        command=command,
        trace=trace,
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
