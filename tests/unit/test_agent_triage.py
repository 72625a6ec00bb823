"""Triage: incidents are named and routed; an unknown anomaly, or one left unresolved, goes to a person."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tests.unit.observations import node, observation, with_replicas

from kubeagora.agents.base import AgentContext, Proposal
from kubeagora.agents.handoff import INCIDENTS, PROPOSALS
from kubeagora.agents.triage import IncidentKind, TriageAgent, is_escalation
from kubeagora.coordination.events import Incident
from kubeagora.decision.rollout import Stage, propose, screen
from kubeagora.model import Observation, QuarantineNode, Scale


def zone_down() -> Observation:
    """a and b in region-0-z0 have been silent for 20 s; c in region-0-z1 answers."""
    nodes = (node("a"), node("b"), node("c", zone="region-0-z1"))
    obs = with_replicas(observation(nodes=nodes, arrival_rps=50.0, capacity_rps=480.0, p95_ms=60.0, p99_ms=90.0),
                        [(0, 0, True), (0, 1, True), (0, 2, True)])
    return replace(obs, node_heartbeat_age_s=np.array([20.0, 20.0, 0.0]))


def test_a_zone_outage_goes_to_reliability_and_nobody_is_paged() -> None:
    agent = TriageAgent()
    obs = zone_down()
    handling = Proposal("reliability", QuarantineNode("a"), "silent")
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext(extras={PROPOSALS: [handling]}))

    assert proposals == []
    (incident,) = state.incidents.values()
    assert (incident.kind, incident.subject, incident.specialist) == (IncidentKind.ZONE_OUTAGE, "region-0-z0",
                                                                     "reliability")
    assert incident.handled_by == ("reliability",)


def test_an_unresolved_zone_outage_is_escalated_once_after_three_minutes() -> None:
    agent = TriageAgent()
    obs = zone_down()
    _, state = agent.decide(obs, agent.initial_state(obs), AgentContext())
    proposals, state = agent.decide(replace(obs, time_s=180.0), state, AgentContext())

    assert [p.action.node for p in proposals if isinstance(p.action, QuarantineNode)] == ["a", "b"]
    assert all(is_escalation(p) for p in proposals)
    again, _ = agent.decide(replace(obs, time_s=190.0), state, AgentContext())
    assert again == []


def test_an_unknown_anomaly_is_escalated_after_a_minute_and_waits_for_a_person() -> None:
    agent = TriageAgent()
    # p99 400 ms at 10 % load on healthy nodes: not overload, not a fault
    obs = observation(arrival_rps=16.0, capacity_rps=160.0, p95_ms=300.0, p99_ms=400.0)
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext())
    assert proposals == []  # one window's miss pages nobody yet
    assert [i.kind for i in state.incidents.values()] == [IncidentKind.UNKNOWN]
    proposals, state = agent.decide(replace(obs, time_s=30.0), state, AgentContext())
    assert proposals == []
    proposals, state = agent.decide(replace(obs, time_s=60.0), state, AgentContext())

    (escalation,) = proposals
    assert escalation.action == Scale("web", 2, escalation.reason)
    assert is_escalation(escalation)
    assert "no agent's playbook explains it after 60 s" in escalation.reason
    rollout = screen(propose("r1", proposals, obs), obs.time_s, [], None)
    assert rollout.stage is Stage.AWAITING_APPROVAL


def test_a_burst_the_scaling_agent_answered_pages_nobody_while_its_backlog_drains() -> None:
    """The README's burst: overloaded, scaled, then capacity exceeds the arrivals while the latency
    window still holds the overload (the operator saw this as an unknown anomaly and paged a person)."""
    agent = TriageAgent()
    overloaded = observation(arrival_rps=400.0, capacity_rps=160.0, p95_ms=900.0, p99_ms=2000.0)
    _, state = agent.decide(overloaded, agent.initial_state(overloaded), AgentContext())
    draining = observation(time_s=5.0, arrival_rps=400.0, capacity_rps=640.0, ready=4, p95_ms=700.0,
                           p99_ms=1500.0)
    for t in (5.0, 10.0, 15.0, 20.0):
        proposals, state = agent.decide(replace(draining, time_s=t), state, AgentContext())
        assert proposals == [], f"paged at {t:.0f} s"
    (incident,) = state.incidents.values()
    assert incident.kind is IncidentKind.OVERLOAD
    assert "backlog still drains" in incident.detail
    recovered = replace(draining, time_s=25.0, p95_ms=np.array([80.0]), p99_ms=np.array([120.0]))
    _, state = agent.decide(recovered, state, AgentContext())
    assert not state.incidents


def test_a_marginal_slo_miss_without_a_cause_wakes_nobody() -> None:
    agent = TriageAgent()
    # p99 260 ms of 250 ms at 10 % load: a window's tail noise, not an anomaly
    obs = observation(arrival_rps=16.0, capacity_rps=160.0, p95_ms=140.0, p99_ms=260.0)
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext())
    assert proposals == []
    assert not state.incidents


def test_an_overloaded_service_goes_to_scaling_and_a_strange_bus_incident_to_a_person() -> None:
    agent = TriageAgent()
    obs = observation(arrival_rps=400.0, capacity_rps=160.0, p95_ms=300.0, p99_ms=600.0)
    strange = Incident("disk_smart_warning", "node-0", 0.0, "reallocated sectors rising")
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext(extras={INCIDENTS: [strange]}))

    routes = {(i.kind, i.subject): i.specialist for i in state.incidents.values()}
    assert routes == {(IncidentKind.OVERLOAD, "web"): "scaling", (IncidentKind.UNKNOWN, "node-0"): "human"}
    assert [p.action for p in proposals] == [QuarantineNode("node-0", proposals[0].reason)]
