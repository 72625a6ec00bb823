"""The HPA and KEDA baselines on hand-made observations: the numbers a reader can check by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tests.unit.observations import advance, observation, web_service

from kubeagora.controllers.hpa import HpaController
from kubeagora.controllers.hpa_behavior import resource_replicas
from kubeagora.controllers.keda import KedaController
from kubeagora.model import Action, Observation, Scale

REQUEST_CORES = 0.5  # web_service's cpu_request


def run_hpa(
    start: Observation,
    utilisation_of_request: float,
    seconds: int,
    controller: HpaController | None = None,
    state: object = None,
) -> list[tuple[float, Sequence[Action]]]:
    """Feed the HPA one observation a second while the ready pods burn `utilisation` × request."""
    hpa = controller or HpaController()
    state = hpa.initial_state(start) if state is None else state
    obs, acted = start, []
    for _ in range(seconds):
        burn = utilisation_of_request * int(obs.ready_replicas[0]) * REQUEST_CORES
        obs = advance(obs, 1.0, busy_core_seconds_total=obs.busy_core_seconds_total + burn)
        actions, state = hpa.decide(obs, state)
        if actions:
            acted.append((obs.time_s, actions))
    return acted


def scaled_to(acted: list[tuple[float, Sequence[Action]]]) -> list[int]:
    return [a.replicas for _, actions in acted for a in actions if isinstance(a, Scale)]


def test_160_percent_of_target_on_4_pods_asks_for_7() -> None:
    # utilisation 128 % of request = 160 % of the 80 % target: ceil(4 × 1.6) = 7, inside max(+100 %, +4)
    acted = run_hpa(observation(ready=4), 1.28, 45)
    assert scaled_to(acted)[0] == 7


def test_scale_up_is_limited_to_double_or_plus_4_per_period() -> None:
    # 300 % of target would be ceil(4 × 3) = 12; the default policies allow max(4 × 2, 4 + 4) = 8
    acted = run_hpa(observation(ready=4), 2.4, 45)
    assert scaled_to(acted)[0] == 8


def test_85_percent_is_within_tolerance_of_80() -> None:
    # 85 / 80 = 1.0625, within the 0.1 tolerance: nothing happens
    assert run_hpa(observation(ready=4), 0.85, 120) == []


def test_first_decision_waits_for_the_metrics_pipeline() -> None:
    # the usage window is [t − 28 s, t − 13 s]: the first sync with two scrapes behind it is at 30 s
    acted = run_hpa(observation(ready=4), 2.4, 45)
    assert acted[0][0] == 30.0


def test_scale_down_waits_for_the_300_s_stabilization_window() -> None:
    hpa = HpaController()
    start = observation(ready=10)
    state = hpa.initial_state(start)
    busy = 0.0
    obs = start
    acted: list[tuple[float, int]] = []
    for second in range(1, 500):
        utilisation = 0.8 if second <= 60 else 0.4  # on target, then half of it: the raw recommendation is 5
        busy += utilisation * 10 * REQUEST_CORES
        obs = advance(obs, 1.0, busy_core_seconds_total=busy)
        actions, state = hpa.decide(obs, state)
        acted += [(obs.time_s, a.replicas) for a in actions if isinstance(a, Scale)]
    assert acted, "the HPA never scaled down"
    first_time, replicas = acted[0]
    # the drop reaches the HPA ~28 s after it happens; the max over the last 300 s holds 10 until then
    assert first_time >= 60 + 300
    assert replicas == 5


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    # 4 ready pods at 150 % of target would ask for 6, but 4 more are still starting: counted at 0 %
    # the ratio becomes 0.75 < 1, a reversal, so the HPA waits
    assert resource_replicas(current=8, ready_with_metrics=4, unready=4, usage_ratio=1.5) == 8
    assert resource_replicas(current=4, ready_with_metrics=4, unready=0, usage_ratio=1.5) == 6


def test_unready_pods_are_ignored_on_scale_down() -> None:
    # half of target over 4 ready pods: ceil(0.5 × 4) = 2, the 4 starting pods do not change that
    assert resource_replicas(current=8, ready_with_metrics=4, unready=4, usage_ratio=0.5) == 2


def test_keda_activates_from_zero_at_its_polling_interval() -> None:
    keda = KedaController()
    obs = observation(ready=0, desired_replicas=0)
    state = keda.initial_state(obs)
    decided: list[tuple[float, int]] = []
    for _ in range(40):
        obs = advance(obs, 1.0, arrived_total=obs.arrived_total + 5.0)
        actions, state = keda.decide(obs, state)
        decided += [(obs.time_s, a.replicas) for a in actions if isinstance(a, Scale)]
    assert decided == [(30.0, 1)]


def test_keda_scales_to_zero_only_after_the_cooldown() -> None:
    keda = KedaController()
    obs = observation(ready=1, services=(web_service(min_replicas=0),))
    state = keda.initial_state(obs)
    decided: list[tuple[float, int]] = []
    for _ in range(400):
        obs = advance(obs, 1.0)  # no traffic at all
        actions, state = keda.decide(obs, state)
        decided += [(obs.time_s, a.replicas) for a in actions if isinstance(a, Scale)]
    assert decided[0] == (300.0, 0)  # the hand-made cluster does not follow, so KEDA repeats itself


def test_keda_target_is_70_percent_of_a_replicas_capacity() -> None:
    state = KedaController().initial_state(observation())
    # web: 4 slots × 1000 / 25 ms = 160 req/s flat out
    assert np.allclose(state.target_rps_per_replica, [112.0])
