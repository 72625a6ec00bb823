"""Knative, Ray Serve and the heuristic on hand-made observations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tests.unit.observations import advance, cpu_node, observation

from kubeagora.controllers.heuristic import HeuristicController
from kubeagora.controllers.knative import KnativeSettings, kpa_scale
from kubeagora.controllers.rayserve import RayServeController, apply_delay, apply_scaling_factor
from kubeagora.model import Place, Scale

KPA = KnativeSettings()


def test_kpa_panics_on_a_3x_spike_and_scales_on_the_panic_window() -> None:
    # 2 pods at the 7-request target; the last 6 s carried 3× that: ceil(42 / 7) = 6 pods, 6 / 2 ≥ 200 %
    decision = kpa_scale(
        stable_concurrency=14.0,
        panic_concurrency=42.0,
        ready_pods=2,
        target=7.0,
        now_s=100.0,
        panic_since_s=None,
        max_panic_pods=0,
        cfg=KPA,
    )
    assert decision.panic_since_s == 100.0
    assert decision.desired == 6


def test_kpa_does_not_scale_down_while_panicking() -> None:
    calm = kpa_scale(
        stable_concurrency=14.0,
        panic_concurrency=7.0,
        ready_pods=6,
        target=7.0,
        now_s=130.0,
        panic_since_s=100.0,
        max_panic_pods=6,
        cfg=KPA,
    )
    assert calm.desired == 6
    # a stable window (60 s) after the last trigger, panic ends and the stable recommendation rules
    later = kpa_scale(
        stable_concurrency=14.0,
        panic_concurrency=7.0,
        ready_pods=6,
        target=7.0,
        now_s=161.0,
        panic_since_s=100.0,
        max_panic_pods=6,
        cfg=KPA,
    )
    assert later.panic_since_s is None
    assert later.desired == 3  # ceil(14 / 7) = 2, but max-scale-down-rate 2 keeps at least 6 / 2


def test_kpa_stable_mode_without_a_spike() -> None:
    decision = kpa_scale(
        stable_concurrency=20.0,
        panic_concurrency=22.0,
        ready_pods=3,
        target=7.0,
        now_s=10.0,
        panic_since_s=None,
        max_panic_pods=0,
        cfg=KPA,
    )
    assert decision.panic_since_s is None
    assert decision.desired == 3  # ceil(20 / 7)


def test_rayserve_scales_up_only_after_30_s_of_agreeing_decisions() -> None:
    ray = RayServeController()
    obs = observation(ready=2, queue_length=8.0)  # 8 ongoing over 2 replicas, target 2 each: wants 4
    state = ray.initial_state(obs)
    scaled: list[tuple[float, int]] = []
    for _ in range(40):
        obs = advance(obs, 1.0)
        actions, state = ray.decide(obs, state)
        scaled += [(obs.time_s, a.replicas) for a in actions if isinstance(a, Scale)]
    # the decision counter must exceed 30 periods of 1 s: the 31st agreeing decision acts
    assert scaled[0] == (31.0, 4)


def test_rayserve_delay_and_factor_pieces() -> None:
    assert apply_scaling_factor(4.0, 2, 1.0, 1.0) == 4
    assert apply_scaling_factor(0.9, 2, 1.0, 0.1) == 1  # a stuck downscale still moves by one
    assert apply_delay(1, 3, counter=-600, upscale_periods=30, downscale_periods=600) == (1, 0)
    assert apply_delay(1, 3, counter=-599, upscale_periods=30, downscale_periods=600) == (3, -600)
    assert apply_delay(5, 3, counter=-10, upscale_periods=30, downscale_periods=600) == (3, 1)


def test_heuristic_packs_a_new_replica_on_the_fuller_node() -> None:
    start = observation(ready=2, nodes=(cpu_node("roomy", 32.0), cpu_node("fuller", 32.0)))
    heuristic = HeuristicController()
    state = heuristic.initial_state(start)
    # 90 % of the 2 pods' request over 10 s; the second node already has 20 of 32 cores allocated
    obs = advance(start, 10.0, busy_core_seconds_total=0.9 * 2 * 0.5 * 10)
    obs = replace(obs, node_cpu_allocated=np.array([1.0, 20.0]))
    actions, _ = heuristic.decide(obs, state)
    # ceil(2 × 0.9 / 0.7) = 3: one more replica, on the most-allocated node that fits
    assert [(type(a), a.service, getattr(a, "node", None)) for a in actions] == [(Place, "web", "fuller")]


def test_heuristic_scales_in_below_30_percent() -> None:
    start = observation(ready=3)
    heuristic = HeuristicController()
    state = heuristic.initial_state(start)
    obs = advance(start, 10.0, busy_core_seconds_total=0.2 * 3 * 0.5 * 10)
    actions, _ = heuristic.decide(obs, state)
    assert [(a.service, a.replicas) for a in actions if isinstance(a, Scale)] == [("web", 2)]
