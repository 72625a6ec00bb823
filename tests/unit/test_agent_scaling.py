"""Scaling: set-points from the MPC or a forecast; scale-ups fast (in the SLO lane when at risk), scale-downs slow."""

from __future__ import annotations

import numpy as np
from tests.unit.observations import observation

from kubeagora.agents.base import AgentContext, Lane
from kubeagora.agents.handoff import REPLICA_SETPOINTS, scale_targets_from
from kubeagora.agents.scaling import ScalingAgent, ScalingSettings
from kubeagora.model import Observation, Scale, SetConcurrency


def web(ready: int, arrival_rps: float, p99_ms: float = 100.0) -> Observation:
    # one web replica serves 160 req/s flat out (4 slots × 1000 / 25 ms)
    return observation(ready=ready, arrival_rps=arrival_rps, capacity_rps=160.0 * ready, p95_ms=p99_ms * 0.8,
                       p99_ms=p99_ms)


def test_an_overloaded_service_scales_up_in_the_slo_lane() -> None:
    agent = ScalingAgent()
    obs = web(ready=1, arrival_rps=400.0, p99_ms=400.0)
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext())

    # 400 req/s at 70 % of 160 req/s = 112 req/s per replica: ceil(3.57) = 4
    (scale,) = proposals  # no concurrency boost by default: a CPU-bound service only time-shares its cores
    assert scale.action == Scale("web", 4, scale.reason)
    assert scale.lane is Lane.SLO
    assert "400 req/s" in scale.reason
    assert scale_targets_from(proposals) == {"web": 4}


def test_an_io_bound_service_widens_its_slots_while_replicas_start() -> None:
    agent = ScalingAgent(ScalingSettings(concurrency_boost_factor=2.0))
    obs = web(ready=1, arrival_rps=400.0, p99_ms=400.0)
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext())
    concurrency = proposals[1]
    assert concurrency.action == SetConcurrency("web", 8, concurrency.reason)


def test_the_mpc_set_points_win_over_the_fallback_as_an_array_or_a_function() -> None:
    agent = ScalingAgent()
    obs = web(ready=1, arrival_rps=50.0)
    for given in (np.array([3]), lambda _obs: np.array([3])):
        proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext(extras={REPLICA_SETPOINTS: given}))
        assert [p.action.replicas for p in proposals if isinstance(p.action, Scale)] == [3]
        assert proposals[0].inputs["from_mpc"] == 1.0
        assert proposals[0].lane is Lane.ROUTINE  # 50 of 160 req/s at a 100 ms p99: no risk


def test_the_upper_forecast_sets_the_target_before_the_load_arrives() -> None:
    agent = ScalingAgent()
    obs = web(ready=1, arrival_rps=100.0)
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext(forecast_rps=np.array([[100.0, 300.0]])))

    assert [p.action.replicas for p in proposals if isinstance(p.action, Scale)] == [3]  # ceil(300 / 112)


def test_a_scale_down_waits_for_the_stabilisation_window() -> None:
    agent = ScalingAgent()
    obs = web(ready=4, arrival_rps=50.0)
    state = agent.initial_state(obs)
    now, state = agent.decide(obs, state, AgentContext())
    assert now == []
    later, _ = agent.decide(observation(time_s=121.0, ready=4, arrival_rps=50.0, capacity_rps=640.0,
                                        p95_ms=80.0, p99_ms=100.0), state, AgentContext())
    assert [p.action.replicas for p in later] == [1]


def test_no_scale_down_while_the_slo_is_at_risk() -> None:
    agent = ScalingAgent()
    obs = observation(time_s=0.0, ready=4, arrival_rps=50.0, capacity_rps=640.0, p95_ms=100.0, p99_ms=240.0)
    state = agent.initial_state(obs)
    _, state = agent.decide(obs, state, AgentContext())
    later = observation(time_s=200.0, ready=4, arrival_rps=50.0, capacity_rps=640.0, p95_ms=100.0, p99_ms=240.0)
    proposals, _ = agent.decide(later, state, AgentContext())

    assert proposals == []  # p99 at 96 % of its 250 ms target
