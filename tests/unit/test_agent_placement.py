"""Placement: new replicas go to the near, idle node; a replica moves only for a clear gain, once per cooldown."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tests.unit.observations import in_regions, node, observation, with_replicas

from kubeagora.agents.base import AgentContext, Lane
from kubeagora.agents.handoff import SCALE_TARGETS
from kubeagora.agents.placement import PlacementAgent
from kubeagora.model import Migrate, Observation, Place


def three_nodes(replica_on: int, utilisation: list[float]) -> Observation:
    """near-idle and near-busy in the users' region (20 ms), far in the other (80 ms); one web replica."""
    nodes = (node("near-idle"), node("near-busy"), node("far", "region-1"))
    obs = with_replicas(observation(nodes=nodes, arrival_rps=160.0), [(0, replica_on, True)])
    obs = in_regions(obs, ("region-0", "region-1"))
    return replace(obs, node_utilization=np.array(utilisation))


def test_a_new_replica_goes_to_the_near_idle_node_not_the_far_or_the_busy_one() -> None:
    agent = PlacementAgent()
    obs = three_nodes(replica_on=1, utilisation=[0.05, 0.9, 0.0])
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext(extras={SCALE_TARGETS: {"web": 2}}))

    assert [p.action for p in proposals] == [Place("web", "near-idle", proposals[0].reason)]
    assert proposals[0].inputs["network_ms"] == 20.0
    assert "near-idle" in proposals[0].reason
    assert [b.node for b in state.last_bids] == ["near-idle"]


def test_a_distrusted_node_loses_the_bid_it_would_otherwise_win() -> None:
    agent = PlacementAgent()
    obs = three_nodes(replica_on=1, utilisation=[0.05, 0.9, 0.0])
    context = AgentContext(trust={"near-idle": 0.2}, extras={SCALE_TARGETS: {"web": 2}})
    proposals, _ = agent.decide(obs, agent.initial_state(obs), context)

    assert [p.action.node for p in proposals if isinstance(p.action, Place)] == ["near-busy"]


def test_a_replica_far_from_its_users_moves_near_them_once_per_cooldown() -> None:
    agent = PlacementAgent()
    obs = three_nodes(replica_on=2, utilisation=[0.05, 0.9, 0.1])
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext())

    # 80 ms away vs 20 ms: a 60 ms gain, well over the 20 ms margin
    assert [p.action for p in proposals] == [Migrate("web", "far", "near-idle", proposals[0].reason)]
    later, _ = agent.decide(replace(obs, time_s=60.0), state, AgentContext())
    assert later == []  # within the 120 s cooldown


def test_a_replica_does_not_move_for_a_gain_within_the_margin() -> None:
    agent = PlacementAgent()
    # the replica sits on the near node at 30 % utilisation; the other near node idles: a few ms apart
    obs = three_nodes(replica_on=1, utilisation=[0.0, 0.3, 0.0])
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext())

    assert proposals == []


def test_a_move_for_a_service_near_its_latency_target_is_an_slo_repair_else_routine() -> None:
    agent = PlacementAgent()
    healthy = three_nodes(replica_on=2, utilisation=[0.05, 0.9, 0.1])
    web = healthy.services[0]
    assert healthy.p99_ms[0] < 0.9 * web.slo_p99_ms or np.isnan(healthy.p99_ms[0])
    routine, _ = agent.decide(healthy, agent.initial_state(healthy), AgentContext())
    assert [p.lane for p in routine] == [Lane.ROUTINE]
    # the same move while the service's p99 is at 95 % of its target: it competes for the shield's
    # disruption budget ahead of optimisations
    slow = replace(healthy, p99_ms=np.array([0.95 * web.slo_p99_ms]))
    repair, _ = agent.decide(slow, agent.initial_state(slow), AgentContext())
    assert [p.action for p in repair] == [p.action for p in routine]
    assert [p.lane for p in repair] == [Lane.SLO]
