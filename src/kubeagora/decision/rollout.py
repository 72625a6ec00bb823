"""Progressive delivery of one action group: shadow → canary → full, with automatic rollback.

A `Rollout` is both the state of the machine and the audit record of the decision (agent, inputs,
predicted effect, shield and twin verdicts, every stage transition with its time), and serialises to
JSON with `as_json`. Every function here is pure: it takes a rollout (and what was observed) and
returns the next rollout plus the actions to enact now.

    Proposed ─screen─▶ Shadow ─shadow_s─▶ Canary ─canary_s─▶ Applied
        │                 │                  └─degraded─▶ RolledBack
        ├─▶ Rejected      └─twin mispredicted─▶ AwaitingApproval ─approve─▶ Shadow / ─deny─▶ Rejected
        └─▶ AwaitingApproval

Shadow enacts nothing: it measures the service as it is (the baseline) and checks the twin's
do-nothing prediction against what then happens. Canary enacts a fraction (one replica, or
`canary_fraction` of a replica or shedding change) and rolls back when the touched services' p99 or
error rate degrades past a threshold against the shadow baseline. `RolloutMemory` and `damp` add the
hysteresis: a rolled-back or reversed action waits out a cooldown, and a scale opposite to a recent
one of the same service is suppressed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum, StrEnum
from typing import Any

import numpy as np

from kubeagora.agents.base import Proposal
from kubeagora.decision.shield import Rejection
from kubeagora.decision.twin import TwinVerdict
from kubeagora.model import (
    Action,
    LiftQuarantine,
    Migrate,
    Observation,
    Place,
    QuarantineNode,
    Scale,
    SetConcurrency,
    ShedLoad,
)


class Stage(StrEnum):
    """The AgentAction CRD's states."""

    PROPOSED = "Proposed"
    SHADOW = "Shadow"
    CANARY = "Canary"
    APPLIED = "Applied"
    ROLLED_BACK = "RolledBack"
    REJECTED = "Rejected"
    AWAITING_APPROVAL = "AwaitingApproval"


FINAL_STAGES = frozenset({Stage.APPLIED, Stage.ROLLED_BACK, Stage.REJECTED})


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    approval_risk: float = 0.5
    """Risk above which a person must approve (AwaitingApproval); the risk estimator's threshold."""
    shadow_s: float = 30.0
    """How long the baseline is measured (and the twin checked) before the canary."""
    canary_s: float = 60.0
    """How long the canary must stay healthy before the full change."""
    canary_settle_s: float = 10.0
    """The canary is not judged before one latency window (10 s) has passed under it."""
    canary_fraction: float = 0.25
    """Share of a replica-count or shedding change enacted as the canary (at least one replica)."""
    rollback_p99_rise_slo_share: float = 0.10
    """Roll back when the touched services' worst p99 rises by more than this share of its target."""
    rollback_error_rise: float = 0.005
    """Roll back when the share of arrivals dropped or lost rises by more than this (0.005 = 0.5 points)."""
    max_shadow_error_slo_share: float = 0.5
    """Ask a person when the twin's do-nothing p99 was off by more than this share of the target."""
    cooldown_s: float = 600.0
    """A rolled-back or reversed action is not retried for this long."""
    oscillation_window_s: float = 300.0
    """A scale opposite to one of the same service within this window is suppressed."""


@dataclass(frozen=True, slots=True)
class Transition:
    at_s: float
    from_stage: Stage
    to_stage: Stage
    why: str


@dataclass(frozen=True, slots=True)
class ShieldVerdict:
    allowed: bool
    guard: str = ""
    reason: str = ""
    figures: Mapping[str, float] = field(default_factory=dict)
    person_may_approve: bool = False


@dataclass(frozen=True, slots=True)
class HealthSample:
    """The touched services at one moment."""

    at_s: float
    stage: Stage
    p99_slo_ratio: float
    """Worst last-window p99 / target over the touched services (NaN when none served)."""
    arrived_total: float
    errors_total: float
    """Dropped + lost requests (counter)."""


@dataclass(frozen=True, slots=True)
class Rollout:
    """One action group's way through the decision layer, and its record."""

    id: str
    proposals: tuple[Proposal, ...]
    stage: Stage
    transitions: tuple[Transition, ...]
    services: tuple[str, ...]
    """Services the group touches (a node action touches every service with a replica on the node)."""
    risk: float = 0.0
    shield: tuple[ShieldVerdict, ...] = ()
    twin: TwinVerdict | None = None
    samples: tuple[HealthSample, ...] = ()
    canary_actions: tuple[Action, ...] = ()
    remaining_actions: tuple[Action, ...] = ()
    rollback_actions: tuple[Action, ...] = ()
    action_keys: tuple[str, ...] = ()
    """Each action's identity for cooldowns (kind, target, direction), taken when it was proposed."""
    shadow_p99_error_slo_share: float | None = None
    """Observed minus twin-predicted worst p99 during the shadow, as a share of the target."""

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(p.action for p in self.proposals)

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.agent for p in self.proposals))

    @property
    def since_s(self) -> float:
        return self.transitions[-1].at_s

    @property
    def done(self) -> bool:
        return self.stage in FINAL_STAGES


def _move(rollout: Rollout, to: Stage, at_s: float, why: str, **changes: Any) -> Rollout:
    return replace(rollout, stage=to, transitions=(*rollout.transitions, Transition(at_s, rollout.stage, to, why)),
                   **changes)


def touched_services(observation: Observation, actions: Sequence[Action]) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for a in actions:
        if isinstance(a, LiftQuarantine):
            continue  # a node coming back touches no service's replicas
        if isinstance(a, QuarantineNode):
            try:
                n = observation.node_index(a.node)
            except KeyError:
                continue
            for s in np.unique(observation.replica_service[observation.replica_node == n]).tolist():
                names[observation.services[int(s)].name] = None
        else:
            names[a.service] = None
    return tuple(names)


def propose(rollout_id: str, proposals: Sequence[Proposal], observation: Observation) -> Rollout:
    return Rollout(rollout_id, tuple(proposals), Stage.PROPOSED,
                   (Transition(observation.time_s, Stage.PROPOSED, Stage.PROPOSED, "proposed"),),
                   touched_services(observation, [p.action for p in proposals]),
                   risk=max((p.risk for p in proposals), default=0.0),
                   action_keys=tuple(action_key(observation, p.action) for p in proposals))


def screen(rollout: Rollout, now_s: float, rejections: Sequence[Rejection], twin: TwinVerdict | None,
           policy: RolloutPolicy | None = None, risk: float | None = None) -> Rollout:
    """Proposed → Rejected (a hard guard or the twin said no) | AwaitingApproval (a soft guard or high
    risk: a person decides) | Shadow."""
    policy = policy or RolloutPolicy()
    risk = rollout.risk if risk is None else risk
    verdicts = tuple(ShieldVerdict(False, r.violation.guard, r.violation.reason, dict(r.violation.figures),
                                   r.violation.person_may_approve) for r in rejections) or (ShieldVerdict(True),)
    rollout = replace(rollout, shield=verdicts, twin=twin, risk=risk)
    hard = [v for v in verdicts if not v.allowed and not v.person_may_approve]
    soft = [v for v in verdicts if not v.allowed and v.person_may_approve]
    if hard:
        return _move(rollout, Stage.REJECTED, now_s, f"shield: {hard[0].guard}: {hard[0].reason}")
    if twin is not None and not twin.accepted:
        return _move(rollout, Stage.REJECTED, now_s, f"twin: {'; '.join(twin.reasons)}")
    if soft:
        return _move(rollout, Stage.AWAITING_APPROVAL, now_s, f"shield: {soft[0].guard}: {soft[0].reason}")
    if risk > policy.approval_risk:
        return _move(rollout, Stage.AWAITING_APPROVAL, now_s,
                     f"risk {risk:.2f} is over the approval threshold {policy.approval_risk:.2f}")
    return _move(rollout, Stage.SHADOW, now_s, "shield and twin passed")


def approve(rollout: Rollout, now_s: float, by: str) -> Rollout:
    if rollout.stage is not Stage.AWAITING_APPROVAL:
        raise ValueError(f"{rollout.id} is {rollout.stage}, not AwaitingApproval")
    return _move(rollout, Stage.SHADOW, now_s, f"approved by {by}")


def deny(rollout: Rollout, now_s: float, by: str) -> Rollout:
    if rollout.stage is not Stage.AWAITING_APPROVAL:
        raise ValueError(f"{rollout.id} is {rollout.stage}, not AwaitingApproval")
    return _move(rollout, Stage.REJECTED, now_s, f"denied by {by}")


# ------------------------------------------------------------------ health and the canary's share
def health(observation: Observation, services: Sequence[str], stage: Stage) -> HealthSample:
    idx = [observation.service_index(n) for n in services if n in {s.name for s in observation.services}]
    if not idx:
        idx = list(range(len(observation.services)))
    targets = np.array([observation.services[i].slo_p99_ms for i in idx])
    ratios = observation.p99_ms[idx] / targets
    worst = float(np.nanmax(ratios)) if np.isfinite(ratios).any() else math.nan
    return HealthSample(observation.time_s, stage, worst, float(observation.arrived_total[idx].sum()),
                        float(observation.dropped_total[idx].sum()))


def _mean_ratio(samples: Sequence[HealthSample]) -> float:
    ratios = [s.p99_slo_ratio for s in samples if math.isfinite(s.p99_slo_ratio)]
    return float(np.mean(ratios)) if ratios else math.nan


def _error_rate(first: HealthSample, last: HealthSample) -> float:
    arrived = last.arrived_total - first.arrived_total
    return (last.errors_total - first.errors_total) / arrived if arrived > 0 else 0.0


def split_for_canary(observation: Observation, actions: Sequence[Action], fraction: float,
                     ) -> tuple[tuple[Action, ...], tuple[Action, ...], tuple[Action, ...]]:
    """(canary, what remains for the full rollout, what undoes the canary)."""
    canary: list[Action] = []
    remaining: list[Action] = []
    undo: list[Action] = []
    moves = [a for a in actions if isinstance(a, Place | Migrate)]
    first_moves = moves[: max(1, math.floor(fraction * len(moves)))] if moves else []
    for a in actions:
        if isinstance(a, QuarantineNode | LiftQuarantine):
            canary.append(a)  # a cordon (or its lifting) is all or nothing
            continue
        s = observation.service_index(a.service)
        if isinstance(a, Scale):
            current = int(observation.desired_replicas[s])
            change = a.replicas - current
            step = int(math.copysign(min(abs(change), max(1, math.ceil(abs(change) * fraction))), change))
            canary.append(Scale(a.service, current + step, f"canary of {a.replicas}"))
            if step != change:
                remaining.append(a)
            undo.append(Scale(a.service, current, "rollback"))
        elif isinstance(a, ShedLoad):
            current_fraction = float(observation.shed_fraction[s])
            canary.append(ShedLoad(a.service, current_fraction + (a.fraction - current_fraction) * fraction, "canary"))
            remaining.append(a)
            undo.append(ShedLoad(a.service, current_fraction, "rollback"))
        elif isinstance(a, SetConcurrency):
            canary.append(a)
            undo.append(SetConcurrency(a.service, int(observation.concurrency[s]), "rollback"))
        elif a in first_moves:
            canary.append(a)
            if isinstance(a, Migrate):
                undo.append(Migrate(a.service, a.to_node, a.from_node, "rollback"))
            else:
                undo.append(Scale(a.service, int(observation.desired_replicas[s]), "rollback"))
        else:
            remaining.append(a)
    return tuple(canary), tuple(remaining), tuple(undo)


def advance(rollout: Rollout, observation: Observation,
            policy: RolloutPolicy | None = None) -> tuple[Rollout, tuple[Action, ...]]:
    """One tick of a rollout in Shadow or Canary; returns the rollout and the actions to enact now."""
    policy = policy or RolloutPolicy()
    now = observation.time_s
    if rollout.stage not in (Stage.SHADOW, Stage.CANARY):
        return rollout, ()
    sample = health(observation, rollout.services, rollout.stage)
    rollout = replace(rollout, samples=(*rollout.samples, sample))
    elapsed = now - rollout.since_s
    if rollout.stage is Stage.SHADOW:
        return _advance_shadow(rollout, observation, elapsed, policy)
    return _advance_canary(rollout, sample, elapsed, policy)


def _advance_shadow(rollout: Rollout, observation: Observation, elapsed: float,
                    policy: RolloutPolicy) -> tuple[Rollout, tuple[Action, ...]]:
    if elapsed < policy.shadow_s:
        return rollout, ()
    shadow = [s for s in rollout.samples if s.stage is Stage.SHADOW and s.at_s >= rollout.since_s]
    observed = _mean_ratio(shadow)
    error = None
    if rollout.twin is not None and math.isfinite(observed):
        names = [s.name for s in observation.services]
        predicted = [rollout.twin.baseline.p99_ms[names.index(n)] / observation.services[names.index(n)].slo_p99_ms
                     for n in rollout.services if n in names]
        finite = [p for p in predicted if math.isfinite(p)]
        if finite:
            error = observed - max(finite)
    rollout = replace(rollout, shadow_p99_error_slo_share=error)
    if error is not None and abs(error) > policy.max_shadow_error_slo_share:
        return _move(rollout, Stage.AWAITING_APPROVAL, observation.time_s,
                     f"the twin's p99 was off by {error:+.0%} of the target in shadow"), ()
    canary, remaining, undo = split_for_canary(observation, rollout.actions, policy.canary_fraction)
    rollout = _move(rollout, Stage.CANARY, observation.time_s,
                    f"shadow baseline p99/target {observed:.2f}; canary of {len(canary)} action(s)",
                    canary_actions=canary, remaining_actions=remaining, rollback_actions=undo)
    return rollout, canary


def _advance_canary(rollout: Rollout, sample: HealthSample, elapsed: float,
                    policy: RolloutPolicy) -> tuple[Rollout, tuple[Action, ...]]:
    canary_start = rollout.since_s
    shadow = [s for s in rollout.samples if s.stage is Stage.SHADOW]
    canary = [s for s in rollout.samples if s.stage is Stage.CANARY and s.at_s >= canary_start]
    if elapsed >= policy.canary_settle_s and shadow and canary:
        baseline_ratio = _mean_ratio(shadow)
        # the canary's mean since it settled, as the baseline is a mean: one 10-second window's p99 scatters
        # by more than the rise judged, and a single noisy window rolled back good moves
        settled = [s for s in canary if s.at_s >= canary_start + policy.canary_settle_s] or [sample]
        canary_ratio = _mean_ratio(settled)
        rise = canary_ratio - (baseline_ratio if math.isfinite(baseline_ratio) else 0.0)
        if math.isfinite(rise) and rise > policy.rollback_p99_rise_slo_share:
            return _move(rollout, Stage.ROLLED_BACK, sample.at_s,
                         f"canary p99/target {canary_ratio:.2f} vs baseline {baseline_ratio:.2f}"), \
                rollout.rollback_actions
        baseline_errors = _error_rate(shadow[0], shadow[-1])
        canary_errors = _error_rate(canary[0], canary[-1])
        if canary_errors - baseline_errors > policy.rollback_error_rise:
            return _move(rollout, Stage.ROLLED_BACK, sample.at_s,
                         f"canary error rate {canary_errors:.2%} vs baseline {baseline_errors:.2%}"), \
                rollout.rollback_actions
    if elapsed >= policy.canary_s:
        return _move(rollout, Stage.APPLIED, sample.at_s, f"canary healthy for {elapsed:.0f} s"), \
            rollout.remaining_actions
    return rollout, ()


# ------------------------------------------------------------------ hysteresis
def action_key(observation: Observation, action: Action) -> str:
    """What counts as "the same action" for cooldowns: kind, target and direction."""
    if isinstance(action, QuarantineNode | LiftQuarantine):
        return f"{type(action).__name__}:{action.node}"
    if isinstance(action, Migrate):
        return f"Migrate:{action.service}:{action.from_node}->{action.to_node}"
    if isinstance(action, Place):
        return f"Place:{action.service}:{action.node}"
    if isinstance(action, SetConcurrency):
        return f"SetConcurrency:{action.service}"
    return f"{type(action).__name__}:{action.service}:{'up' if scale_direction(observation, action) > 0 else 'down'}"


def request_key(action: Action) -> str:
    """What counts as "the same request" to a person: the kind of action and what it acts on (a
    service, a node, a replica's node), whatever the amount; one request per key waits at a time."""
    if isinstance(action, QuarantineNode | LiftQuarantine):
        return f"{type(action).__name__}:{action.node}"
    if isinstance(action, Migrate):
        return f"Migrate:{action.service}:{action.from_node}"
    return f"{type(action).__name__}:{action.service}"


def scale_direction(observation: Observation, action: Action) -> int:
    """+1 for more capacity (more replicas, less shedding), −1 for less, 0 for anything else or no change."""
    try:
        s = observation.service_index(getattr(action, "service", ""))
    except KeyError:
        return 0
    if isinstance(action, Scale):
        return int(np.sign(action.replicas - int(observation.desired_replicas[s])))
    if isinstance(action, ShedLoad):
        return int(np.sign(float(observation.shed_fraction[s]) - action.fraction))
    return 0


@dataclass(frozen=True, slots=True)
class Cooldown:
    key: str
    until_s: float
    why: str


@dataclass(frozen=True, slots=True)
class ScaleMove:
    service: str
    direction: int
    at_s: float


@dataclass(frozen=True, slots=True)
class RolloutMemory:
    cooldowns: tuple[Cooldown, ...] = ()
    recent_scales: tuple[ScaleMove, ...] = ()


def remember(memory: RolloutMemory, rollout: Rollout, observation: Observation,
             policy: RolloutPolicy | None = None) -> RolloutMemory:
    """Fold a finished rollout into the memory (call it once, when it reaches Applied or RolledBack):
    a rolled-back action cools down; an applied scale is remembered, and a recent opposite scale it
    reverses cools down too."""
    policy = policy or RolloutPolicy()
    now = observation.time_s
    cooldowns = [c for c in memory.cooldowns if c.until_s > now]
    scales = [m for m in memory.recent_scales if m.at_s > now - policy.oscillation_window_s]
    if rollout.stage is Stage.ROLLED_BACK:
        cooldowns.extend(Cooldown(key, now + policy.cooldown_s, f"{rollout.id} was rolled back")
                         for key in rollout.action_keys)
    elif rollout.stage is Stage.APPLIED:
        for key in rollout.action_keys:
            kind, service, *rest = key.split(":")
            if kind != "Scale":
                continue
            direction = 1 if rest == ["up"] else -1
            for m in scales:
                if m.service == service and m.direction == -direction:
                    reversed_key = f"Scale:{service}:{'up' if m.direction > 0 else 'down'}"
                    cooldowns.append(Cooldown(reversed_key, now + policy.cooldown_s, f"reversed by {rollout.id}"))
            scales.append(ScaleMove(service, direction, now))
    return RolloutMemory(tuple(cooldowns), tuple(scales))


def damp(memory: RolloutMemory, proposals: Sequence[Proposal], observation: Observation,
         policy: RolloutPolicy | None = None) -> tuple[tuple[Proposal, ...], tuple[tuple[Proposal, str], ...]]:
    """(kept, suppressed with why): cooldowns and opposite scales within the oscillation window."""
    policy = policy or RolloutPolicy()
    now = observation.time_s
    active = {c.key: c for c in memory.cooldowns if c.until_s > now}
    kept: list[Proposal] = []
    suppressed: list[tuple[Proposal, str]] = []
    for p in proposals:
        key = action_key(observation, p.action)
        if key in active:
            c = active[key]
            suppressed.append((p, f"{key} is cooling down until {c.until_s:g} s ({c.why})"))
            continue
        service = p.action.service if isinstance(p.action, Scale) else None
        direction = scale_direction(observation, p.action)
        opposite = [m for m in memory.recent_scales if direction and m.service == service
                    and m.direction == -direction and now - m.at_s < policy.oscillation_window_s]
        if opposite:
            m = opposite[-1]
            suppressed.append((p, f"{key} reverses a scale at {m.at_s:g} s within {policy.oscillation_window_s:g} s"))
            continue
        kept.append(p)
    return tuple(kept), tuple(suppressed)


# ------------------------------------------------------------------ the record as JSON
def as_json(value: Any) -> Any:
    """Plain JSON values: dataclasses as objects (actions and proposals tagged with their kind), enums
    by value or name, NaN and infinities as null."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Enum):
        return value.name
    if is_dataclass(value) and not isinstance(value, type):
        is_action = isinstance(value, Scale | Place | Migrate | SetConcurrency | ShedLoad | QuarantineNode
                               | LiftQuarantine)
        out: dict[str, Any] = {"kind": type(value).__name__} if is_action else {}
        out.update({f.name: as_json(getattr(value, f.name)) for f in fields(value)})
        if isinstance(value, Rollout):
            out["agents"] = list(value.agents)
        return out
    if isinstance(value, Mapping):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [as_json(v) for v in value]
    if isinstance(value, np.generic):
        return as_json(value.item())
    if isinstance(value, np.ndarray):
        return as_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
