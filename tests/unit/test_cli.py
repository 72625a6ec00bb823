"""`kubeagora simulate | bench | scenarios` as a user runs them, through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kubeagora.cli import app
from kubeagora.sim.scenario import DEFAULT_SCENARIO, builtin_names

runner = CliRunner()

CONTRACT_METRIC_KEYS = (
    "p50_ms", "p95_ms", "p99_ms", "slo_violation_pct", "throughput_rps", "jitter_ms", "energy_j_per_req",
    "replica_seconds", "overhead_us_per_req", "lost_per_million", "mttr_s", "time_to_scale_s",
    "cold_start_p99_delta_ms", "interference_penalty_pct", "rollback_pct", "jain_fairness",
)  # fmt: skip
"""The bench JSON contract (README, docs/benchmarks.md), written out here so a change to the recorder cannot move it."""
SHORT = "120"
TWO_CONTROLLERS = "static,hpa"


def assert_bench_contract(document: dict[str, Any]) -> None:
    """The checks of the shared bench_contract.py script."""
    assert isinstance(document["runs"], list)
    assert document["runs"]
    assert "summary" in document
    for run in document["runs"]:
        assert {"scenario", "seed", "controller", "metrics"} <= run.keys()
        assert set(CONTRACT_METRIC_KEYS) <= run["metrics"].keys()
        for key in CONTRACT_METRIC_KEYS:
            value = run["metrics"][key]
            assert value is None or (isinstance(value, int | float) and not isinstance(value, bool)), key


def test_simulate_prints_the_metrics_and_writes_contract_json(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--scenario",
            "steady-drift",
            "--controller",
            "static",
            "--duration",
            SHORT,
            "--seed",
            "7",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "p99_ms" in result.stdout
    assert "slo_violation_pct" in result.stdout
    document = json.loads(out.read_text())
    assert_bench_contract(document)
    (run,) = document["runs"]
    assert (run["scenario"], run["controller"], run["seed"]) == ("steady-drift", "static", 7)
    assert document["summary"]["steady-drift"]["static"]["seeds"] == [7]
    assert "--seed 7" in document["command"]


def test_bench_writes_tables_json_and_a_report(tmp_path: Path) -> None:
    report = tmp_path / "report"
    out = report / "results.json"  # inside the report directory, which bench creates
    result = runner.invoke(
        app,
        [
            "bench",
            "--scenarios",
            "steady-drift,burst-hotspot",
            "--controllers",
            TWO_CONTROLLERS,
            "--duration",
            SHORT,
            "--json",
            str(out),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    for scenario in ("steady-drift", "burst-hotspot"):
        assert scenario in result.stdout
    for controller in TWO_CONTROLLERS.split(","):
        assert controller in result.stdout
    document = json.loads(out.read_text())
    assert_bench_contract(document)
    cells = {(r["scenario"], r["controller"]) for r in document["runs"]}
    assert cells == {(s, c) for s in ("steady-drift", "burst-hotspot") for c in TWO_CONTROLLERS.split(",")}
    assert len(document["runs"][0]["timeseries"]["p99_ms"]) == 12
    index = (report / "index.html").read_text()
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert len(pngs) == 6
    assert all(f'src="{name}"' in index for name in pngs)
    assert "kubeagora bench --scenarios steady-drift,burst-hotspot" in index
    assert "flash crowds" in index  # the burst-hotspot description
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in report.glob("*.png"))


def test_bench_sweeps_a_baseline_and_compares_at_equal_replica_seconds(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    report = tmp_path / "report"
    args = ["bench", "--scenarios", "steady-drift", "--controllers", "hpa,mpc", "--sweep", "hpa.target=0.5,0.9",
            "--seeds", "2", "--duration", SHORT, "--jobs", "1", "--json", str(out), "--report", str(report)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "hpa (shipped default, target 0.8)" in result.stdout
    assert "At equal replica-seconds" in result.stdout
    document = json.loads(out.read_text())
    assert_bench_contract(document)
    assert {r["controller"] for r in document["runs"]} == {"hpa", "hpa@target=0.5", "hpa@target=0.9", "mpc"}
    (comparison,) = document["equal_cost"]
    assert (comparison["contender"], comparison["baseline"], comparison["seeds"]) == ("mpc", "hpa", [1, 2])
    assert set(document["equal_cost_median"]["mpc"]) == {"hpa"}
    assert "--sweep hpa.target=0.5,0.9" in document["command"]
    index = (report / "index.html").read_text()
    assert "steady-drift-frontier.png" in index
    assert "At equal replica-seconds" in index


def test_bench_with_a_trace_replays_it_on_the_default_scenario(tmp_path: Path) -> None:
    trace = tmp_path / "arrivals.counts"
    trace.write_text(" ".join(["20", "40"] * 60) + "\n")  # 30 requests/s on average, for 120 s
    out = tmp_path / "r.json"
    args = [
        "bench",
        "--controllers",
        "static",
        "--trace",
        str(trace),
        "--trace-scale",
        "100",
        "--json",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "arrivals from arrivals.counts × 100" in result.stdout
    document = json.loads(out.read_text())
    assert_bench_contract(document)
    assert {r["scenario"] for r in document["runs"]} == {DEFAULT_SCENARIO}
    assert document["trace"] == {"path": str(trace), "format": "counts", "scale": 100.0, "offset_s": 0,
                                 "smoothing_s": 60}
    demand = document["runs"][0]["timeseries"]["demand_rps"]
    assert 2000 < sum(demand) / len(demand) < 4000  # the trace × 100, not the scenario's 6000 req/s


def test_scenarios_lists_every_builtin_with_its_description() -> None:
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0
    for name in builtin_names():
        assert name in result.stdout
    assert "default scenario" in result.stdout


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "malformed.yaml": "name: broken\nservices:\n\tcount: 3\n",
        "unknown-field.yaml": "name: typo\nduration_sec: 60\n",
        "impossible-slo.yaml": (
            "name: too-fast\nservices:\n  count: 0\n  explicit:\n"
            "    - {name: checkout, template: web, slo_p95_ms: 1, slo_p99_ms: 1}\n"
        ),
        "garbage.counts": "3 4 5\n6 seven 8\n",
        "model-error.yaml": "name: wild\nmodel_error: 3\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in files}


BAD_INPUTS = [
    pytest.param(
        ["simulate", "--scenario", "atlantis", "--controller", "static"],
        ["unknown scenario 'atlantis'"],
        id="unknown-scenario",
    ),
    pytest.param(
        ["simulate", "--scenario", "steady-drift", "--controller", "autopilot"],
        ["unknown controller 'autopilot'"],
        id="unknown-controller",
    ),
    pytest.param(
        ["simulate", "--scenario", "{malformed.yaml}", "--controller", "static"],
        ["malformed.yaml", "line 3", "malformed YAML"],
        id="malformed-yaml",
    ),
    pytest.param(
        ["simulate", "--scenario", "{unknown-field.yaml}", "--controller", "static"],
        ["unknown-field.yaml", "duration_sec"],
        id="unknown-field",
    ),
    pytest.param(
        ["simulate", "--scenario", "{impossible-slo.yaml}", "--controller", "static"],
        ["impossible-slo.yaml", "checkout", "slo_p99_ms"],
        id="impossible-slo",
    ),
    pytest.param(
        ["bench", "--controllers", "static", "--trace", "{garbage.counts}"],
        ["garbage.counts", "line 2, word 2", "not a request count"],
        id="garbage-trace",
    ),
    pytest.param(
        ["simulate", "--scenario", "steady-drift", "--controller", "static", "--json", "{missing}/r.json"],
        ["--json", "does not exist"],
        id="json-in-missing-dir",
    ),
    pytest.param(
        ["bench", "--scenarios", "steady-drift", "--controllers", "static", "--json", "{missing}/r.json"],
        ["--json", "does not exist"],
        id="bench-json-in-missing-dir",
    ),
    pytest.param(
        ["bench", "--scenarios", "steady-drift", "--seeds", "0"],
        ["--seeds must be at least 1"],
        id="zero-seeds",
    ),
    pytest.param(
        ["bench", "--scenarios", "steady-drift", "--duration", "-1"], ["--duration"], id="negative-duration"
    ),
    pytest.param(["bench", "--scenarios", "steady-drift", "--jobs", "0"], ["--jobs"], id="zero-jobs"),
    pytest.param(
        ["bench", "--scenarios", "steady-drift", "--sweep", "hpa=0.5:0.9:0.1"],
        ["--sweep 'hpa=0.5:0.9:0.1'", "FAMILY.target"],
        id="sweep-without-knob",
    ),
    pytest.param(
        ["bench", "--scenarios", "steady-drift", "--controllers", "hpa@target=2"],
        ["hpa@target=2", "must lie in"],
        id="knob-out-of-range",
    ),
    pytest.param(
        ["bench", "--scenarios", "steady-drift", "--trace-offset", "60"],
        ["--trace-offset needs --trace"],
        id="offset-without-trace",
    ),
    pytest.param(
        ["simulate", "--scenario", "steady-drift", "--controller", "static", "--model-error", "-0.3"],
        ["--model-error must be between 0 and 1", "-0.3"],
        id="negative-model-error",
    ),
    pytest.param(
        ["bench", "--scenarios", "steady-drift", "--controllers", "static", "--model-error", "nan"],
        ["--model-error"],
        id="nan-model-error",
    ),
    pytest.param(
        ["simulate", "--scenario", "{model-error.yaml}", "--controller", "static"],
        ["model-error.yaml", "model_error"],
        id="model-error-in-yaml-too-large",
    ),
    pytest.param(
        ["simulate", "--scenario", "steady-drift", "--controller", "static", "--seed", "-3"],
        ["--seed must be zero or more"],
        id="negative-seed",
    ),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_status_2(
    args: list[str], expected: list[str], bad_files: dict[str, Path], tmp_path: Path
) -> None:
    names = {f"{{{name}}}": str(p) for name, p in bad_files.items()} | {
        "{missing}": str(tmp_path / "missing")
    }
    argv = [next((arg.replace(k, v) for k, v in names.items() if k in arg), arg) for arg in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error: ")
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message
    assert not (tmp_path / "missing").exists()
