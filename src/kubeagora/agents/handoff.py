"""What the MAS controller hands from one agent to the next, through `AgentContext.extras`.

Agents do not call each other. Within a tick the MAS runs them in a fixed order and passes what an
earlier one decided to a later one under these keys (each reader below says what it expects):

    sentinel → (trust, next tick)      scaling → SCALE_TARGETS → placement
    every agent's proposals → PROPOSALS → triage     the bus's incidents → INCIDENTS → triage

Missing keys are not errors: an agent without its hand-off falls back to what it can read itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from kubeagora.agents.base import AgentContext, Proposal
from kubeagora.coordination.contract_net import NodeBid
from kubeagora.coordination.events import Incident
from kubeagora.model import IntArray, Observation, Scale

REPLICA_SETPOINTS = "replica_setpoints"
"""Per-service replica set-points from the MPC (`decision.mpc.MpcPlan.setpoints`, indexed like
`observation.services`), or a function `observation -> set-points` the scaling agent calls."""
CONCURRENCY_SETPOINTS = "concurrency_setpoints"
"""Per-service concurrency set-points {service name: requests per replica}, when a planner makes them."""
SCALE_TARGETS = "scale_targets"
"""{service name: replicas} the scaling agent decided this tick (`scale_targets_from`); placement
proposes a `Place` for each replica above the current desired count."""
PROPOSALS = "proposals"
"""Every other agent's proposals this tick (triage reads them to see who is handling what)."""
INCIDENTS = "incidents"
"""`coordination.events.Incident`s delivered by the bus since the last tick."""
BIDS = "bids"
"""The Contract-Net bids of this tick (`NodeBid`s); the sentinel looks for outliers."""
ROLLED_BACK_BY_AGENT = "rolled_back_by_agent"
"""{agent name: rollouts of its proposals rolled back since the last tick}; the sentinel's agent trust."""


def replica_setpoints(observation: Observation, context: AgentContext) -> IntArray | None:
    """The MPC's set-points for this observation, or None when the MAS passed none."""
    given: Any = context.extras.get(REPLICA_SETPOINTS)
    if given is None:
        return None
    values = given(observation) if callable(given) else given
    setpoints = np.asarray(values, dtype=np.int64)
    if setpoints.shape != (len(observation.services),):
        raise ValueError(f"{REPLICA_SETPOINTS} has shape {setpoints.shape}, expected ({len(observation.services)},)")
    return setpoints


def concurrency_setpoints(context: AgentContext) -> Mapping[str, int]:
    given: Mapping[str, int] = context.extras.get(CONCURRENCY_SETPOINTS, {})
    return given


def scale_targets(context: AgentContext) -> Mapping[str, int]:
    given: Mapping[str, int] = context.extras.get(SCALE_TARGETS, {})
    return given


def scale_targets_from(proposals: Sequence[Proposal]) -> dict[str, int]:
    """{service: replicas} of the `Scale` proposals (the last one per service wins): what the MAS passes
    to placement as `SCALE_TARGETS`. When placement then proposes `Place`s for a service, those replace
    the scale-up (each `Place` adds one desired replica): enact one or the other, not both."""
    return {p.action.service: p.action.replicas for p in proposals if isinstance(p.action, Scale)}


def other_proposals(context: AgentContext) -> Sequence[Proposal]:
    given: Sequence[Proposal] = context.extras.get(PROPOSALS, ())
    return given


def incidents(context: AgentContext) -> Sequence[Incident]:
    given: Sequence[Incident] = context.extras.get(INCIDENTS, ())
    return given


def bids(context: AgentContext) -> Sequence[NodeBid]:
    given: Sequence[NodeBid] = context.extras.get(BIDS, ())
    return given


def rolled_back_by_agent(context: AgentContext) -> Mapping[str, int]:
    given: Mapping[str, int] = context.extras.get(ROLLED_BACK_BY_AGENT, {})
    return given


SetpointPlanner = Callable[[Observation], IntArray]
"""What the MAS may pass as `REPLICA_SETPOINTS` instead of an array."""
