"""Reliability: circuit breaking around failed nodes and regions, and the pre-approved fault playbooks.

Kubernetes marks a node NotReady only after `--node-monitor-grace-period` (50 s) without a heartbeat,
and its endpoints stay in the Services until then: for 50 s a share of the requests goes to a dead
machine. This agent opens the circuit after a few seconds of silence instead — it quarantines the node
(cordon + remove its endpoints), and the ReplicaSet replaces its pods at once. The playbooks:

- **node loss** (and a zone outage: every node of a zone silent): quarantine each silent node, and
  hold every service it hosted at its pre-fault Ready replica count;
- **partition** (every node of a region silent while others answer): the region may still serve its
  own users, so its nodes are *not* quarantined (triage asks a person if it lasts); the services whose
  users are elsewhere and had replicas there are scaled up by those replicas, in reachable regions;
- **GPU throttling** (an accelerator below its nominal speed): move one replica per tick to an
  unthrottled accelerator when one bids, otherwise scale the service up by the speed it lost
  (Σ over its replicas on throttled nodes of 1 − speed / nominal, rounded up).

Every proposal carries the retry budget clients must honour while the fault lasts (`RetryBudget`), so
retries do not turn a lost node into a retry storm on the survivors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.signals import nodes_in, ready_per_node, silent_nodes, throttled_nodes
from kubeagora.coordination.contract_net import place_by_contract_net
from kubeagora.model import IntArray, Migrate, Observation, QuarantineNode, Scale


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """How clients may retry while a fault lasts (Finagle-style retry budget with full-jitter backoff)."""

    budget_ratio: float = 0.1
    """Retries allowed as a share of first attempts (0.1 = at most 10 % extra load). Finagle's default
    RetryBudget allows 20 %; half of it here, because survivors of a fault have less slack."""
    backoff_base_ms: float = 25.0
    """First retry waits uniform(0, base) ms ("full jitter", AWS Architecture Blog 2015): retries of
    many clients spread out instead of arriving in one synchronised wave."""
    backoff_max_ms: float = 250.0
    """Cap of the doubling backoff: one p99 target, so a retried request can still make its SLO."""

    def as_inputs(self) -> dict[str, float]:
        return {"retry_budget_ratio": self.budget_ratio, "retry_backoff_base_ms": self.backoff_base_ms,
                "retry_backoff_max_ms": self.backoff_max_ms, "retry_full_jitter": 1.0}


@dataclass(frozen=True, slots=True)
class ReliabilitySettings:
    heartbeat_timeout_s: float = 5.0
    """Silence after which a node's circuit opens (default 5 s). The simulator's nodes heartbeat every
    second, so 5 missed beats; against kubelet Leases (renewed every 10 s) use ~15 s. Either is far
    below Kubernetes' 50 s grace, which is the point."""
    throttle_tolerance: float = 0.1
    """An accelerator counts as throttled below (1 − this) × its nominal speed (default 10 %): smaller
    dips are clock-boost noise."""
    retry: RetryBudget = field(default_factory=RetryBudget)


@dataclass(frozen=True, slots=True)
class ReliabilityState:
    pre_fault_ready: IntArray
    """Ready replicas per service at the last tick without a silent node: what the playbooks restore."""
    partition_added: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(region, service) → replicas already added for a partition of that region (not asked twice)."""
    throttle_added: Mapping[str, int] = field(default_factory=dict)
    """service → replicas already added for throttled accelerators (reset when the throttle ends)."""


class ReliabilityAgent:
    name = "reliability"

    def __init__(self, settings: ReliabilitySettings | None = None) -> None:
        self.settings = settings or ReliabilitySettings()

    def initial_state(self, observation: Observation) -> ReliabilityState:
        return ReliabilityState(observation.ready_replicas.copy())

    def decide(self, observation: Observation, state: ReliabilityState,
               context: AgentContext) -> tuple[Sequence[Proposal], ReliabilityState]:
        cfg, obs = self.settings, observation
        silent = silent_nodes(obs, cfg.heartbeat_timeout_s)
        cut_off = cut_off_regions(obs, silent)
        proposals: list[Proposal] = []
        proposals += self._node_loss(obs, state, silent, cut_off)
        partition_proposals, partition_added = self._partition(obs, state, cut_off)
        proposals += partition_proposals
        throttle_proposals, throttle_added = self._throttle(obs, state, silent, context)
        proposals += throttle_proposals
        pre_fault = state.pre_fault_ready if silent.any() else obs.ready_replicas.copy()
        return proposals, ReliabilityState(pre_fault, partition_added, throttle_added)

    # ------------------------------------------------------------------ node loss, zone outage
    def _node_loss(self, obs: Observation, state: ReliabilityState, silent: np.ndarray,
                   cut_off: tuple[str, ...]) -> list[Proposal]:
        cfg = self.settings
        lost = silent & ~obs.node_quarantined & ~np.isin([n.region for n in obs.nodes], cut_off)
        total_ready = max(int(obs.replica_ready.sum()), 1)
        proposals: list[Proposal] = []
        for n in np.flatnonzero(lost):
            node = obs.nodes[n]
            on_node = obs.replica_ready & (obs.replica_node == n)
            age = float(obs.node_heartbeat_age_s[n])
            reason = (f"{node.name} silent for {age:.1f} s (> {cfg.heartbeat_timeout_s:.1f} s): open its circuit — "
                      f"quarantine removes its endpoints and replaces its {int(on_node.sum())} Ready replicas now, "
                      f"not after Kubernetes' 50 s grace; clients retry within a "
                      f"{100 * cfg.retry.budget_ratio:.0f} % budget")
            proposals.append(Proposal(
                self.name, QuarantineNode(node.name, reason), reason,
                inputs={"heartbeat_age_s": age, "heartbeat_timeout_s": cfg.heartbeat_timeout_s,
                        "ready_replicas_on_node": float(on_node.sum()), **cfg.retry.as_inputs()},
                predicted_effect={"endpoints_removed": float(on_node.sum())},
                risk=float(on_node.sum()) / total_ready, lane=Lane.INCIDENT))
        hit_services = np.unique(obs.replica_service[np.isin(obs.replica_node, np.flatnonzero(lost))])
        for s in hit_services:
            target = int(state.pre_fault_ready[s])
            desired = int(obs.desired_replicas[s])
            if target <= desired:
                continue  # the ReplicaSet replaces the quarantined pods by itself
            service = obs.services[s]
            reason = (f"{service.name}: node loss — back to its pre-fault {target} replicas "
                      f"(desired {desired}, Ready {int(obs.ready_replicas[s])})")
            proposals.append(Proposal(
                self.name, Scale(service.name, min(target, service.max_replicas), reason), reason,
                inputs={"pre_fault_ready": float(target), "desired_replicas": float(desired),
                        **cfg.retry.as_inputs()},
                predicted_effect={"replicas": float(target - desired)}, risk=0.1, lane=Lane.INCIDENT))
        return proposals

    # ------------------------------------------------------------------ partition
    def _partition(self, obs: Observation, state: ReliabilityState,
                   cut_off: tuple[str, ...]) -> tuple[list[Proposal], dict[tuple[str, str], int]]:
        cfg = self.settings
        added = {k: v for k, v in state.partition_added.items() if k[0] in cut_off}
        proposals: list[Proposal] = []
        for region in cut_off:
            in_region = nodes_in(obs, region=region)
            for s, service in enumerate(obs.services):
                if service.origin_region == region:
                    continue  # its users are behind the cut too and still reach their local replicas
                if service.allowed_regions is not None and set(service.allowed_regions) <= {region}:
                    continue  # residency pins it there: nothing to do automatically (triage escalates)
                stranded = int(ready_per_node(obs, s)[in_region].sum())
                extra = stranded - added.get((region, service.name), 0)
                if extra <= 0:
                    continue
                desired = int(obs.desired_replicas[s])
                target = min(desired + extra, service.max_replicas)
                if target <= desired:
                    continue
                reason = (f"{service.name}: {region} unreachable with {stranded} of its replicas; its users are "
                          f"in {service.origin_region} — add {target - desired} in reachable regions "
                          f"({desired} → {target})")
                proposals.append(Proposal(
                    self.name, Scale(service.name, target, reason), reason,
                    inputs={"stranded_replicas": float(stranded), "desired_replicas": float(desired),
                            **cfg.retry.as_inputs()},
                    predicted_effect={"replicas": float(target - desired)}, risk=0.1, lane=Lane.INCIDENT))
                added[(region, service.name)] = added.get((region, service.name), 0) + (target - desired)
        return proposals, added

    # ------------------------------------------------------------------ GPU throttling
    def _throttle(self, obs: Observation, state: ReliabilityState, silent: np.ndarray,
                  context: AgentContext) -> tuple[list[Proposal], dict[str, int]]:
        cfg = self.settings
        throttled = throttled_nodes(obs, cfg.throttle_tolerance) & ~silent & ~obs.node_quarantined
        speed_share = obs.node_speed / np.maximum([n.speed_factor for n in obs.nodes], 1e-9)
        # a throttled node does not bid: a replica moved off it must land on full-speed silicon
        trust = {**context.trust, **{obs.nodes[n].name: 0.0 for n in np.flatnonzero(throttled)}}
        added: dict[str, int] = {}
        proposals: list[Proposal] = []
        for s, service in enumerate(obs.services):
            per_node = ready_per_node(obs, s)
            on_throttled = per_node * throttled
            if on_throttled.sum() == 0:
                continue
            lost_replicas = float(np.sum(on_throttled * (1.0 - speed_share)))
            worst = int(np.argmin(np.where(on_throttled > 0, speed_share, np.inf)))
            inputs = {"lost_replica_equivalents": lost_replicas, "node_speed_share": float(speed_share[worst]),
                      **cfg.retry.as_inputs()}
            awards = place_by_contract_net(obs, s, 1, trust)
            if awards:
                _, bid = awards[0]
                reason = (f"{service.name}: {obs.nodes[worst].name} runs at {100 * speed_share[worst]:.0f} % speed; "
                          f"move one replica to {bid.node} (unthrottled; {bid.explain()})")
                proposals.append(Proposal(
                    self.name, Migrate(service.name, obs.nodes[worst].name, bid.node, reason), reason,
                    inputs={**inputs, "target_bid_ms": bid.cost_ms},
                    predicted_effect={"lost_replica_equivalents": -(1.0 - float(speed_share[worst]))},
                    risk=0.1, lane=Lane.INCIDENT))
                added[service.name] = state.throttle_added.get(service.name, 0)
                continue
            needed = math.ceil(lost_replicas - 1e-9)
            already = state.throttle_added.get(service.name, 0)
            added[service.name] = max(needed, already)
            desired = int(obs.desired_replicas[s])
            target = min(desired + needed - already, service.max_replicas)
            if target <= desired:
                continue
            reason = (f"{service.name}: throttled accelerators cost it {lost_replicas:.2f} replicas of speed and no "
                      f"unthrottled accelerator is free — scale {desired} → {target}")
            proposals.append(Proposal(
                self.name, Scale(service.name, target, reason), reason, inputs=inputs,
                predicted_effect={"replicas": float(target - desired)}, risk=0.1, lane=Lane.INCIDENT))
        return proposals, added


def cut_off_regions(obs: Observation, silent: np.ndarray) -> tuple[str, ...]:
    """Regions whose every node is silent while some node elsewhere still answers (a partition or a
    regional outage: from the control plane the two look alike)."""
    if silent.all() or not silent.any():
        return ()
    return tuple(r for r in obs.regions
                 if (in_region := nodes_in(obs, region=r)).any() and bool(silent[in_region].all()))
