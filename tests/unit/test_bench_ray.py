"""`kubeagora bench --executor ray`: a local Ray gives the bench document `--jobs 2` gives, byte for byte.

The Ray test starts a local Ray (about 10-25 s on a 2-core machine). It needs the 'ray' extra, which
`make install` (and so CI) installs; a venv without it skips the test, except under CI, where a
missing Ray is a failure rather than a silent skip.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kubeagora.cli import app

runner = CliRunner()
TIMED_METRICS = ("overhead_us_per_req",)
TIMED_EXTRAS = ("controller_cores",)
"""Measured CPU time: what differs between two runs of the same spec."""


def _without_timings(document: dict[str, Any]) -> bytes:
    document.pop("command")  # names the --json file, which differs
    for run in document["runs"]:
        run["wall_s"] = 0.0
        for name in TIMED_METRICS:
            run["metrics"][name] = 0.0
        for name in TIMED_EXTRAS:
            run["extras"][name] = 0.0
    for scenario in document["summary"].values():
        for summary in scenario.values():
            for name in TIMED_METRICS:
                summary["mean"][name] = 0.0
                summary["ci95"][name] = None
    return json.dumps(document, sort_keys=True).encode()


def _ray_or_skip() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI installs the 'ray' extra (make install); Ray is missing")
        pytest.skip("the 'ray' extra is not installed")


@pytest.mark.slow
def test_ray_gives_the_same_bench_document_as_worker_processes(tmp_path: Path) -> None:
    _ray_or_skip()
    # a sweep (a knob setting), two scenarios (one with a fault) and the multi-agent controller
    args = ["bench", "--scenarios", "steady-drift,node-zone-failure", "--controllers", "hpa,mas",
            "--sweep", "hpa.target=0.6", "--duration", "60"]
    documents = {}
    for name, how in {"jobs": ["--jobs", "2"], "ray": ["--executor", "ray", "--jobs", "2"]}.items():
        out = tmp_path / f"{name}.json"
        result = runner.invoke(app, [*args, *how, "--json", str(out)])
        assert result.exit_code == 0, result.output
        documents[name] = json.loads(out.read_text())
    assert len(documents["ray"]["runs"]) == 2 * 3
    assert any(run["decisions"] for run in documents["ray"]["runs"])  # the controllers acted
    assert _without_timings(documents["ray"]) == _without_timings(documents["jobs"])


def test_ray_address_without_the_ray_executor_is_refused() -> None:
    result = runner.invoke(app, ["bench", "--scenarios", "steady-drift", "--ray-address", "ray://head:10001"])
    assert result.exit_code == 2
    assert "--ray-address needs --executor ray" in result.output


def test_a_missing_ray_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    monkeypatch.delitem(sys.modules, "kubeagora.bench.ray_executor", raising=False)
    result = runner.invoke(app, ["bench", "--scenarios", "steady-drift", "--controllers", "static",
                                 "--duration", "30", "--executor", "ray"])
    assert result.exit_code == 2
    assert "needs the 'ray' extra" in result.output
    assert "pip install 'kubeagora[ray]'" in result.output
