"""Cost/energy: an idle service is scaled down after a sustained lull, never one near its SLO; cleaner grids win."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tests.unit.observations import in_regions, node, observation, web_service, with_replicas

from kubeagora.agents.base import AgentContext
from kubeagora.agents.cost_energy import CostEnergyAgent
from kubeagora.model import Migrate, Observation, Scale


def two_services(time_s: float) -> Observation:
    """4 Ready replicas each (640 req/s): `idle` at 10 % with a 60 ms p99, `tight` at 10 % with 240 ms."""
    services = (web_service("idle"), web_service("tight"))
    obs = observation(time_s=time_s, services=services, ready=4, arrival_rps=64.0, capacity_rps=640.0,
                      p95_ms=[50.0, 140.0], p99_ms=[60.0, 240.0])
    return replace(obs, node_power_w=np.array([180.0]))


def test_a_service_at_10_percent_is_scaled_down_after_the_lull_lasts_but_not_one_near_its_slo() -> None:
    agent = CostEnergyAgent()
    state = agent.initial_state(two_services(0.0))
    first, state = agent.decide(two_services(0.0), state, AgentContext())
    assert first == []  # a lull is not over-provisioning yet
    proposals, _ = agent.decide(two_services(300.0), state, AgentContext())

    # 64 req/s at 60 % of 160 req/s per replica: one replica
    assert [p.action for p in proposals] == [Scale("idle", 1, proposals[0].reason)]
    # the node's 180 W split by CPU between the two services: 90 W, three quarters of it saved
    assert proposals[0].inputs["power_w"] == 90.0
    assert proposals[0].predicted_effect["power_w"] == -67.5


def test_a_slack_service_moves_a_replica_to_a_much_cleaner_grid_within_its_latency_headroom() -> None:
    agent = CostEnergyAgent()
    obs = observation(nodes=(node("coal"), node("hydro", "region-1")), arrival_rps=20.0, capacity_rps=320.0,
                      p95_ms=50.0, p99_ms=60.0)
    obs = in_regions(with_replicas(obs, [(0, 0, True), (0, 0, True)]), ("region-0", "region-1"),
                     carbon={"region-0": 600.0, "region-1": 30.0})
    proposals, state = agent.decide(obs, agent.initial_state(obs), AgentContext())

    # +60 ms of network (80 vs 20) fits half of the 190 ms p99 headroom
    assert [p.action for p in proposals] == [Migrate("web", "coal", "hydro", proposals[0].reason)]
    again, _ = agent.decide(replace(obs, time_s=60.0), state, AgentContext())
    assert again == []  # one move per cooldown
