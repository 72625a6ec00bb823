"""Security sentinel: a trust score per node and per agent, from figures that contradict each other.

A node (or its kubelet, or whoever speaks for it) can lie; an agent can be wrong. The sentinel does
not judge intent, it cross-checks what the observation says against itself:

- **Ready with an old heartbeat**: NodeReady must flip to False within the 50 s grace of the last
  heartbeat; a node still Ready after `max_ready_heartbeat_age_s` of silence reports a status nothing
  backs;
- **busy doing nothing**: a node above `busy_utilisation` while the services it hosts served nothing
  since the last tick (or it hosts nothing);
- **served beyond capacity**: a service served more than its Ready replicas can (by
  `capacity_tolerance`), which blames the nodes hosting it, a little each;
- **outlier bids**: a Contract-Net bid implausibly cheaper than its peers (below the median by
  `bid_outlier_mads` robust deviations);
- **rolled-back agents**: each rollback of an agent's proposal (`handoff.ROLLED_BACK_BY_AGENT`).

Each finding takes a penalty off the score; scores recover at `recovery_per_s` while nothing is
found. The MAS passes `trust_scores(state)` as the next tick's `AgentContext.trust`, where it marks
up the node's bids (a half-trusted node must be twice as cheap to win). A node under
`quarantine_below` is proposed for quarantine in `Lane.INCIDENT`.

A quarantined node comes back (`LiftQuarantine`) with hysteresis: only once it is Ready, its trust is
back above `lift_above` (well over `quarantine_below`) and nothing was found against it for
`lift_after_clean_s` of this sentinel's own watch — so a sentinel that just started (its scores
forgotten) waits that long before it lifts anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.handoff import bids, rolled_back_by_agent
from kubeagora.model import FloatArray, LiftQuarantine, Observation, QuarantineNode


@dataclass(frozen=True, slots=True)
class SentinelSettings:
    max_ready_heartbeat_age_s: float = 50.0
    """A node still Ready after this much silence contradicts itself (default 50 s, Kubernetes'
    --node-monitor-grace-period, by which NodeReady must have flipped)."""
    busy_utilisation: float = 0.5
    """Utilisation above which a node must be serving something (default 50 %; idle replicas burn ~5 %)."""
    capacity_tolerance: float = 0.2
    """Served may exceed Ready capacity by this share before it counts (default 20 %: counter and
    gauge are sampled at slightly different instants, and queued work drains at the burst rate)."""
    bid_outlier_mads: float = 5.0
    """A bid this many robust deviations (1.4826 × MAD, at least 1 ms) below the median is an outlier."""
    penalty_ready_stale: float = 0.4
    """Trust lost per tick a node is Ready on an old heartbeat (default 0.4: two ticks in a row
    take a trusted node under the quarantine threshold; one glitch does not)."""
    penalty_busy_idle: float = 0.2
    penalty_overserved: float = 0.1
    """Per hosting node: the blame is shared, the evidence is about the service's counters."""
    penalty_bid_outlier: float = 0.2
    penalty_rollback: float = 0.2
    """Per rolled-back proposal of an agent."""
    recovery_per_s: float = 0.002
    """Trust regained per second without findings (default: from 0 to 1 in ~8 minutes)."""
    quarantine_below: float = 0.3
    """Propose quarantine of a node trusted less than this (default 0.3)."""
    lift_above: float = 0.8
    """A quarantined node comes back only when trusted at least this much (default 0.8)."""
    lift_after_clean_s: float = 600.0
    """...and when nothing was found against it for this long (default 10 minutes)."""


@dataclass(frozen=True, slots=True)
class SentinelState:
    trust: Mapping[str, float]
    """Node and agent name → 0..1 (absent: fully trusted)."""
    served_total: FloatArray
    time_s: float
    findings: tuple[str, ...] = field(default=())
    """What the last tick found, one readable line each."""
    started_s: float = 0.0
    """When this sentinel began watching (nothing before it counts as clean)."""
    last_finding_s: Mapping[str, float] = field(default_factory=dict)
    """Node name → when something was last found against it."""


def trust_scores(state: SentinelState) -> dict[str, float]:
    """What the MAS passes as the next tick's `AgentContext.trust`."""
    return dict(state.trust)


class SentinelAgent:
    name = "sentinel"

    def __init__(self, settings: SentinelSettings | None = None) -> None:
        self.settings = settings or SentinelSettings()

    def initial_state(self, observation: Observation) -> SentinelState:
        return SentinelState({}, observation.served_total.copy(), observation.time_s, (), observation.time_s)

    def decide(self, observation: Observation, state: SentinelState,
               context: AgentContext) -> tuple[Sequence[Proposal], SentinelState]:
        cfg, obs = self.settings, observation
        dt = obs.time_s - state.time_s
        trust = {name: min(1.0, t + cfg.recovery_per_s * max(dt, 0.0)) for name, t in state.trust.items()}
        findings: list[tuple[str, float, str]] = []  # (who, penalty, why)
        findings += self._node_findings(obs, state, dt)
        findings += self._bid_findings(context)
        findings += [(agent, cfg.penalty_rollback * count, f"{agent}: {count} proposals rolled back")
                     for agent, count in rolled_back_by_agent(context).items() if count > 0]
        for who, penalty, _ in findings:
            trust[who] = max(0.0, trust.get(who, 1.0) - penalty)
        trust = {name: t for name, t in trust.items() if t < 1.0}
        proposals: list[Proposal] = []
        total_ready = max(int(obs.replica_ready.sum()), 1)
        for n, node in enumerate(obs.nodes):
            score = trust.get(node.name, 1.0)
            if score >= cfg.quarantine_below or obs.node_quarantined[n]:
                continue
            why = "; ".join(w for who, _, w in findings if who == node.name) or "earlier contradictions"
            on_node = int((obs.replica_ready & (obs.replica_node == n)).sum())
            reason = (f"{node.name}: trust {score:.2f} < {cfg.quarantine_below:.2f} ({why}) — quarantine it "
                      f"and replace its {on_node} replicas elsewhere")
            proposals.append(Proposal(
                self.name, QuarantineNode(node.name, reason), reason,
                inputs={"trust": score, "quarantine_below": cfg.quarantine_below,
                        "heartbeat_age_s": float(obs.node_heartbeat_age_s[n]),
                        "utilisation": float(obs.node_utilization[n])},
                predicted_effect={"endpoints_removed": float(on_node)},
                risk=on_node / total_ready, lane=Lane.INCIDENT))
        last_finding = {**state.last_finding_s, **{who: obs.time_s for who, _, _ in findings}}
        proposals.extend(self._lifts(obs, trust, state.started_s, last_finding))
        return proposals, SentinelState(trust, obs.served_total.copy(), obs.time_s, tuple(w for _, _, w in findings),
                                        state.started_s, last_finding)

    def _lifts(self, obs: Observation, trust: Mapping[str, float], started_s: float,
               last_finding: Mapping[str, float]) -> list[Proposal]:
        cfg = self.settings
        out: list[Proposal] = []
        for n in np.flatnonzero(obs.node_quarantined & obs.node_ready):
            name = obs.nodes[n].name
            score = trust.get(name, 1.0)
            clean_s = obs.time_s - max(started_s, last_finding.get(name, started_s))
            if score < cfg.lift_above or clean_s < cfg.lift_after_clean_s:
                continue
            reason = (f"{name}: trust {score:.2f} ≥ {cfg.lift_above:.2f} and nothing found for {clean_s:.0f} s — "
                      f"lift its quarantine")
            out.append(Proposal(self.name, LiftQuarantine(name, reason), reason,
                                inputs={"trust": score, "lift_above": cfg.lift_above, "clean_s": clean_s},
                                predicted_effect={"nodes_back": 1.0}, risk=0.0))
        return out

    def _node_findings(self, obs: Observation, state: SentinelState, dt: float) -> list[tuple[str, float, str]]:
        cfg = self.settings
        found: list[tuple[str, float, str]] = []
        for n in np.flatnonzero(obs.node_ready & (obs.node_heartbeat_age_s > cfg.max_ready_heartbeat_age_s)):
            node = obs.nodes[n]
            found.append((node.name, cfg.penalty_ready_stale,
                          f"{node.name} reports Ready with a {float(obs.node_heartbeat_age_s[n]):.0f} s old heartbeat"))
        if dt <= 0 or state.served_total.shape != obs.served_total.shape:
            return found
        served_rps = (obs.served_total - state.served_total) / dt
        for n in np.flatnonzero(obs.node_utilization > cfg.busy_utilisation):
            hosted = np.unique(obs.replica_service[obs.replica_ready & (obs.replica_node == n)])
            if hosted.size == 0 or float(served_rps[hosted].sum()) <= 0.0:
                node = obs.nodes[n]
                found.append((node.name, cfg.penalty_busy_idle,
                              f"{node.name} at {100 * float(obs.node_utilization[n]):.0f} % utilisation while "
                              f"its services served nothing"))
        overserved = served_rps > obs.capacity_rps * (1.0 + cfg.capacity_tolerance) + 1.0
        for s in np.flatnonzero(overserved):
            hosts = np.unique(obs.replica_node[obs.replica_ready & (obs.replica_service == s)])
            for n in hosts:
                found.append((obs.nodes[n].name, cfg.penalty_overserved,
                              f"{obs.services[s].name} served {float(served_rps[s]):.0f} req/s over "
                              f"{float(obs.capacity_rps[s]):.0f} req/s Ready capacity"))
        return found

    def _bid_findings(self, context: AgentContext) -> list[tuple[str, float, str]]:
        cfg = self.settings
        feasible = [b for b in bids(context) if b.feasible]
        if len(feasible) < 3:
            return []  # no peers to compare with
        costs = np.array([b.cost_ms for b in feasible])
        median = float(np.median(costs))
        spread = max(1.4826 * float(np.median(np.abs(costs - median))), 1.0)
        return [(b.node, cfg.penalty_bid_outlier,
                 f"{b.node} bid {b.cost_ms:.1f} ms, {(median - b.cost_ms) / spread:.0f} deviations under the "
                 f"{median:.1f} ms median")
                for b in feasible if b.cost_ms < median - cfg.bid_outlier_mads * spread]
