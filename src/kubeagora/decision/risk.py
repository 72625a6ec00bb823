"""Risk of one action: how much it touches, how hard it is to undo, and how little room the service has.

    risk = clip(blast_radius × (½ + ½ × fragility) + irreversibility_weight × (1 − reversibility), 0, 1)

- blast radius: the share of the service's Ready capacity the action touches (for a node action, the
  share of all Ready capacity in the cluster on that node);
- reversibility: 1 for an action undone at once (a scale-up), lower where undoing costs a cold start,
  lost requests or a person (a quarantine);
- fragility: from the service's SLO slack (1 − p99 / target and 1 − load / capacity, the smaller):
  a service with no slack turns the same blast radius into more risk. The capacity is taken
  `uncertainty_sds` standard deviations below its estimate where the caller says how uncertain its
  model of the service is (the online calibration's relative uncertainty of the service time): the
  less the controller knows a service, the less slack it may count on.

Above `approval_threshold` the action needs a person (AwaitingApproval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from kubeagora.agents.base import Proposal
from kubeagora.agents.signals import per_replica_capacity_rps
from kubeagora.decision.shield import ready_of_service_on_node
from kubeagora.model import (
    Action,
    FloatArray,
    LiftQuarantine,
    Migrate,
    Observation,
    Place,
    QuarantineNode,
    Scale,
    SetConcurrency,
    ShedLoad,
)


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    approval_threshold: float = 0.5
    """Risk above which a person must approve (AwaitingApproval)."""
    irreversibility_weight: float = 0.25
    """How much an action's irreversibility adds on its own (an irreversible no-op is still not free)."""
    reversibility_scale_up: float = 0.9
    reversibility_scale_down: float = 0.7
    """Undoing a scale-down costs a cold start."""
    reversibility_place: float = 0.9
    reversibility_migrate: float = 0.7
    reversibility_concurrency: float = 0.8
    reversibility_shed: float = 0.5
    """Shed requests are gone for good."""
    reversibility_quarantine: float = 0.3
    """A person must clear the cordon, and the node's pods were evicted."""
    uncertainty_sds: float = 2.0
    """The load slack is judged on the capacity this many standard deviations of the model's uncertainty
    below its estimate (a service known to ±10 % counts on 1/1.2 of its estimated capacity)."""


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    blast_radius: float
    """0..1: share of the capacity the action touches."""
    reversibility: float
    """0..1: 1 = undone at once without loss."""
    slo_slack: float
    """-1..1: room before the SLO (1 = idle, 0 = at target, < 0 = violating)."""
    risk: float
    needs_approval: bool
    model_uncertainty: float = 0.0
    """Relative standard deviation of the controller's estimate of the service (0 = known exactly)."""


def slo_slack(obs: Observation, s: int, uncertainty: float = 0.0, uncertainty_sds: float = 0.0) -> float:
    """min(1 − p99/target, 1 − load/capacity), clipped to [-1, 1]; a service with no data counts as at target.
    The capacity is divided by 1 + `uncertainty_sds` × `uncertainty` (the pessimistic end of the model)."""
    svc = obs.services[s]
    p99 = float(obs.p99_ms[s])
    latency_slack = 1.0 - p99 / svc.slo_p99_ms if math.isfinite(p99) else 0.0
    capacity = float(obs.capacity_rps[s]) / (1.0 + uncertainty_sds * max(uncertainty, 0.0))
    load_slack = 1.0 - float(obs.arrival_rps[s]) / capacity if capacity > 0 else (1.0 if obs.arrival_rps[s] == 0
                                                                                   else -1.0)
    return float(np.clip(min(latency_slack, load_slack), -1.0, 1.0))


def blast_radius(obs: Observation, action: Action) -> float:
    """Share of the service's Ready capacity (or, for a node, of all Ready capacity) the action touches."""
    if isinstance(action, LiftQuarantine):
        return 0.0  # a node coming back removes nothing
    if isinstance(action, QuarantineNode):
        try:
            n = obs.node_index(action.node)
        except KeyError:
            return 0.0
        per_replica = np.array([per_replica_capacity_rps(obs, s) for s in range(len(obs.services))])
        ready_rows = obs.replica_ready
        total = float(per_replica[obs.replica_service[ready_rows]].sum())
        on_node = float(per_replica[obs.replica_service[ready_rows & (obs.replica_node == n)]].sum())
        return on_node / total if total > 0 else 0.0
    try:
        s = obs.service_index(action.service)
    except KeyError:
        return 0.0
    ready = int(obs.ready_replicas[s])
    if isinstance(action, Scale):
        removed = max(int(obs.desired_replicas[s]) - action.replicas, 0)
        # the ReplicaSet removes not-Ready pods first: only removals beyond them touch Ready capacity
        not_ready = max(int(obs.desired_replicas[s]) - ready, 0)
        touched = max(removed - not_ready, 0)
        return min(touched / ready, 1.0) if ready else (1.0 if removed else 0.0)
    if isinstance(action, Migrate):
        try:
            src = obs.node_index(action.from_node)
        except KeyError:
            return 0.0
        moved = min(ready_of_service_on_node(obs, s, src), 1)
        return float(moved / ready) if ready else 0.0
    if isinstance(action, SetConcurrency):
        return 1.0 if action.concurrency != int(obs.concurrency[s]) else 0.0
    if isinstance(action, ShedLoad):
        return float(np.clip(action.fraction - obs.shed_fraction[s], 0.0, 1.0))
    return 0.0  # Place adds capacity and touches none


def reversibility(obs: Observation, action: Action, policy: RiskPolicy) -> float:
    if isinstance(action, Scale):
        try:
            s = obs.service_index(action.service)
        except KeyError:
            return policy.reversibility_scale_up
        down = action.replicas < int(obs.desired_replicas[s])
        return policy.reversibility_scale_down if down else policy.reversibility_scale_up
    table: dict[type, float] = {Place: policy.reversibility_place, Migrate: policy.reversibility_migrate,
                                SetConcurrency: policy.reversibility_concurrency, ShedLoad: policy.reversibility_shed,
                                QuarantineNode: policy.reversibility_quarantine,
                                LiftQuarantine: policy.reversibility_quarantine}
    return table[type(action)]


def assess(obs: Observation, action: Action, policy: RiskPolicy | None = None,
           uncertainty: FloatArray | None = None) -> RiskAssessment:
    """`uncertainty[service]`: how uncertain the caller's model of each service is (relative sd; None = exact)."""
    policy = policy or RiskPolicy()
    blast = blast_radius(obs, action)
    rev = reversibility(obs, action, policy)
    known = np.zeros(len(obs.services)) if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)

    def slack_of(s: int) -> float:
        return slo_slack(obs, s, float(known[s]), policy.uncertainty_sds)

    if isinstance(action, QuarantineNode):
        try:
            n = obs.node_index(action.node)
            touched = set(obs.replica_service[obs.replica_node == n].tolist())
        except KeyError:
            touched = set()
        slack = min((slack_of(s) for s in touched), default=1.0)
        unknown = max((float(known[s]) for s in touched), default=0.0)
    elif isinstance(action, LiftQuarantine):
        slack, unknown = 1.0, 0.0
    else:
        try:
            s = obs.service_index(action.service)
            slack, unknown = slack_of(s), float(known[s])
        except KeyError:
            slack, unknown = 1.0, 0.0
    fragility = (1.0 - slack) / 2.0
    risk = float(np.clip(blast * (0.5 + 0.5 * fragility) + policy.irreversibility_weight * (1.0 - rev), 0.0, 1.0))
    return RiskAssessment(blast, rev, slack, risk, risk > policy.approval_threshold, unknown)


def with_risk(obs: Observation, proposal: Proposal, policy: RiskPolicy | None = None,
              uncertainty: FloatArray | None = None) -> Proposal:
    """The proposal with its `risk` field set from the estimate."""
    return replace(proposal, risk=assess(obs, proposal.action, policy, uncertainty).risk)
