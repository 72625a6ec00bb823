"""Data steward: data-resident services stay in their regions.

A service with `allowed_regions` may hold data that must not leave them (GDPR, sovereignty rules).
The steward does two things:

- `violates_residency(observation, action)` says why an action would put a replica outside its
  service's regions (None when it would not); the MAS runs every proposal through `veto_residency`
  before the shield, so a bad move is dropped with its reason rather than argued about later;
- `DataStewardAgent.decide` finds Ready replicas already outside their regions (placed before a policy
  changed, or by hand) and proposes moving each back, to the node that wins a Contract-Net round
  (which only nodes in allowed regions can win).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.coordination.contract_net import BidWeights, place_by_contract_net
from kubeagora.model import Action, Migrate, Observation, Place


def violates_residency(observation: Observation, action: Action) -> str | None:
    """Why `action` would run a replica outside its service's allowed regions; None if it would not."""
    if not isinstance(action, Place | Migrate):
        return None
    target = action.node if isinstance(action, Place) else action.to_node
    try:
        service = observation.services[observation.service_index(action.service)]
        region = observation.nodes[observation.node_index(target)].region
    except KeyError:
        return None  # an unknown name is the shield's business, not a residency question
    allowed = service.allowed_regions
    if allowed is None or region in allowed:
        return None
    return f"{service.name} may run only in {', '.join(allowed)}; {target} is in {region}"


def veto_residency(observation: Observation,
                   proposals: Sequence[Proposal]) -> tuple[list[Proposal], list[tuple[Proposal, str]]]:
    """(kept, vetoed with the reason): the proposals that keep every replica in its regions, and the rest."""
    kept: list[Proposal] = []
    vetoed: list[tuple[Proposal, str]] = []
    for p in proposals:
        why = violates_residency(observation, p.action)
        if why is None:
            kept.append(p)
        else:
            vetoed.append((p, why))
    return kept, vetoed


@dataclass(frozen=True, slots=True)
class DataStewardSettings:
    bid_weights: BidWeights = field(default_factory=BidWeights)
    """How the return destination is chosen among allowed nodes (the placement agent's weights)."""


class DataStewardAgent:
    name = "data_steward"

    def __init__(self, settings: DataStewardSettings | None = None) -> None:
        self.settings = settings or DataStewardSettings()

    def initial_state(self, observation: Observation) -> None:
        return None

    def decide(self, observation: Observation, state: None,
               context: AgentContext) -> tuple[Sequence[Proposal], None]:
        obs = observation
        node_region = np.array([n.region for n in obs.nodes])
        proposals: list[Proposal] = []
        for s, service in enumerate(obs.services):
            allowed = service.allowed_regions
            if allowed is None:
                continue
            mine = obs.replica_ready & (obs.replica_service == s)
            misplaced = obs.replica_node[mine][~np.isin(node_region[obs.replica_node[mine]], allowed)]
            if misplaced.size == 0:
                continue
            awards = place_by_contract_net(obs, s, int(misplaced.size), context.trust, self.settings.bid_weights)
            for source, (_, bid) in zip(misplaced, awards, strict=False):
                from_node = obs.nodes[int(source)]
                reason = (f"{service.name} may run only in {', '.join(allowed)} but has a replica on "
                          f"{from_node.name} in {from_node.region}: move it to {bid.node} ({bid.explain()})")
                proposals.append(Proposal(
                    self.name, Migrate(service.name, from_node.name, bid.node, reason), reason,
                    inputs={"misplaced_replicas": float(misplaced.size), "target_bid_ms": bid.cost_ms,
                            "target_network_ms": bid.network_ms},
                    predicted_effect={"misplaced_replicas": -1.0},
                    # one replica of the service moves: the share of its Ready capacity in flight
                    risk=1.0 / max(int(obs.ready_replicas[s]), 1) * 0.5, lane=Lane.INCIDENT))
        return proposals, None
