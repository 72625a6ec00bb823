"""The torch-free policy: its file format, its errors, and mas running it (the bench's mas-learned)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kubeagora.cli import app
from kubeagora.controllers.mas import MasController
from kubeagora.controllers.registry import CONTROLLER_NAMES, make_controller
from kubeagora.learn.features import N_ACTIONS, N_FEATURES
from kubeagora.learn.policy import SHIPPED_POLICY, LearnedResidual, PolicyFileError, load_actor, save_actor
from kubeagora.sim.run import simulate
from kubeagora.sim.scenario import compile_scenario, load_scenario

runner = CliRunner()


def constant_policy(path: Path, action: int) -> Path:
    """An actor that always picks `action` (its last layer's bias decides, the weights are zero)."""
    rng = np.random.default_rng(0)
    bias = np.full(N_ACTIONS, -5.0)
    bias[action] = 5.0
    save_actor(path, [(rng.normal(size=(N_FEATURES, 8)), np.zeros(8)), (np.zeros((8, N_ACTIONS)), bias)])
    return path


def test_the_actor_is_two_matrix_products_and_a_tanh(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    layers = [(rng.normal(size=(N_FEATURES, 6)), rng.normal(size=6)), (rng.normal(size=(6, N_ACTIONS)),
                                                                        rng.normal(size=N_ACTIONS))]
    save_actor(tmp_path / "p.npz", layers)
    actor = load_actor(tmp_path / "p.npz")
    x = rng.normal(size=(7, N_FEATURES)).astype(np.float32)
    expected = np.tanh(x @ layers[0][0] + layers[0][1]) @ layers[1][0] + layers[1][1]
    np.testing.assert_allclose(actor.logits(x), expected, rtol=1e-4, atol=1e-4)
    assert list(actor.act(x)) == list(expected.argmax(axis=1))


def test_a_bad_policy_file_is_named_with_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="no such policy file"):
        load_actor(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a policy")
    with pytest.raises(PolicyFileError, match="not a policy file"):
        load_actor(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", features=np.array(["a", "b"]), w0=np.zeros((2, 5)), b0=np.zeros(5))
    with pytest.raises(PolicyFileError, match="trained on features"):
        load_actor(tmp_path / "other.npz")
    save_actor(tmp_path / "narrow.npz", [(np.zeros((N_FEATURES, 4)), np.zeros(4)), (np.zeros((4, 3)), np.zeros(3))])
    with pytest.raises(PolicyFileError, match="actions"):
        load_actor(tmp_path / "narrow.npz")


def test_mas_with_a_policy_that_always_adds_holds_more_replicas_than_mas(tmp_path: Path) -> None:
    model, source = load_scenario("steady-drift")
    scenario = compile_scenario(model, source, duration_s=240, model_error=0.3)
    plain = simulate(scenario, MasController()).metrics
    adding = make_controller("mas-learned", scenario, constant_policy(tmp_path / "up.npz", N_ACTIONS - 1))
    assert adding.name == "mas-learned"
    learned = simulate(scenario, adding).metrics
    assert learned["replica_seconds"] > 1.05 * plain["replica_seconds"]  # type: ignore[operator]


def test_the_shipped_policy_loads_and_is_small_and_mas_learned_runs_only_when_asked_for() -> None:
    assert SHIPPED_POLICY.stat().st_size < 5 * 1024 * 1024
    assert isinstance(LearnedResidual.from_file(SHIPPED_POLICY), LearnedResidual)
    assert "mas-learned" not in CONTROLLER_NAMES


def test_bench_runs_mas_learned_with_a_policy_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    policy = constant_policy(tmp_path / "keep.npz", N_ACTIONS // 2)
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["bench", "--scenarios", "steady-drift", "--controllers", "mas-learned",
                                 "--duration", "60", "--policy", str(policy), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "--policy" in out.read_text()
    result = runner.invoke(app, ["bench", "--scenarios", "steady-drift", "--controllers", "mas-learned",
                                 "--duration", "60", "--policy", str(tmp_path / "nope.npz")])
    assert result.exit_code == 2
    assert "no such policy file" in result.stderr
    result = runner.invoke(app, ["bench", "--scenarios", "steady-drift", "--controllers", "mas",
                                 "--duration", "60", "--policy", str(policy)])
    assert result.exit_code == 2
    assert "only mas-learned runs a policy" in result.stderr


def test_running_a_policy_imports_neither_torch_nor_pettingzoo() -> None:
    code = ("import sys; from kubeagora.controllers.registry import make_controller; import kubeagora.learn.policy; "
            "print(sorted(m for m in ('torch', 'pettingzoo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_operator_runs_mas_with_the_policy_it_is_given_and_refuses_a_bad_file(tmp_path: Path) -> None:
    from kubeagora.operator.loop import LoopSettings, mas_controller

    assert mas_controller(LoopSettings()).planner.residual is None
    policy = constant_policy(tmp_path / "keep.npz", N_ACTIONS // 2)
    assert isinstance(mas_controller(LoopSettings(policy_file=policy)).planner.residual, LearnedResidual)
    result = runner.invoke(app, ["operator", "run", "--policy", str(tmp_path / "nope.npz")])
    assert result.exit_code == 2
    assert "--policy" in result.stderr
    assert "no such policy file" in result.stderr
