"""What people expect of a CLI: --version, completion, -o json|yaml, validated choices, missing extras named,
a fast --help (no heavy import at startup), and help text that cites only files in the repository."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from kubeagora.bench.explain import Outcome
from kubeagora.cli import TraceFormat, app
from kubeagora.decision.rollout import Stage
from kubeagora.output import OutputFormat
from kubeagora.sim.scenario import builtin_names
from kubeagora.sim.trace import TRACE_FORMATS

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]

HEAVY_MODULES = ("numpy", "scipy", "cvxpy", "pydantic", "matplotlib", "kopf", "aiohttp", "prometheus_client")
"""What `import kubeagora.cli` must not pull in: each costs 0.1-2 s (cvxpy alone 2.35 s) or needs an extra."""
HEAVY_OWN_MODULES = ("kubeagora.sim.scenario", "kubeagora.devcluster.cluster", "kubeagora.devcluster.prometheus",
                     "kubeagora.bench.matrix", "kubeagora.operator.loop", "kubeagora.kubelet.main")
"""Ours, with the same rule: the simulator, the devcluster's process and HTTP code, the operator, the kubelet."""


def test_version_prints_the_installed_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kubeagora {importlib.metadata.version('kubeagora')}"


def test_cli_startup_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from kubeagora.cli import app\n"
        "sys.argv = ['kubeagora', '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY_MODULES!r})))\n"
        f"print(sorted(set(sys.modules) & set({HEAVY_OWN_MODULES!r})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-2:] == ["[]", "[]"]


def _complete(words: str, cword: int) -> list[str]:
    """What bash completion offers, through the same environment protocol the installed script uses."""
    env = os.environ | {"COMP_WORDS": words, "COMP_CWORD": str(cword), "_KUBEAGORA_COMPLETE": "complete_bash"}
    proc = subprocess.run([sys.executable, "-c", "from kubeagora.cli import app; app(prog_name='kubeagora')"],
                          env=env, capture_output=True, text=True, check=False)
    return proc.stdout.split()


def test_shell_completion_is_installed_and_completes_names() -> None:
    # A user's `kubeagora --show-completion` detects the shell from the process tree (shellingham), which
    # under a test runner is whatever started it: typer's own switch makes the shell an explicit argument.
    env = os.environ | {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run([sys.executable, "-c", "from kubeagora.cli import app; app(prog_name='kubeagora')",
                             "--show-completion", "bash"], env=env, capture_output=True, text=True, check=False)
    assert script.returncode == 0, script.stderr
    assert "_KUBEAGORA_COMPLETE=complete_bash" in script.stdout
    assert _complete("kubeagora sim", 1) == ["simulate"]
    assert _complete("kubeagora simulate --controller m", 3) == ["mpc", "mas"]
    assert _complete("kubeagora bench --controllers hpa,ke", 3) == ["hpa,keda"]
    assert set(_complete("kubeagora explain run.json --outcome R", 4)) == {"RolledBack", "Rejected", "Refused"}


def test_explain_outcome_choices_are_the_agent_action_stages_and_refused() -> None:
    assert {o.value for o in Outcome} == {s.value for s in Stage} | {"Refused"}
    assert {f.value for f in TraceFormat} == set(TRACE_FORMATS)


def test_an_invalid_choice_exits_2_naming_the_valid_values(tmp_path: Path) -> None:
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"runs": [{"scenario": "s", "controller": "c", "seed": 1, "decisions": []}]}))
    result = runner.invoke(app, ["explain", str(run_json), "--outcome", "Bogus"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Bogus" in result.stderr
    for outcome in Outcome:
        assert outcome.value in result.stderr
    bad_output = runner.invoke(app, ["scenarios", "-o", "xml"])
    assert bad_output.exit_code == 2
    assert all(name in bad_output.stderr for name in ("'table'", "'json'", "'yaml'"))
    bad_trace_format = runner.invoke(app, ["bench", "--trace", str(run_json), "--trace-format", "csv"])
    assert bad_trace_format.exit_code == 2
    assert all(name in bad_trace_format.stderr for name in ("'csv'", "'counts'", "'timestamps'"))


def test_scenarios_as_json_and_yaml_carry_the_table_rows() -> None:
    as_json = runner.invoke(app, ["scenarios", "-o", "json"])
    assert as_json.exit_code == 0
    rows = json.loads(as_json.stdout)
    assert [row["name"] for row in rows] == builtin_names()
    assert all(set(row) == {"name", "duration_s", "seed", "description"} for row in rows)
    as_yaml = runner.invoke(app, ["scenarios", "--output", "yaml"])
    assert as_yaml.exit_code == 0
    assert yaml.safe_load(as_yaml.stdout) == rows


def _decision_file(tmp_path: Path) -> Path:
    path = tmp_path / "runs.json"
    decisions: list[dict[str, Any]] = [
        {"t_s": 10.0, "kind": "Scale", "service": "web", "replicas": 4, "reason": "p99 above target"},
        {"t_s": 20.0, "kind": "Refused", "reason": "no capacity"},
    ]
    path.write_text(json.dumps({"runs": [{"scenario": "steady-drift", "controller": "hpa", "seed": 3,
                                          "decisions": decisions, "decisions_total": 2}]}))
    return path


def test_explain_as_json_filters_by_outcome(tmp_path: Path) -> None:
    result = runner.invoke(app, ["explain", str(_decision_file(tmp_path)), "--outcome", "Refused", "-o", "json"])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)
    assert (run["scenario"], run["controller"], run["seed"], run["decisions_total"]) == ("steady-drift", "hpa", 3, 2)
    assert run["decisions"] == [{"at_s": 20.0, "agent": "controller", "action": "Refused", "outcome": "Refused",
                                 "why": "no capacity", "twin": ""}]
    table = runner.invoke(app, ["explain", str(_decision_file(tmp_path)), "--outcome", "Applied"])
    assert table.exit_code == 0
    assert "Scale web → 4" in table.stdout
    assert "1 of 2 decisions" in table.stdout


def test_simulate_as_json_prints_the_bench_document_on_stdout_only(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["simulate", "--scenario", "steady-drift", "--controller", "static", "--duration",
                                 "60", "-o", "json", "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # nothing but the document on stdout
    assert document == json.loads(out.read_text())
    assert document["runs"][0]["controller"] == "static"
    assert f"wrote {out}" in result.stderr


def test_devcluster_status_as_json_lists_every_component(tmp_path: Path) -> None:
    result = runner.invoke(app, ["devcluster", "status", "--state-dir", str(tmp_path), "-o", "json"])
    assert result.exit_code == 1  # nothing runs there
    rows = json.loads(result.stdout)
    assert [row["component"] for row in rows] == ["etcd", "kube-apiserver", "kube-controller-manager",
                                                  "kube-scheduler", "mock-kubelet"]
    assert {row["state"] for row in rows[:4]} == {"stopped"}
    assert rows[4]["state"] == "none serving"


@pytest.mark.parametrize(
    ("args", "missing", "extra"),
    [
        (["operator", "run"], "kopf", "operator"),
        (["scheduler-extender"], "aiohttp", "cluster"),
        (["demo"], "kopf", "operator"),
    ],
)
def test_a_missing_extra_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch, args: list[str], missing: str,
                                              extra: str) -> None:
    for name in [m for m in sys.modules if m == missing or m.startswith(f"{missing}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    for name in [m for m in sys.modules if m.startswith(("kubeagora.operator.", "kubeagora.scheduler_plugin.",
                                                         "kubeagora.kubeapi", "kubeagora.bench.cluster_burst",
                                                         "kubeagora.devcluster.stack"))]:
        monkeypatch.delitem(sys.modules, name)  # so the command's imports run again
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert "\n" not in message
    assert f"pip install 'kubeagora[{extra}]'" in message
    assert repr(missing) in message


def _help_texts(command: Any, path: str) -> list[tuple[str, str]]:
    """Every command's and option's help, walking the command tree (typer vendors its own click)."""
    texts = [(path, command.help or "")]
    texts += [(f"{path} {p.name}", getattr(p, "help", None) or "") for p in command.params]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            texts += _help_texts(sub, f"{path} {name}")
    return texts


def test_help_text_cites_no_file_outside_the_repository() -> None:
    texts = _help_texts(typer.main.get_command(app), "kubeagora")
    assert len(texts) > 50
    for where, text in texts:
        assert "DESIGN.md" not in text, where
        assert "../" not in text, where
        for cited in (word.strip("().,`'") for word in text.split() if word.endswith((".md", ".md)", ".md."))):
            assert (REPO / cited).is_file(), f"{where} cites {cited}"


def test_data_output_writes_no_nan() -> None:
    from kubeagora.output import render_data

    data = {"p99_ms": float("nan"), "series": [1.0, float("inf")], "nested": {"x": (2.5, float("-inf"))}}
    assert json.loads(render_data(data, OutputFormat.JSON)) == {"p99_ms": None, "series": [1.0, None],
                                                                "nested": {"x": [2.5, None]}}
    assert yaml.safe_load(render_data(data, OutputFormat.YAML))["series"] == [1.0, None]
