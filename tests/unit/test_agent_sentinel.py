"""Sentinel: contradictions cost trust; a node that keeps contradicting itself is quarantined."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tests.unit.observations import advance, node, observation, with_replicas

from kubeagora.agents.base import AgentContext, Lane
from kubeagora.agents.handoff import BIDS, ROLLED_BACK_BY_AGENT
from kubeagora.agents.sentinel import SentinelAgent, trust_scores
from kubeagora.coordination.contract_net import NodeBid
from kubeagora.model import LiftQuarantine, Observation, QuarantineNode


def two_nodes() -> Observation:
    obs = observation(nodes=(node("honest"), node("liar")))
    return with_replicas(obs, [(0, 0, True), (0, 1, True)])


def test_a_node_ready_with_a_60_s_old_heartbeat_is_distrusted_and_then_quarantined() -> None:
    agent = SentinelAgent()
    obs = replace(two_nodes(), node_heartbeat_age_s=np.array([1.0, 60.0]))
    state = agent.initial_state(obs)
    first, state = agent.decide(advance(obs, 1.0), state, AgentContext())

    assert trust_scores(state) == {"liar": pytest.approx(0.6)}
    assert first == []  # one contradiction is not yet a quarantine
    second, state = agent.decide(advance(obs, 2.0), state, AgentContext())
    assert [p.action for p in second] == [QuarantineNode("liar", second[0].reason)]
    assert second[0].lane is Lane.INCIDENT
    assert "60 s old heartbeat" in second[0].reason


def test_a_busy_node_whose_services_served_nothing_loses_trust() -> None:
    agent = SentinelAgent()
    obs = two_nodes()
    state = agent.initial_state(obs)
    # ten seconds later: nothing served, yet the second node claims 90 % utilisation
    _, state = agent.decide(advance(obs, 10.0, node_utilization=[0.05, 0.9]), state, AgentContext())

    assert trust_scores(state) == {"liar": pytest.approx(0.8)}
    assert "served nothing" in state.findings[0]


def bid(name: str, index: int, cost_ms: float) -> NodeBid:
    return NodeBid(index, name, True, "", 0.0, 0.0, cost_ms, 0.0, 1.0, 0.0, cost_ms)


def test_an_implausibly_cheap_bid_and_a_rolled_back_agent_lose_trust() -> None:
    agent = SentinelAgent()
    obs = two_nodes()
    bids = [bid("a", 0, 20.0), bid("b", 1, 21.0), bid("c", 2, 22.0), bid("d", 3, 0.5)]
    context = AgentContext(extras={BIDS: bids, ROLLED_BACK_BY_AGENT: {"placement": 1}})
    _, state = agent.decide(advance(obs, 1.0), agent.initial_state(obs), context)

    assert trust_scores(state) == {"d": pytest.approx(0.8), "placement": pytest.approx(0.8)}


def test_a_quarantine_is_lifted_only_after_trust_recovers_and_a_clean_spell_with_hysteresis() -> None:
    agent = SentinelAgent()
    obs = replace(two_nodes(), node_heartbeat_age_s=np.array([1.0, 60.0]))
    state = agent.initial_state(obs)
    for t in (1.0, 2.0):  # two findings: trust 0.2, quarantined
        _, state = agent.decide(advance(obs, t), state, AgentContext())
    quarantined = replace(obs, node_heartbeat_age_s=np.array([1.0, 1.0]), node_quarantined=np.array([False, True]))

    def lifts(t: float) -> list[LiftQuarantine]:
        nonlocal state
        out, state = agent.decide(advance(quarantined, t), state, AgentContext())
        return [p.action for p in out if isinstance(p.action, LiftQuarantine)]

    assert lifts(300.0) == []  # trust 0.2 + 0.002/s × 298 s ≈ 0.8, but only 298 s clean
    assert trust_scores(state)["liar"] < 0.8
    assert lifts(601.0) == []  # trust back at 0.8 or more, 599 s clean: not yet
    (lift,) = lifts(603.0)
    assert lift.node == "liar"
    # a sentinel that just started (its scores lost) waits its own clean spell before lifting
    fresh = agent.initial_state(advance(quarantined, 700.0))
    out, _ = agent.decide(advance(quarantined, 701.0), fresh, AgentContext())
    assert not [p for p in out if isinstance(p.action, LiftQuarantine)]
    # a node that is not Ready is never brought back
    down = replace(quarantined, node_ready=np.array([True, False]))
    out, _ = agent.decide(advance(down, 610.0), state, AgentContext())
    assert not [p for p in out if isinstance(p.action, LiftQuarantine)]
