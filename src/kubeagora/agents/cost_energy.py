"""Cost and energy: within SLO slack, fewer replicas and cleaner grids.

Two moves, both only for a service with clear slack (tail latency under `max_latency_share` of its
target, load under `low_load_share` of Ready capacity) — never for one at SLO risk:

- **scale down** a service whose load stayed under `low_load_share` of Ready capacity for
  `sustained_s`, to the replicas that carry it at `target_load_share`;
- **move to a cleaner grid**: one replica per tick, cluster-wide, from the dirtiest-grid node a
  slack service runs on to the best Contract-Net bid among nodes whose region's grid is at least
  `carbon_gap_g_per_kwh` cleaner, when the extra network delay fits `latency_slack_share` of the
  service's p99 headroom.

Every proposal reports the energy and carbon figures it was based on (watts and g CO₂/h of the
service's share of its nodes), so a person can weigh them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.signals import (
    latency_ratio,
    latency_ratios,
    load_ratio,
    load_ratios,
    per_replica_capacity_rps,
    ready_per_node,
)
from kubeagora.coordination.contract_net import BidWeights, place_by_contract_net
from kubeagora.model import BoolArray, Migrate, Observation, Scale


@dataclass(frozen=True, slots=True)
class CostEnergySettings:
    low_load_share: float = 0.3
    """A service counts as over-provisioned below this share of Ready capacity (default 30 %)."""
    sustained_s: float = 300.0
    """…for this long before a scale-down (default 300 s, the HPA's scale-down stabilisation): a lull
    between bursts is not over-provisioning."""
    target_load_share: float = 0.6
    """Scale down to the replicas that carry the load at this share of capacity (default 60 %),
    below the scaling agent's 70 %, so the two do not undo each other."""
    max_latency_share: float = 0.7
    """Slack means p95 and p99 under this share of their targets (default 70 %)."""
    carbon_gap_g_per_kwh: float = 100.0
    """A move must reach a grid at least this much cleaner (default 100 g/kWh, ~a third of an average
    European grid): smaller gaps are within the intensity's hourly swing."""
    latency_slack_share: float = 0.5
    """A move may spend at most this share of the p99 headroom on extra network delay (default 50 %)."""
    migrate_cooldown_s: float = 600.0
    """At most one carbon move cluster-wide per this long (default 10 min): a slow, routine concern."""
    bid_weights: BidWeights = field(default_factory=BidWeights)


@dataclass(frozen=True, slots=True)
class CostEnergyState:
    low_since_s: Mapping[str, float] = field(default_factory=dict)
    """service → since when its load has stayed under `low_load_share` with slack."""
    last_migration_s: float = -math.inf


def service_power_w(obs: Observation, s: int) -> float:
    """The service's share of its nodes' wall power, by its share of their allocated CPU."""
    cpu = obs.services[s].cpu_request * ready_per_node(obs, s)
    share = cpu / np.maximum(obs.node_cpu_allocated, 1e-9)
    return float(np.sum(share * obs.node_power_w))


def service_carbon_g_per_h(obs: Observation, s: int) -> float:
    cpu = obs.services[s].cpu_request * ready_per_node(obs, s)
    share = cpu / np.maximum(obs.node_cpu_allocated, 1e-9)
    carbon = np.array([obs.region_carbon_g_per_kwh.get(n.region, 0.0) for n in obs.nodes])
    return float(np.sum(share * obs.node_power_w * carbon) / 1000.0)


class CostEnergyAgent:
    name = "cost_energy"

    def __init__(self, settings: CostEnergySettings | None = None) -> None:
        self.settings = settings or CostEnergySettings()

    def initial_state(self, observation: Observation) -> CostEnergyState:
        return CostEnergyState()

    def decide(self, observation: Observation, state: CostEnergyState,
               context: AgentContext) -> tuple[Sequence[Proposal], CostEnergyState]:
        cfg, obs, now = self.settings, observation, observation.time_s
        low_since: dict[str, float] = {}
        proposals: list[Proposal] = []
        slack = self.slack(obs)
        for s in np.flatnonzero(slack).tolist():
            service = obs.services[s]
            since = state.low_since_s.get(service.name, now)
            low_since[service.name] = since
            if now - since < cfg.sustained_s:
                continue
            proposal = self._scale_down(obs, s, now - since)
            if proposal is not None:
                proposals.append(proposal)
        last_migration = state.last_migration_s
        if now - last_migration >= cfg.migrate_cooldown_s:
            move = self._cleaner_grid_move(obs, context, slack)
            if move is not None:
                proposals.append(move)
                last_migration = now
        return proposals, CostEnergyState(low_since, last_migration)

    def slack(self, obs: Observation) -> BoolArray:
        """[service] Ready replicas, tail latency below `max_latency_share` of its targets and load below
        `low_load_share` of its Ready capacity."""
        cfg = self.settings
        return np.asarray((obs.ready_replicas.astype(np.int64) > 0) & (latency_ratios(obs) < cfg.max_latency_share)
                          & (load_ratios(obs) < cfg.low_load_share), dtype=np.bool_)

    def _scale_down(self, obs: Observation, s: int, low_for_s: float) -> Proposal | None:
        cfg, service = self.settings, obs.services[s]
        per_replica = per_replica_capacity_rps(obs, s)
        needed = math.ceil(float(obs.arrival_rps[s]) / (per_replica * cfg.target_load_share) - 1e-9)
        desired = int(obs.desired_replicas[s])
        target = max(needed, service.min_replicas, 1)
        if target >= desired:
            return None
        power_w = service_power_w(obs, s)
        carbon = service_carbon_g_per_h(obs, s)
        removed_share = (desired - target) / max(int(obs.ready_replicas[s]), 1)
        reason = (f"{service.name}: {100 * load_ratio(obs, s):.0f} % of Ready capacity for {low_for_s:.0f} s, p99 "
                  f"{float(obs.p99_ms[s]):.0f} of {service.slo_p99_ms:.0f} ms — {desired} → {target} replicas "
                  f"saves ~{power_w * removed_share:.0f} W, {carbon * removed_share:.1f} g CO2/h")
        return Proposal(
            self.name, Scale(service.name, target, reason), reason,
            inputs={"load_ratio": load_ratio(obs, s), "latency_ratio": latency_ratio(obs, s),
                    "low_for_s": low_for_s, "power_w": power_w, "carbon_g_per_h": carbon},
            predicted_effect={"replicas": float(target - desired), "power_w": -power_w * removed_share,
                              "carbon_g_per_h": -carbon * removed_share,
                              "load_ratio": load_ratio(obs, s) * desired / target - load_ratio(obs, s)},
            risk=0.5 * (desired - target) / max(desired, 1), lane=Lane.ROUTINE)

    def _cleaner_grid_move(self, obs: Observation, context: AgentContext, slack: BoolArray) -> Proposal | None:
        cfg = self.settings
        carbon = np.array([obs.region_carbon_g_per_kwh.get(n.region, 0.0) for n in obs.nodes])
        for s in np.flatnonzero(slack & ~(obs.pending_replicas > 0)).tolist():
            service = obs.services[s]
            hosts = np.flatnonzero(ready_per_node(obs, s))
            if hosts.size == 0:
                continue
            source = int(hosts[np.argmax(carbon[hosts])])
            cleaner = carbon <= carbon[source] - cfg.carbon_gap_g_per_kwh
            if not cleaner.any():
                continue
            # only cleaner nodes bid; the others are left out of this round
            trust = {**context.trust, **{n.name: 0.0 for n, ok in zip(obs.nodes, cleaner, strict=True) if not ok}}
            awards = place_by_contract_net(obs, s, 1, trust, cfg.bid_weights)
            if not awards:
                continue
            _, bid = awards[0]
            origin = obs.regions.index(service.origin_region) if service.origin_region in obs.regions else 0
            extra_network_ms = bid.network_ms - float(obs.ingress_rtt_ms[origin, source])
            headroom_ms = service.slo_p99_ms - float(obs.p99_ms[s])
            if extra_network_ms > cfg.latency_slack_share * headroom_ms:
                continue
            reason = (f"{service.name}: move a replica from {obs.nodes[source].name} ({carbon[source]:.0f} g/kWh) to "
                      f"{bid.node} ({carbon[bid.node_index]:.0f} g/kWh); +{extra_network_ms:.0f} ms network fits "
                      f"{100 * cfg.latency_slack_share:.0f} % of its {headroom_ms:.0f} ms p99 headroom")
            return Proposal(
                self.name, Migrate(service.name, obs.nodes[source].name, bid.node, reason), reason,
                inputs={"source_carbon_g_per_kwh": float(carbon[source]),
                        "target_carbon_g_per_kwh": float(carbon[bid.node_index]),
                        "extra_network_ms": extra_network_ms, "p99_headroom_ms": headroom_ms,
                        "power_w": service_power_w(obs, s)},
                predicted_effect={"p99_ms": extra_network_ms,
                                  "carbon_g_per_kwh": float(carbon[bid.node_index] - carbon[source])},
                risk=0.5 / max(int(obs.ready_replicas[s]), 1), lane=Lane.ROUTINE)
        return None
