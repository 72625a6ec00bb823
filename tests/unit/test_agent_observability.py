"""Observability: only what changed, the biggest changes first within the budget; alerts always."""

from __future__ import annotations

from tests.unit.observations import advance, observation, web_service

from kubeagora.agents.base import AgentContext
from kubeagora.agents.observability import ObservabilityAgent, ObservabilitySettings, publish_events
from kubeagora.coordination.bus import Bus
from kubeagora.coordination.events import ServiceMetrics, SloAlert


def test_over_budget_only_the_top_changed_services_are_published_and_alerts_always_go_out() -> None:
    agent = ObservabilityAgent(ObservabilitySettings(max_series_per_tick=2))
    services = tuple(web_service(name) for name in ("a", "b", "c", "d"))
    obs = observation(services=services, arrival_rps=100.0, p95_ms=50.0, p99_ms=80.0)
    _, state = agent.decide(obs, agent.initial_state(obs), AgentContext())
    assert len(state.events) == 2
    assert state.suppressed == 2

    _, state = agent.decide(advance(obs, 1.0), state, AgentContext())  # c and d are still unpublished
    assert [e.service for e in state.events] == ["c", "d"]

    # a: +5 % (under the 10 % threshold), b: +50 %, c: +20 %, d: p99 over its 250 ms target
    later = advance(obs, 2.0, arrival_rps=[105.0, 150.0, 120.0, 100.0], p99_ms=[80.0, 80.0, 80.0, 300.0])
    _, state = agent.decide(later, state, AgentContext())
    assert [(type(e).__name__, e.service) for e in state.events] == [
        ("SloAlert", "d"), ("ServiceMetrics", "d"), ("ServiceMetrics", "b")]  # d's p99 moved 275 %, b 50 %
    assert state.suppressed == 1  # c waits for the next tick


def test_the_events_reach_the_bus_alerts_first() -> None:
    agent = ObservabilityAgent()
    obs = observation(arrival_rps=100.0, p95_ms=200.0, p99_ms=300.0)
    _, state = agent.decide(obs, agent.initial_state(obs), AgentContext())
    bus, seen = Bus(), []
    bus.subscribe(object, seen.append)
    publish_events(bus, state)
    bus.drain()

    assert [type(e) for e in seen] == [SloAlert, ServiceMetrics]
