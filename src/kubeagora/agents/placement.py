"""Placement: where new replicas go, and which replica should move, by Contract Net.

New replicas: the scaling agent's set-points arrive as `handoff.SCALE_TARGETS`; for each replica
above the service's desired count the placement agent runs a Contract-Net round
(`coordination.contract_net.place_by_contract_net`): every node bids its marginal cost — interference
with co-located work, energy × carbon, network distance to the service's users, residency and
capacity feasibility — marked up by distrust (`AgentContext.trust`, from the sentinel). One `Place`
per award. (A `Place` adds one desired replica: the MAS enacts the Places instead of the scale-up,
see `handoff.scale_targets_from`.)

Moves: each Ready replica's node re-bids as if the replica were placed afresh (its own resources
handed back first, so a full node still bids for the replica it hosts). When the best other node is
cheaper by a clear margin — `migrate_margin_ms` and `migrate_margin_share` of the current bid — the
replica migrates. At most one move per service per tick, and none within `migrate_cooldown_s` of the
last: a move costs a cold start, and two nodes within noise of each other must not trade a replica
back and forth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.handoff import scale_targets
from kubeagora.agents.signals import latency_ratio, slo_at_risk
from kubeagora.coordination.contract_net import (
    BidWeights,
    NodeBid,
    ledger_from_observation,
    move_many,
    place_by_contract_net,
    tasks_from_observation,
)
from kubeagora.model import Migrate, Observation, Place


@dataclass(frozen=True, slots=True)
class PlacementSettings:
    bid_weights: BidWeights = field(default_factory=BidWeights)
    """How nodes turn interference, carbon, network and trust into one bid (ms of request latency)."""
    migrate_margin_ms: float = 20.0
    """A move must save at least this many ms per request (default 20 ms: one intra-region RTT);
    below it the gain is within the bids' noise and does not pay for a cold start."""
    migrate_margin_share: float = 0.25
    """…and at least this share of the current node's bid (default 25 %), so expensive replicas
    do not move for a proportionally small gain."""
    migrate_cooldown_s: float = 120.0
    """No second move of a service within this long (default 120 s: several cold starts), so the
    moved replica's load shows in the utilisation before anyone re-bids."""
    slo_risk_latency_share: float = 0.9
    """A placement for a service whose p95/p99 is above this share of its target travels in Lane.SLO."""
    slo_risk_load_share: float = 0.9
    """…or whose arrivals are above this share of its Ready capacity."""


@dataclass(frozen=True, slots=True)
class PlacementState:
    last_migration_s: Mapping[str, float] = field(default_factory=dict)
    """service → time of its last proposed move."""
    last_bids: tuple[NodeBid, ...] = ()
    """The winning bids of this tick (the MAS passes them on as `handoff.BIDS` for the sentinel)."""


class PlacementAgent:
    name = "placement"

    def __init__(self, settings: PlacementSettings | None = None) -> None:
        self.settings = settings or PlacementSettings()

    def initial_state(self, observation: Observation) -> PlacementState:
        return PlacementState()

    def decide(self, observation: Observation, state: PlacementState,
               context: AgentContext) -> tuple[Sequence[Proposal], PlacementState]:
        cfg, obs = self.settings, observation
        proposals: list[Proposal] = []
        bids: list[NodeBid] = []
        targets = scale_targets(context)
        for name, target in targets.items():
            s = obs.service_index(name)
            count = int(target) - int(obs.desired_replicas[s])
            if count <= 0:
                continue
            awards = place_by_contract_net(obs, s, count, context.trust, cfg.bid_weights)
            bids += [bid for _, bid in awards]
            lane = Lane.SLO if slo_at_risk(obs, s, cfg.slo_risk_latency_share, cfg.slo_risk_load_share) \
                else Lane.ROUTINE
            for k, (_, bid) in enumerate(awards, start=1):
                short = f"; only {len(awards)} of {count} fit anywhere" if len(awards) < count else ""
                reason = f"{name}: replica {k} of {count} to {bid.explain()}{short}"
                proposals.append(Proposal(
                    self.name, Place(name, bid.node, reason), reason,
                    inputs={"bid_ms": bid.cost_ms, "network_ms": bid.network_ms,
                            "interference_ms": bid.interference_ms, "carbon_g_per_h": bid.carbon_g_per_h,
                            "trust": bid.trust},
                    predicted_effect={"replicas": 1.0}, risk=0.05, lane=lane))
        moved = dict(state.last_migration_s)
        candidates = [s for s, service in enumerate(obs.services)
                      if not (service.name in targets and int(targets[service.name]) > int(obs.desired_replicas[s]))
                      # growing this tick: its new replicas already go to the best nodes
                      and not (obs.pending_replicas[s] > 0
                               or obs.time_s - moved.get(service.name, -np.inf) < cfg.migrate_cooldown_s)]
        for s, (current, best) in self._best_moves(obs, candidates, context).items():
            service = obs.services[s]
            gain_ms = current.cost_ms - best.cost_ms
            if gain_ms < max(cfg.migrate_margin_ms, cfg.migrate_margin_share * current.cost_ms):
                continue
            reason = (f"{service.name}: a replica on {current.node} bids {current.cost_ms:.1f} ms, "
                      f"{best.node} {best.cost_ms:.1f} ms — move it and save {gain_ms:.1f} ms per request "
                      f"(margin {cfg.migrate_margin_ms:.0f} ms / {100 * cfg.migrate_margin_share:.0f} %)")
            proposals.append(Proposal(
                self.name, Migrate(service.name, current.node, best.node, reason), reason,
                inputs={"current_bid_ms": current.cost_ms, "best_bid_ms": best.cost_ms,
                        "current_network_ms": current.network_ms, "best_network_ms": best.network_ms,
                        "current_interference_ms": current.interference_ms,
                        "best_interference_ms": best.interference_ms},
                predicted_effect={"bid_ms": -gain_ms},
                risk=0.5 / max(int(obs.ready_replicas[s]), 1), lane=self._move_lane(obs, s)))
            bids.append(best)
            moved[service.name] = obs.time_s
        return proposals, PlacementState(moved, tuple(bids))

    def _move_lane(self, obs: Observation, s: int) -> Lane:
        """A move for a service whose tail is near or over its target repairs its SLO (a replica on a slow
        node is its tail: even routing gives it as many requests as the fast ones); else it optimises."""
        return Lane.SLO if latency_ratio(obs, s) > self.settings.slo_risk_latency_share else Lane.ROUTINE

    def _best_moves(self, obs: Observation, services: Sequence[int], context: AgentContext,
                    ) -> dict[int, tuple[NodeBid, NodeBid]]:
        """Per service (in the order given): (current node's bid, best other bid) for the replica whose
        move gains most; services none of whose replicas can move are left out. Every Ready host of every
        service re-bids at once over the tick's ledger (`move_many`)."""
        if not services:
            return {}
        ready = obs.replica_ready
        n_nodes = len(obs.nodes)
        # each service's Ready hosts, in node order: distinct (service, node) pairs
        pairs = np.unique(obs.replica_service[ready].astype(np.int64) * n_nodes + obs.replica_node[ready])
        wanted = np.zeros(len(obs.services), dtype=np.bool_)
        wanted[np.asarray(services, dtype=np.int64)] = True
        pairs = pairs[wanted[pairs // n_nodes]]
        if pairs.size == 0:
            return {}
        row_service, row_host = pairs // n_nodes, pairs % n_nodes
        present = np.unique(row_service)
        tasks = dict(zip(present.tolist(), tasks_from_observation(obs, present.tolist()), strict=True))
        moves = move_many([tasks[s] for s in row_service.tolist()], row_host.tolist(),
                          ledger_from_observation(obs, context.trust), self.settings.bid_weights, obs.services)
        # per service, the first row with the largest gain (a quarantined or misplaced host cannot move:
        # that is reliability's and the data steward's case)
        chosen: dict[int, tuple[int, float]] = {}
        gains = (moves.host_cost_ms - moves.best_cost_ms).tolist()
        for row, (s, movable) in enumerate(zip(row_service.tolist(), moves.movable.tolist(), strict=True)):
            if not movable:
                continue
            held = chosen.get(s)
            if held is None or gains[row] > held[1]:
                chosen[s] = (row, gains[row])
        out: dict[int, tuple[NodeBid, NodeBid]] = {}
        for s in services:
            if s in chosen:
                pair = moves.pair(chosen[s][0])
                assert pair is not None
                out[s] = pair
        return out
