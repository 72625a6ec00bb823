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
- **rolled-back agents**: each rollback of an agent's proposal (`handoff.ROLLED_BACK_BY_AGENT`);

and, with `zero_trust` on, three checks that do not take a node's or an agent's word:

- **attestation**: a verdict against a Ready node's signed attestation claim (forged, replayed, stale,
  expired identity, failed measurement: `Observation.node_attestation`, verified by the operator or
  modelled by the engine) costs it the verdict's penalty, every tick it holds;
- **slower than it says**: the service time the callers measure on a node (`node_service_ms`) far above
  what its reported speed and utilisation imply (the interference model 1 + β·u²) — a node hiding its
  load or its slowness to win placements;
- **claims that do not add up**: a service's bidder (its demand reporter, whose claim sets its bid in
  the capacity market) claims more arrivals than were served, dropped or queued (arrivals are
  conserved); the excess is tracked so that `contained` can correct the claim, and the bidder
  (`bidder:<service>`) loses trust, which `coordination.market` turns into weight.

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
from dataclasses import dataclass, field, replace

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.handoff import bids, rolled_back_by_agent
from kubeagora.coordination.contract_net import INTERFERENCE_BETA, place_by_contract_net
from kubeagora.model import FloatArray, LiftQuarantine, Migrate, Observation, QuarantineNode


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
    zero_trust: bool = True
    """Use attestation verdicts and the two cross-checks below (off: the sentinel as it was before them)."""
    penalty_attestation: Mapping[int, float] = field(default_factory=lambda: {
        2: 0.1, 3: 0.5, 4: 0.4, 5: 0.1, 6: 0.2, 7: 0.25})
    """Trust lost per tick by verdict code (missing, forged, replayed, stale, expired, failed): a forged or
    replayed claim is deliberate; a missing or stale one may be an agent restarting. At 0.25 per failed
    measurement a node failing a third of its attestations sinks under the quarantine threshold within
    minutes, one failing one in fifty does not."""
    service_time_ratio: float = 1.75
    """Measured service time on a node above this multiple of what its reports imply is a contradiction
    (1.75: the model error of the speeds and service times the twin is told stays well inside it)."""
    penalty_service_time: float = 0.15
    demand_tolerance: float = 0.2
    """Claimed arrivals may exceed served + dropped + queued by this share (plus `demand_slack_rps`) before
    the excess counts (counters are sampled at slightly different instants)."""
    demand_slack_rps: float = 5.0
    penalty_demand: float = 0.2


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
    accounts: DemandAccounts | None = None
    """The services' counters at the last tick and the claimed arrivals that were never accounted for."""


@dataclass(frozen=True, slots=True)
class DemandAccounts:
    arrived_total: FloatArray
    """As claimed."""
    accounted_total: FloatArray
    """Served + dropped + queued."""
    excess_total: FloatArray
    """Claimed arrivals beyond the tolerance that no outcome accounts for, summed over the ticks."""


def bidder(service: str) -> str:
    """The trust key of a service's bidder (its demand reporter in the capacity market)."""
    return f"bidder:{service}"


def _accounted(obs: Observation) -> FloatArray:
    return np.asarray(obs.served_total + obs.dropped_total + obs.queue_length, dtype=np.float64)


def demand_excess(obs: Observation, accounts: DemandAccounts | None, dt: float,
                  settings: SentinelSettings) -> FloatArray:
    """Per service: claimed arrivals since the last tick that served, dropped and queued do not account for
    (beyond the tolerance); zeros on the first tick."""
    if accounts is None or dt <= 0 or accounts.arrived_total.shape != obs.arrived_total.shape:
        return np.zeros(len(obs.services))
    claimed = obs.arrived_total - accounts.arrived_total
    accounted = _accounted(obs) - accounts.accounted_total
    slack = np.maximum(accounted, 0.0) * settings.demand_tolerance + settings.demand_slack_rps * dt
    return np.asarray(np.maximum(claimed - np.maximum(accounted, 0.0) - slack, 0.0), dtype=np.float64)


def contained(observation: Observation, state: SentinelState, settings: SentinelSettings | None = None,
              ) -> Observation:
    """The observation with every bidder's demand claim cut to what outcomes account for: the arrival counter
    less the unaccounted excess, and the arrival rate, where the excess is new, to the rate accounted for.
    What the MPC and the market then see of a service cannot be inflated by its own reporter."""
    cfg = settings or SentinelSettings()
    obs = observation
    dt = obs.time_s - state.time_s
    new_excess = demand_excess(obs, state.accounts, dt, cfg)
    excess = new_excess if state.accounts is None else state.accounts.excess_total + new_excess
    if not excess.any():
        return obs
    rps = obs.arrival_rps
    if new_excess.any() and state.accounts is not None:
        accounted_rps = np.maximum(_accounted(obs) - state.accounts.accounted_total, 0.0) / dt
        rps = np.where(new_excess > 0, np.minimum(rps, accounted_rps * (1.0 + cfg.demand_tolerance)
                                                  + cfg.demand_slack_rps), rps)
    return replace(obs, arrived_total=obs.arrived_total - excess, arrival_rps=np.asarray(rps, dtype=np.float64))


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
        accounts = state.accounts
        if cfg.zero_trust:
            findings += self._attestation_findings(obs)
            findings += self._service_time_findings(obs)
            excess = demand_excess(obs, accounts, dt, cfg)
            findings += [(bidder(obs.services[s].name), cfg.penalty_demand,
                          f"{obs.services[s].name}: {float(excess[s]) / dt:.0f} req/s claimed beyond what was served, "
                          f"dropped or queued") for s in np.flatnonzero(excess > 0)]
            accounts = DemandAccounts(obs.arrived_total.copy(), _accounted(obs),
                                      excess if accounts is None else accounts.excess_total + excess)
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
            heard = obs.node_ready[n] and obs.node_heartbeat_age_s[n] <= cfg.max_ready_heartbeat_age_s
            drains = self._drain(obs, n, trust, why) if cfg.zero_trust and heard else []
            if drains:  # a live node still serving: move its replicas off first, quarantine it once empty
                proposals.extend(drains)
                continue
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
                                        state.started_s, last_finding, accounts)

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

    def _drain(self, obs: Observation, n: int, trust: Mapping[str, float], why: str) -> list[Proposal]:
        """One Migrate per service with a Ready replica on distrusted node `n`, to the best trusted bidder:
        quarantining a node that still serves would take capacity its services need (the shield refuses it),
        moving the replicas first does not. Nothing where no other node bids (quarantine is then proposed)."""
        node = obs.nodes[n].name
        out: list[Proposal] = []
        for s in np.unique(obs.replica_service[obs.replica_ready & (obs.replica_node == n)]):
            awards = place_by_contract_net(obs, int(s), 1, {**trust, node: 0.0})
            if not awards:
                continue
            _, bid = awards[0]
            service = obs.services[int(s)].name
            reason = (f"{service}: {node} is trusted {trust.get(node, 1.0):.2f} ({why}) — move a replica to "
                      f"{bid.node} before quarantining it ({bid.explain()})")
            out.append(Proposal(self.name, Migrate(service, node, bid.node, reason), reason,
                                inputs={"trust": trust.get(node, 1.0), "target_bid_ms": bid.cost_ms},
                                predicted_effect={"replicas_on_distrusted_node": -1.0}, risk=0.1,
                                lane=Lane.INCIDENT))
        return out

    def _attestation_findings(self, obs: Observation) -> list[tuple[str, float, str]]:
        """Verdicts against Ready nodes (a node the control plane no longer hears is reliability's business)."""
        if obs.node_attestation is None:
            return []
        names = {2: "no attestation claim", 3: "a forged attestation claim", 4: "a replayed attestation claim",
                 5: "a stale attestation claim", 6: "an expired identity", 7: "a failed attestation (measured "
                 "state not enrolled)"}
        out = []
        for n in np.flatnonzero(obs.node_ready):
            code = int(obs.node_attestation[n])
            penalty = self.settings.penalty_attestation.get(code)
            if penalty:
                out.append((obs.nodes[n].name, penalty, f"{obs.nodes[n].name}: {names.get(code, f'verdict {code}')}"))
        return out

    def _service_time_findings(self, obs: Observation) -> list[tuple[str, float, str]]:
        """Nodes whose requests take far longer than their own reports of speed and load allow."""
        if obs.node_service_ms is None:
            return []
        cfg = self.settings
        ready = obs.replica_ready
        svc, node = obs.replica_service[ready], obs.replica_node[ready]
        if svc.size == 0:
            return []
        classes = [n.node_class for n in obs.nodes]
        per_replica_rps = obs.arrival_rps / np.maximum(obs.ready_replicas, 1)
        base = np.array([obs.services[s].service_time_ms.get(classes[n], np.nan) for s, n in zip(svc, node,
                                                                                              strict=True)])
        native = np.array([max(obs.services[s].concurrency, 1) for s in svc], dtype=np.float64)
        oversubscribed = np.maximum(obs.concurrency[svc] / native, 1.0)
        beta = np.array([INTERFERENCE_BETA.get(c, 0.0) for c in classes])
        u = np.clip(obs.node_utilization, 0.0, 1.0)
        expected_ms = base / np.maximum(obs.node_speed[node], 1e-9) * (1.0 + beta[node] * u[node] ** 2) * oversubscribed
        weight = np.where(np.isfinite(expected_ms), per_replica_rps[svc], 0.0)
        total = np.bincount(node, weight, minlength=len(obs.nodes))
        expected = np.bincount(node, weight * np.nan_to_num(expected_ms), minlength=len(obs.nodes)) / np.maximum(
            total, 1e-12)
        measured = obs.node_service_ms
        out = []
        for n in np.flatnonzero((total > 0) & np.isfinite(measured) & obs.node_ready):
            ratio = float(measured[n]) / max(float(expected[n]), 1e-9)
            if ratio > cfg.service_time_ratio:
                out.append((obs.nodes[n].name, cfg.penalty_service_time,
                            f"{obs.nodes[n].name}: requests take {ratio:.1f}× what its reported speed "
                            f"{float(obs.node_speed[n]):.2f} and utilisation {100 * float(u[n]):.0f} % imply"))
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
