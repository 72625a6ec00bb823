"""The learning environment: PettingZoo's own API test, and that keeping the plan is mas exactly."""

from __future__ import annotations

import numpy as np
import pytest

from kubeagora.controllers.mas import MasController
from kubeagora.learn.features import LEVELS, N_ACTIONS, apply_levels, level_towards, step_replicas
from kubeagora.model import Place, Scale
from kubeagora.sim.run import simulate

pettingzoo_test = pytest.importorskip("pettingzoo.test")  # the learn extra; CI installs it (see test_learn_extra)
from kubeagora.learn.env import ResidualEnv, RewardWeights, expert_replicas  # noqa: E402


def test_the_environment_passes_the_pettingzoo_parallel_api_test() -> None:
    env = ResidualEnv("steady-drift", seeds=(1000,), duration_s=90.0)
    pettingzoo_test.parallel_api_test(env, num_cycles=8)


def test_keeping_the_plan_is_mas_itself_step_for_step() -> None:
    env = ResidualEnv("burst-hotspot", seeds=(1000,), duration_s=150.0)
    env.reset(seed=0)
    decisions = 0
    while env.agents:
        _, rewards, _, _, _ = env.step(dict.fromkeys(env.agents, N_ACTIONS // 2))
        decisions += 1
        assert all(r <= 0 for r in rewards.values())
    assert decisions == 10  # mas first ticks at 5 s and re-plans every third tick: 5 s, 20 s, …, 140 s
    plain = simulate(env.compiled, MasController()).metrics
    learned = env.engine.recorder.metrics(env.compiled.duration_s, 0.0, None)  # type: ignore[union-attr]
    for key in ("slo_violation_pct", "replica_seconds", "p99_ms", "throughput_rps"):
        assert learned[key] == plain[key], key


def test_cutting_every_set_point_saves_replicas_and_the_reward_counts_violations_change_and_cuts() -> None:
    def episode(action: int) -> tuple[ResidualEnv, list[tuple[float, float]]]:
        weights = RewardWeights(cost=0.0, change=1.0, cut=0.5)
        env = ResidualEnv("steady-drift", seeds=(1000,), duration_s=240.0, reward=weights)
        env.reset(seed=0)
        paid: list[tuple[float, float]] = []
        while env.agents:
            _, rewards, _, _, infos = env.step(dict.fromkeys(env.agents, action))
            paid += [(rewards[a], infos[a]["violating_share"]) for a in rewards]
        return env, paid

    kept, kept_paid = episode(N_ACTIONS // 2)
    cut, cut_paid = episode(0)
    assert cut.episode_metrics()["replica_seconds"] < 0.95 * kept.episode_metrics()["replica_seconds"]
    assert all(r == pytest.approx(-share) for r, share in kept_paid)
    assert all(r == pytest.approx(-share - 2.0 - 1.0) for r, share in cut_paid)  # two levels below the plan


def test_the_teacher_labels_each_agent_with_the_level_nearest_its_replicas() -> None:
    env = ResidualEnv("steady-drift", seeds=(1000,), duration_s=60.0, expert=True)
    _, infos = env.reset(seed=0)
    labels = [info["expert_action"] for info in infos.values()]
    assert len(labels) == len(env.possible_agents)
    assert all(0 <= a < N_ACTIONS for a in labels)


def test_levels_move_the_plan_by_a_tenth_of_it_and_labels_invert_them() -> None:
    planned = np.array([1, 5, 30, 100])
    assert list(step_replicas(planned)) == [1, 1, 3, 10]
    assert list(apply_levels(planned, np.array([2, -2, 1, -1]))) == [3, 3, 33, 90]
    for level in LEVELS:
        wanted = apply_levels(planned, np.full(4, level))
        assert list(level_towards(planned, wanted)) == [level - LEVELS[0]] * 4
    assert list(level_towards(planned, planned + 1000)) == [N_ACTIONS - 1] * 4


def test_expert_replicas_count_places_and_take_scales() -> None:
    env = ResidualEnv("steady-drift", seeds=(1000,), duration_s=60.0)
    env.reset(seed=0)
    obs = env.engine.observe()  # type: ignore[union-attr]
    first, second = obs.services[0].name, obs.services[1].name
    wanted = expert_replicas(obs, [Place(first, obs.nodes[0].name), Place(first, obs.nodes[1].name),
                                   Scale(second, 1)])
    assert wanted[0] == obs.desired_replicas[0] + 2
    assert wanted[1] == 1
    assert (wanted[2:] == obs.desired_replicas[2:]).all()
