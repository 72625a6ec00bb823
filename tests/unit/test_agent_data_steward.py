"""Data steward: resident services stay in their regions; misplaced replicas are moved back."""

from __future__ import annotations

from tests.unit.observations import in_regions, node, observation, web_service, with_replicas

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.data_steward import DataStewardAgent, veto_residency, violates_residency
from kubeagora.model import Migrate, Observation, Place, Scale


def resident_cluster() -> Observation:
    """`eu` may run only in region-0, yet one of its two replicas is on a region-1 node."""
    eu = web_service("eu", allowed_regions=("region-0",))
    nodes = (node("home"), node("abroad", "region-1"))
    obs = with_replicas(observation(services=(eu,), nodes=nodes, arrival_rps=50.0), [(0, 0, True), (0, 1, True)])
    return in_regions(obs, ("region-0", "region-1"))


def test_a_resident_service_replica_in_the_wrong_region_is_moved_back() -> None:
    agent = DataStewardAgent()
    obs = resident_cluster()
    proposals, _ = agent.decide(obs, agent.initial_state(obs), AgentContext())

    assert [p.action for p in proposals] == [Migrate("eu", "abroad", "home", proposals[0].reason)]
    assert proposals[0].lane is Lane.INCIDENT
    assert "region-1" in proposals[0].reason


def test_residency_flags_a_move_out_of_the_allowed_regions_and_nothing_else() -> None:
    obs = resident_cluster()
    assert violates_residency(obs, Place("eu", "abroad")) == "eu may run only in region-0; abroad is in region-1"
    assert violates_residency(obs, Migrate("eu", "abroad", "home")) is None
    assert violates_residency(obs, Scale("eu", 5)) is None

    out = Proposal("placement", Place("eu", "abroad"), "cheaper")
    home = Proposal("placement", Place("eu", "home"), "near")
    kept, vetoed = veto_residency(obs, [out, home])
    assert kept == [home]
    assert [(p, why.startswith("eu may run only")) for p, why in vetoed] == [(out, True)]
