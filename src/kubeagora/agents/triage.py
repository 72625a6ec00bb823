"""Triage: name the incident, send it to the specialist that resolves it, or escalate to a person.

As in the seed paper's Figure 1: an anomaly is classified, routed to the agent whose playbook fits,
and what no agent can resolve safely goes to a human. From the observation (and the bus's
`Incident`s, `handoff.INCIDENTS`), triage recognises:

| kind         | evidence                                                   | specialist  |
| ------------ | ---------------------------------------------------------- | ----------- |
| partition    | every node of a region silent, others answering             | reliability |
| zone_outage  | every node of a zone silent, the region's others answering  | reliability |
| node_loss    | a node silent (not a whole zone or region)                  | reliability |
| gpu_throttle | an accelerator below its nominal speed                      | reliability |
| overload     | a service over its SLO with arrivals over Ready capacity     | scaling     |
| unknown      | a service over its SLO with none of the above to explain it | human       |

An `unknown` event on the bus is escalated at once, an unexplained SLO miss once it has lasted
`unknown_after_s`, any other incident when it is still open after `escalate_after_s` (its specialist
did not resolve it). A service whose latency stays over target after its overload ended (capacity
caught up; the backlog and the latency window have not) is still the same `overload`, not an unknown
anomaly: a burst the scaling agent answered pages nobody. An escalation is a `Proposal` whose action
is the mitigation a person should approve (quarantine the node, zone or region; one more replica for
a service), with `risk = escalation_risk` (above the rollout's approval threshold) and
`inputs["escalate"] = 1`: the rollout layer parks it in `AwaitingApproval` (`is_escalation`).
The routing table of the tick is `TriageState.incidents`; who is already acting on each subject (from
`handoff.PROPOSALS`) is in `handled_by`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.handoff import incidents, other_proposals
from kubeagora.agents.reliability import cut_off_regions
from kubeagora.agents.signals import latency_ratio, load_ratio, nodes_in, silent_nodes, throttled_nodes
from kubeagora.model import Action, LiftQuarantine, Migrate, Observation, Place, QuarantineNode, Scale

ESCALATE_INPUT = "escalate"
"""`Proposal.inputs` key that marks an escalation (value 1.0)."""
HUMAN = "human"


class IncidentKind(StrEnum):
    NODE_LOSS = "node_loss"
    ZONE_OUTAGE = "zone_outage"
    PARTITION = "partition"
    GPU_THROTTLE = "gpu_throttle"
    OVERLOAD = "overload"
    UNKNOWN = "unknown"


SPECIALIST: Mapping[IncidentKind, str] = {
    IncidentKind.NODE_LOSS: "reliability",
    IncidentKind.ZONE_OUTAGE: "reliability",
    IncidentKind.PARTITION: "reliability",
    IncidentKind.GPU_THROTTLE: "reliability",
    IncidentKind.OVERLOAD: "scaling",
    IncidentKind.UNKNOWN: HUMAN,
}

BUS_INCIDENT_KINDS: Mapping[str, IncidentKind] = {
    "node_not_ready": IncidentKind.NODE_LOSS,
    "node_loss": IncidentKind.NODE_LOSS,
    "zone_outage": IncidentKind.ZONE_OUTAGE,
    "region_partition": IncidentKind.PARTITION,
    "partition": IncidentKind.PARTITION,
    "gpu_throttled": IncidentKind.GPU_THROTTLE,
    "gpu_throttle": IncidentKind.GPU_THROTTLE,
    "overload": IncidentKind.OVERLOAD,
}
"""`coordination.events.Incident.kind` values triage understands; any other kind is `unknown`."""


@dataclass(frozen=True, slots=True)
class TriageSettings:
    heartbeat_timeout_s: float = 5.0
    """Silence that makes a node lost (default 5 s, the reliability agent's circuit timeout)."""
    throttle_tolerance: float = 0.1
    """An accelerator below (1 − this) × nominal speed is throttled (default 10 %, as reliability)."""
    escalate_after_s: float = 180.0
    """A routed incident still open this long goes to a person (default 180 s: the seed paper's MAS
    recovers from a node loss in 2.7 min; longer means the playbook is not working)."""
    unknown_latency_ratio: float = 1.2
    """An SLO miss with no overload and no faulty node is an unknown anomaly only past this multiple of
    the target (default 1.2): smaller misses are a window's tail noise (a packet-loss spell, one
    unlucky window) that the scaling agent answers, not something to wake a person for."""
    unknown_after_s: float = 60.0
    """An unexplained SLO miss goes to a person once it has lasted this long (default 60 s: longer than
    the latency window (10 s on the operator, a tick's in the simulator) and a CPU replica's cold start,
    so a miss that the next scale-up or the next window clears wakes nobody)."""
    escalation_risk: float = 1.0
    """Risk on an escalation (default 1.0: above any approval threshold, so a person must decide)."""


@dataclass(frozen=True, slots=True)
class TriagedIncident:
    kind: IncidentKind
    subject: str
    """The node, zone, region or service it happened to."""
    specialist: str
    first_seen_s: float
    detail: str
    handled_by: tuple[str, ...] = ()
    """Agents whose proposals this tick act on the subject."""
    escalated: bool = False


@dataclass(frozen=True, slots=True)
class TriageState:
    incidents: Mapping[tuple[IncidentKind, str], TriagedIncident] = field(default_factory=dict)
    """Open incidents by (kind, subject); closed ones are dropped."""


def is_escalation(proposal: Proposal) -> bool:
    """Whether a person must decide on this proposal (the rollout layer marks it AwaitingApproval)."""
    return proposal.inputs.get(ESCALATE_INPUT, 0.0) >= 1.0


def classify(obs: Observation, settings: TriageSettings) -> list[tuple[IncidentKind, str, str]]:
    """(kind, subject, detail) of every incident the observation shows."""
    found: list[tuple[IncidentKind, str, str]] = []
    silent = silent_nodes(obs, settings.heartbeat_timeout_s)
    explained = np.zeros(len(obs.nodes), dtype=np.bool_)
    for region in cut_off_regions(obs, silent):
        explained |= nodes_in(obs, region=region)
        found.append((IncidentKind.PARTITION, region, f"every node of {region} silent, other regions answer"))
    for zone in sorted({n.zone for n in obs.nodes}):
        in_zone = nodes_in(obs, zone=zone)
        if silent[in_zone].all() and not explained[in_zone].all():
            explained |= in_zone
            found.append((IncidentKind.ZONE_OUTAGE, zone, f"all {int(in_zone.sum())} nodes of {zone} silent"))
    for n in np.flatnonzero(silent & ~explained & ~obs.node_quarantined):
        found.append((IncidentKind.NODE_LOSS, obs.nodes[n].name,
                      f"silent for {float(obs.node_heartbeat_age_s[n]):.0f} s"))
    throttled = throttled_nodes(obs, settings.throttle_tolerance) & ~silent
    for n in np.flatnonzero(throttled):
        found.append((IncidentKind.GPU_THROTTLE, obs.nodes[n].name,
                      f"at {100 * float(obs.node_speed[n]) / obs.nodes[n].speed_factor:.0f} % of nominal speed"))
    faulty = silent | throttled
    for s, service in enumerate(obs.services):
        if latency_ratio(obs, s) <= 1.0:
            continue
        detail = (f"p99 {float(obs.p99_ms[s]):.0f} ms of {service.slo_p99_ms:.0f} ms at "
                  f"{100 * min(load_ratio(obs, s), 99.99):.0f} % of Ready capacity")
        if load_ratio(obs, s) > 1.0:
            found.append((IncidentKind.OVERLOAD, service.name, detail))
        elif (latency_ratio(obs, s) > settings.unknown_latency_ratio
              and not faulty[obs.replica_node[obs.replica_service == s]].any()):
            found.append((IncidentKind.UNKNOWN, service.name, detail + ", no fault explains it"))
    return found


def _touches(obs: Observation, action: Action, subject: str) -> bool:
    if isinstance(action, LiftQuarantine):
        return action.node == subject
    if isinstance(action, QuarantineNode):
        node = obs.nodes[obs.node_index(action.node)] if action.node in {n.name for n in obs.nodes} else None
        return action.node == subject or (node is not None and subject in (node.zone, node.region))
    if isinstance(action, Migrate):
        return subject in (action.service, action.from_node)
    if isinstance(action, Place):
        return action.service == subject
    return action.service == subject


class TriageAgent:
    name = "triage"

    def __init__(self, settings: TriageSettings | None = None) -> None:
        self.settings = settings or TriageSettings()

    def initial_state(self, observation: Observation) -> TriageState:
        return TriageState()

    def decide(self, observation: Observation, state: TriageState,
               context: AgentContext) -> tuple[Sequence[Proposal], TriageState]:
        cfg, obs, now = self.settings, observation, observation.time_s
        found = classify(obs, cfg)
        measured = len(found)
        found += [(BUS_INCIDENT_KINDS.get(i.kind, IncidentKind.UNKNOWN), i.subject, i.detail or i.kind)
                  for i in incidents(context)]
        others = other_proposals(context)
        open_now: dict[tuple[IncidentKind, str], TriagedIncident] = {}
        proposals: list[Proposal] = []
        for n, (kind, subject, detail) in enumerate(found):
            if kind is IncidentKind.UNKNOWN and (IncidentKind.OVERLOAD, subject) in state.incidents:
                # the overload ended a tick ago and the latency has not caught up: its backlog drains
                kind, detail = IncidentKind.OVERLOAD, detail.replace(", no fault explains it",
                                                                     ", the overload's backlog still drains")
            key = (kind, subject)
            if key in open_now:
                continue
            before = state.incidents.get(key)
            handled = tuple(sorted({p.agent for p in others if _touches(obs, p.action, subject)}))
            incident = TriagedIncident(kind, subject, SPECIALIST[kind], before.first_seen_s if before else now,
                                       detail, handled, before.escalated if before else False)
            open_for_s = now - incident.first_seen_s
            # an unknown event on the bus is a person's at once; an unexplained latency miss once it lasts
            due_after_s = (cfg.escalate_after_s if kind is not IncidentKind.UNKNOWN
                           else cfg.unknown_after_s if n < measured else 0.0)
            if not incident.escalated and open_for_s >= due_after_s:
                proposals += self._escalate(obs, incident, open_for_s)
                incident = TriagedIncident(kind, subject, incident.specialist, incident.first_seen_s, detail,
                                           handled, escalated=True)
            open_now[key] = incident
        return proposals, TriageState(open_now)

    def _escalate(self, obs: Observation, incident: TriagedIncident, open_for_s: float) -> list[Proposal]:
        cfg = self.settings
        why = (f"no agent's playbook explains it after {open_for_s:.0f} s" if incident.kind is IncidentKind.UNKNOWN
               else f"still open after {open_for_s:.0f} s with {incident.specialist}")
        reason = f"escalated to a human: {incident.kind} on {incident.subject} ({incident.detail}); {why}"
        inputs = {ESCALATE_INPUT: 1.0, "open_for_s": open_for_s}
        return [Proposal(self.name, action, reason, inputs=inputs, risk=cfg.escalation_risk, lane=Lane.INCIDENT)
                for action in self._mitigations(obs, incident, reason)]

    @staticmethod
    def _mitigations(obs: Observation, incident: TriagedIncident, reason: str) -> list[Action]:
        """What a person is asked to approve: one more replica of a service, or quarantine of the node,
        zone or region the incident is about (nothing when the subject is none of these)."""
        subject = incident.subject
        if subject in {s.name for s in obs.services}:
            return [Scale(subject, int(obs.desired_replicas[obs.service_index(subject)]) + 1, reason)]
        nodes = np.array([subject in (n.name, n.zone, n.region) for n in obs.nodes], dtype=np.bool_)
        return [QuarantineNode(obs.nodes[n].name, reason) for n in np.flatnonzero(nodes & ~obs.node_quarantined)]
