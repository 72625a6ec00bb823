"""All nine agents on the simulator's own Observations, chained through the hand-off keys, through a node loss.

Not a controller (the MAS coordinates, shields and rolls out): this checks that every agent reads a real
snapshot, that every proposal names things that exist and says why, and that the engine accepts them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tests.unit.sim_helpers import small_scenario

from kubeagora.agents.base import AgentContext, Proposal
from kubeagora.agents.cost_energy import CostEnergyAgent
from kubeagora.agents.data_steward import DataStewardAgent, veto_residency
from kubeagora.agents.handoff import BIDS, PROPOSALS, SCALE_TARGETS, scale_targets_from
from kubeagora.agents.observability import ObservabilityAgent
from kubeagora.agents.placement import PlacementAgent
from kubeagora.agents.reliability import ReliabilityAgent
from kubeagora.agents.scaling import ScalingAgent
from kubeagora.agents.scheduler import SchedulerAgent
from kubeagora.agents.sentinel import SentinelAgent, trust_scores
from kubeagora.agents.triage import TriageAgent
from kubeagora.model import Place, QuarantineNode, Scale
from kubeagora.sim.engine import Engine


def test_every_agent_runs_on_engine_observations_and_reliability_cuts_off_a_lost_node_within_seconds() -> None:
    sc = small_scenario(duration_s=120, total_rps=600, faults=[{"at_s": 20, "kind": "node-termination"}])
    engine = Engine(sc)
    obs = engine.observe()
    sentinel, scaling, placement = SentinelAgent(), ScalingAgent(), PlacementAgent()
    others: list[Any] = [ReliabilityAgent(), DataStewardAgent(), SchedulerAgent(), CostEnergyAgent(),
                         ObservabilityAgent()]
    triage = TriageAgent()
    states: dict[str, Any] = {a.name: a.initial_state(obs) for a in [sentinel, scaling, placement, *others, triage]}
    quarantined_at: float | None = None
    for _ in range(60):
        engine.step()
        obs = engine.observe()
        proposals: list[Proposal] = []
        sentinel_proposals, states["sentinel"] = sentinel.decide(
            obs, states["sentinel"], AgentContext(extras={BIDS: states["placement"].last_bids}))
        context = AgentContext(trust=trust_scores(states["sentinel"]))
        proposals += sentinel_proposals
        scaled, states["scaling"] = scaling.decide(obs, states["scaling"], context)
        handoff = AgentContext(trust=context.trust, extras={SCALE_TARGETS: scale_targets_from(scaled)})
        placed, states["placement"] = placement.decide(obs, states["placement"], handoff)
        placed_services = {p.action.service for p in placed if isinstance(p.action, Place)}
        # the Places carry the scale-ups they place; enacting both would double them
        proposals += [p for p in scaled if not (isinstance(p.action, Scale) and p.action.service in placed_services)]
        proposals += placed
        for agent in others:
            made, states[agent.name] = agent.decide(obs, states[agent.name], context)
            proposals += made
        escalations, states["triage"] = triage.decide(obs, states["triage"],
                                                      AgentContext(extras={PROPOSALS: proposals}))
        kept, vetoed = veto_residency(obs, proposals)
        assert vetoed == []
        for p in [*kept, *escalations]:
            assert p.reason
            assert 0.0 <= p.risk <= 1.0
            assert all(np.isfinite(v) for v in p.inputs.values())
        if quarantined_at is None and any(isinstance(p.action, QuarantineNode) for p in kept):
            quarantined_at = obs.time_s
        refused = engine.apply([p.action for p in kept])
        assert [r for r in refused if "unknown" in r] == []
    assert quarantined_at is not None
    assert 20.0 < quarantined_at <= 27.0  # a few seconds after the node died, not 50
