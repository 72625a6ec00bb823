"""Scheduler: under overload that no scale-up can fix in time, the low-priority service is shed, never the high."""

from __future__ import annotations

import pytest
from tests.unit.observations import observation, web_service

from kubeagora.agents.base import AgentContext, Lane
from kubeagora.agents.scheduler import SchedulerAgent
from kubeagora.model import Observation, ShedLoad


def overloaded(arrival_rps: float = 400.0, p99_ms: float = 600.0) -> Observation:
    """`checkout` (priority 3) and `recommend` (priority 1), one replica each: 160 req/s Ready capacity."""
    services = (web_service("checkout", priority_weight=3.0), web_service("recommend", priority_weight=1.0))
    return observation(services=services, arrival_rps=arrival_rps, capacity_rps=160.0, p95_ms=0.6 * p99_ms,
                       p99_ms=p99_ms)


def test_the_low_priority_service_is_shed_and_the_high_priority_one_is_not() -> None:
    agent = SchedulerAgent()
    obs = overloaded()
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext())

    # a CPU replica needs 8 s to start; admit 90 % of 160 req/s out of 400: reject 1 − 144/400 = 64 %
    assert [p.action.service for p in proposals] == ["recommend"]
    shed = proposals[0]
    assert isinstance(shed.action, ShedLoad)
    assert shed.action.fraction == pytest.approx(0.64)
    assert shed.lane is Lane.SLO
    assert state.shed_fraction == {"recommend": pytest.approx(0.64)}


def test_a_service_within_its_slo_is_never_shed() -> None:
    agent = SchedulerAgent()
    obs = overloaded(p99_ms=200.0)
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext())

    assert proposals == []


def test_the_shed_is_lifted_when_capacity_is_back() -> None:
    agent = SchedulerAgent()
    obs = overloaded()
    _, state = agent.decide(obs, agent.initial_state(obs), AgentContext())
    recovered = observation(services=obs.services, arrival_rps=400.0, capacity_rps=640.0, p95_ms=90.0, p99_ms=120.0)
    proposals, state = agent.decide(recovered, state, AgentContext())

    assert [p.action for p in proposals] == [ShedLoad("recommend", 0.0, proposals[0].reason)]
    assert state.shed_fraction == {}
