"""Training (the learn extra): a tiny run end to end, resume, numpy inference against torch, the CLI.

CI installs the learn extra (Makefile `install`) and sets KUBEAGORA_REQUIRE_LEARN=1, so there these
tests run; in a checkout without torch they skip, and `test_the_learn_extra_is_installed_where_required`
fails CI if the skip ever happens there.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kubeagora.cli import app
from kubeagora.learn.features import N_FEATURES
from kubeagora.learn.policy import load_actor

runner = CliRunner()


def test_the_learn_extra_is_installed_where_required() -> None:
    if os.environ.get("KUBEAGORA_REQUIRE_LEARN") != "1":
        pytest.skip("KUBEAGORA_REQUIRE_LEARN is not set (CI sets it)")
    import pettingzoo  # noqa: F401
    import torch  # noqa: F401


torch = pytest.importorskip("torch")
from kubeagora.learn.mappo import Learner, Rollout, TrainArgs, add_labels, label_weights, train  # noqa: E402

TINY = TrainArgs(scenarios=("steady-drift",), duration_s=75.0, bc_rounds=1, dagger_rounds=1, ppo_iterations=1,
                 bc_epochs=3, minibatch=64)


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "train.csv").open() as f:
        return list(csv.DictReader(f))


def test_a_tiny_run_clones_then_trains_and_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    policy = train(whole, TINY)
    assert [r["phase"] for r in rows(whole)] == ["bc", "dagger", "mappo"]
    assert int(rows(whole)[0]["dataset"]) > 0  # the clairvoyant planner labelled the first episodes
    load_actor(policy)

    class Interrupted(Exception):
        pass

    def stop_after_cloning(done: int, total: int, what: str) -> None:
        if done == 1:
            raise Interrupted

    broken = tmp_path / "broken"
    with pytest.raises(Interrupted):
        train(broken, TINY, progress=stop_after_cloning)
    assert [r["phase"] for r in rows(broken)] == ["bc"]
    train(broken, resume=True)
    assert [r["phase"] for r in rows(broken)] == ["bc", "dagger", "mappo"]
    a, b = load_actor(whole / "policy.npz"), load_actor(broken / "policy.npz")
    for (wa, ba), (wb, bb) in zip(a.layers, b.layers, strict=True):
        np.testing.assert_allclose(wa, wb, atol=1e-5)
        np.testing.assert_allclose(ba, bb, atol=1e-5)


def test_numpy_inference_matches_the_torch_actor(tmp_path: Path) -> None:
    learner = Learner.new(TrainArgs(seed=3))
    with torch.no_grad():
        for p in learner.actor.parameters():
            p.normal_()
    learner.export(tmp_path / "p.npz")
    x = np.random.default_rng(0).normal(size=(1000, N_FEATURES)).astype(np.float32)
    with torch.no_grad():
        expected = learner.actor(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(load_actor(tmp_path / "p.npz").logits(x), expected, rtol=1e-4, atol=1e-4)


def test_train_cli_writes_the_policy_and_names_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--out", str(out), "--scenarios", "steady-drift", "--duration", "45",
                                 "--bc-rounds", "1", "--dagger-rounds", "0", "--iterations", "0", "--bc-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "policy.npz").is_file()
    assert (out / "checkpoint.pt").is_file()
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--scenarios", "no-such-scenario"])
    assert result.exit_code == 2
    assert "no-such-scenario" in result.stderr
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "empty"), "--resume"])
    assert result.exit_code == 2
    assert "no checkpoint.pt" in result.stderr


def test_the_clone_is_taught_the_planners_adds_and_its_cuts_only_when_asked() -> None:
    labels = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    features = np.zeros((2, 5, N_FEATURES), dtype=np.float32)
    rollout = Rollout(features=[features], critic_in=[], actions=[], log_probs=[], values=[], rewards=[],
                      expert=[labels], metrics=[])
    for cuts, expected in ((False, [2, 2, 2, 3, 4, 4, 3, 2, 2, 2]), (True, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0])):
        learner = Learner.new(TrainArgs(teacher_cuts=cuts))
        add_labels(learner, rollout)
        assert np.concatenate(learner.data_labels).tolist() == expected


def test_cloning_weighs_the_planners_adds_as_asked() -> None:
    assert label_weights(TrainArgs(add_weight=3.0)).tolist() == [1.0, 1.0, 1.0, 3.0, 3.0]
