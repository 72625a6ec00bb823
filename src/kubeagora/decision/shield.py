"""The shield: formal guards every proposal passes before the twin sees it.

A guard is a small pure predicate `guard(view, proposal) -> Violation | None` over a `ShieldView`:
the observation, the policy, the disruption history, and what the proposals already allowed in this
batch will do (`Projection`). `filter_proposals` runs the guards over the batch in lane order
(incidents first), keeps a proposal only when no guard objects, and folds each kept proposal into the
projection, so budgets and rate limits hold for the allowed set as a whole, not just one by one.

The same allowed set filtered again with the same input state passes unchanged (the shield is
idempotent): a guard's answer depends only on the observation, the state, and the proposals allowed
before it, and those are the same the second time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from kubeagora.agents.base import Lane, Proposal
from kubeagora.agents.signals import per_replica_capacity_rps
from kubeagora.model import Migrate, NodeClass, Observation, Place, QuarantineNode, Scale, ShedLoad

ACCELERATOR_CLASSES = (NodeClass.GPU, NodeClass.TPU)


@dataclass(frozen=True, slots=True)
class ShieldPolicy:
    """The guardrails (a OrchestrationPolicy's spec). None disables a budget."""

    safe_utilisation: float = 0.7
    """Utilisation a replica may run at and still meet its SLO (0..1]. A service needs
    ceil(arrival_rps / (per-replica capacity × safe_utilisation)) Ready replicas; no action may take it
    below that. 0.7 keeps an M/M/c queue's waiting time small at the replica counts we run."""
    max_total_cpu_cores: float | None = None
    """Cluster-wide CPU requests (cores) the workloads may hold; a move that raises them past it is refused."""
    max_total_accelerators: int | None = None
    """Accelerators (GPUs + TPUs) the workloads may hold."""
    max_power_w: float | None = None
    """Energy cap: projected wall power of all nodes (W). A new replica is counted at its share of its
    node's dynamic power (peak − idle) × cpu_request / cores, i.e. as if it ran flat out."""
    disruption_window_s: float = 300.0
    """Sliding window (s) over which disruptive actions (scale-downs, migrations, quarantines) are counted."""
    max_disruptions_per_service: int = 2
    """Disruptive actions touching one service per window."""
    max_disruptions_cluster: int = 6
    """Disruptive actions in the whole cluster per window."""
    routine_disruption_share: float = 2.0 / 3.0
    """Routine disruptive actions (optimisations: a scale-down, a move to a cheaper node) may fill only this
    share of `max_disruptions_cluster` (rounded down; 4 of 6): the rest is kept for moves that repair a
    service missing its SLO and for incidents, so a wave of optimisations cannot hold a repair back for a
    whole window. 1 = no reserve."""
    min_ready_replicas: int = 1
    """k: a migration or quarantine must leave at least this many Ready replicas of every service it touches."""
    min_available_fraction: float | None = None
    """A migration or quarantine must also leave this share of a service's desired replicas Ready
    (a policy's disruptionBudget.minAvailablePct / 100); None: only ``min_ready_replicas``."""
    max_carbon_g_per_kwh: float | None = None
    """Carbon cap: new capacity goes only to regions whose grid intensity (gCO2/kWh) is at most this."""
    privileged_window_s: float = 3600.0
    """Sliding window (s) for privileged actions (node quarantines)."""
    max_quarantines_per_window: int = 1
    """Node quarantines per privileged window: a compromised agent must not cordon the fleet."""

    def __post_init__(self) -> None:
        if not 0.0 < self.safe_utilisation <= 1.0:
            raise ValueError(f"safe_utilisation must be in (0, 1], got {self.safe_utilisation}")
        for name in ("disruption_window_s", "privileged_window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_disruptions_per_service", "max_disruptions_cluster", "min_ready_replicas",
                     "max_quarantines_per_window"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0.0 <= self.routine_disruption_share <= 1.0:
            raise ValueError(f"routine_disruption_share must be in [0, 1], got {self.routine_disruption_share}")
        if self.min_available_fraction is not None and not 0.0 <= self.min_available_fraction <= 1.0:
            raise ValueError(f"min_available_fraction must be in [0, 1], got {self.min_available_fraction}")


@dataclass(frozen=True, slots=True)
class DisruptionEvent:
    """A disruptive action the shield let through (the rate limits count these)."""

    at_s: float
    kind: str
    """"scale-down", "migrate" or "quarantine"."""
    services: tuple[str, ...]
    """Services it touches (a quarantine touches every service with a replica on the node)."""


@dataclass(frozen=True, slots=True)
class ShieldState:
    events: tuple[DisruptionEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a guard refuses a proposal, with the figures it compared."""

    guard: str
    reason: str
    figures: Mapping[str, float] = field(default_factory=dict)
    person_may_approve: bool = False
    """A soft limit (budget, rate limit, availability) a person may override (AwaitingApproval);
    a hard one (SLO invariant, replica bounds, residency) is Rejected outright."""


@dataclass(frozen=True, slots=True)
class Rejection:
    proposal: Proposal
    violation: Violation


@dataclass(frozen=True, slots=True)
class Projection:
    """What the proposals allowed so far in this batch do to the cluster."""

    desired: Mapping[str, int]
    """Desired replicas per service after the allowed scale actions."""
    ready_lost: Mapping[str, int] = field(default_factory=dict)
    """Ready replicas per service that allowed migrations and quarantines take away (worst case)."""
    quarantined: frozenset[str] = frozenset()
    cpu_cores_delta: float = 0.0
    accelerators_delta: int = 0
    power_w_delta: float = 0.0
    new_events: tuple[DisruptionEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class ShieldView:
    """Everything a guard may look at."""

    observation: Observation
    policy: ShieldPolicy
    state: ShieldState
    projection: Projection


Guard = Callable[[ShieldView, Proposal], Violation | None]


# ------------------------------------------------------------------ helpers shared by guards and risk
def replicas_needed(obs: Observation, s: int, safe_utilisation: float) -> int:
    """Ready replicas the service's current load needs at the safe utilisation."""
    load_rps = float(obs.arrival_rps[s])
    if load_rps <= 0:
        return 0
    return math.ceil(load_rps / (per_replica_capacity_rps(obs, s) * safe_utilisation) - 1e-9)


def within_slo(obs: Observation, s: int) -> bool:
    """p95 and p99 of the last window within target; with nothing served, whether capacity covers the load."""
    svc = obs.services[s]
    p95, p99 = float(obs.p95_ms[s]), float(obs.p99_ms[s])
    if math.isnan(p99) or math.isnan(p95):
        return bool(obs.arrival_rps[s] <= obs.capacity_rps[s])
    return p95 <= svc.slo_p95_ms and p99 <= svc.slo_p99_ms


def ready_on_node(obs: Observation, node: int) -> dict[str, int]:
    """Ready replicas per service on one node."""
    on = obs.replica_ready & (obs.replica_node == node)
    counts = np.bincount(obs.replica_service[on], minlength=len(obs.services))
    return {obs.services[s].name: int(c) for s, c in enumerate(counts) if c}


def ready_of_service_on_node(obs: Observation, s: int, node: int) -> int:
    return int(np.count_nonzero(obs.replica_ready & (obs.replica_node == node) & (obs.replica_service == s)))


def accelerators_per_replica(obs: Observation, s: int, node: int | None) -> int:
    """Accelerators one replica takes: on a named node if given, else wherever it can run (it needs one if
    it runs only on accelerator classes)."""
    svc = obs.services[s]
    if node is not None:
        return svc.accelerator_request if obs.nodes[node].node_class in ACCELERATOR_CLASSES else 0
    only_accelerators = all(c in ACCELERATOR_CLASSES for c in svc.service_time_ms)
    return svc.accelerator_request if only_accelerators else 0


def replica_power_w(obs: Observation, s: int, node: int | None) -> float:
    """Dynamic power of one replica running flat out on the node (mean over nodes that can run it)."""
    svc = obs.services[s]
    nodes = [node] if node is not None else [j for j, n in enumerate(obs.nodes) if svc.can_run_on(n.node_class)]
    if not nodes:
        return 0.0
    shares = [(obs.nodes[j].peak_power_w - obs.nodes[j].idle_power_w) * min(svc.cpu_request / obs.nodes[j].cpu_cores,
                                                                              1.0) for j in nodes]
    return float(np.mean(shares))


def _service(view: ShieldView, proposal: Proposal) -> int | None:
    name = getattr(proposal.action, "service", None)
    if name is None:
        return None
    try:
        return view.observation.service_index(name)
    except KeyError:
        return None


def _node(obs: Observation, name: str) -> int | None:
    try:
        return obs.node_index(name)
    except KeyError:
        return None


def _desired_now(view: ShieldView, s: int) -> int:
    name = view.observation.services[s].name
    return view.projection.desired.get(name, int(view.observation.desired_replicas[s]))


def _ready_now(view: ShieldView, s: int) -> int:
    name = view.observation.services[s].name
    return int(view.observation.ready_replicas[s]) - view.projection.ready_lost.get(name, 0)


def ready_taken(obs: Observation, projection: Projection, proposal: Proposal) -> dict[str, int]:
    """Ready replicas per service a migration or quarantine takes away (a migration counts its source as
    gone: on a real cluster an eviction-based move is break-before-make)."""
    a = proposal.action
    if isinstance(a, Migrate):
        src = _node(obs, a.from_node)
        try:
            s = obs.service_index(a.service)
        except KeyError:
            return {}
        if src is None or ready_of_service_on_node(obs, s, src) == 0:
            return {}
        return {a.service: 1}
    if isinstance(a, QuarantineNode):
        n = _node(obs, a.node)
        if n is None or a.node in projection.quarantined:
            return {}
        return ready_on_node(obs, n)
    return {}


def disruption_of(view: ShieldView, proposal: Proposal) -> DisruptionEvent | None:
    """The disruption a proposal would cause (None if it disrupts nothing)."""
    a, obs, t = proposal.action, view.observation, view.observation.time_s
    if isinstance(a, Scale):
        s = _service(view, proposal)
        if s is not None and a.replicas < _desired_now(view, s):
            return DisruptionEvent(t, "scale-down", (a.service,))
    elif isinstance(a, Migrate):
        return DisruptionEvent(t, "migrate", (a.service,))
    elif isinstance(a, QuarantineNode):
        n = _node(obs, a.node)
        touched = tuple(sorted(ready_on_node(obs, n))) if n is not None else ()
        return DisruptionEvent(t, "quarantine", touched)
    return None


# ------------------------------------------------------------------ the guards
def slo_invariant(view: ShieldView, proposal: Proposal) -> Violation | None:
    """Never scale (or quarantine) a service below the replicas its load needs; never shed a healthy service."""
    a, obs, pol = proposal.action, view.observation, view.policy
    if isinstance(a, Scale):
        s = _service(view, proposal)
        if s is None:
            return None
        current, needed = _desired_now(view, s), replicas_needed(obs, s, pol.safe_utilisation)
        if a.replicas < current and a.replicas < needed:
            return Violation("slo-invariant", f"{a.service}: scaling to {a.replicas} leaves fewer replicas than "
                             f"its load needs ({needed} at {pol.safe_utilisation:.0%} utilisation)",
                             {"replicas": a.replicas, "replicas_needed": needed,
                              "arrival_rps": float(obs.arrival_rps[s])})
    elif isinstance(a, ShedLoad):
        s = _service(view, proposal)
        if s is not None and a.fraction > obs.shed_fraction[s] and within_slo(obs, s):
            svc = obs.services[s]
            return Violation("slo-invariant", f"{a.service}: shedding {a.fraction:.0%} of a service within its SLO",
                             {"fraction": a.fraction, "p99_ms": float(obs.p99_ms[s]), "slo_p99_ms": svc.slo_p99_ms})
    elif isinstance(a, QuarantineNode):
        for name, taken in ready_taken(obs, view.projection, proposal).items():
            s = obs.service_index(name)
            left, needed = _ready_now(view, s) - taken, replicas_needed(obs, s, pol.safe_utilisation)
            if left < needed:
                return Violation("slo-invariant", f"quarantining {a.node} leaves {name} {left} Ready replicas, "
                                 f"its load needs {needed}",
                                 {"ready_left": left, "replicas_needed": needed}, person_may_approve=True)
    return None


def replica_bounds(view: ShieldView, proposal: Proposal) -> Violation | None:
    """Desired replicas stay within the service's [min_replicas, max_replicas]."""
    a = proposal.action
    s = _service(view, proposal)
    if s is None:
        return None
    svc = view.observation.services[s]
    if isinstance(a, Scale):
        target = a.replicas
    elif isinstance(a, Place):
        target = _desired_now(view, s) + 1
    else:
        return None
    if target < svc.min_replicas or target > svc.max_replicas:
        return Violation("replica-bounds", f"{svc.name}: {target} replicas is outside "
                         f"[{svc.min_replicas}, {svc.max_replicas}]",
                         {"replicas": target, "min_replicas": svc.min_replicas, "max_replicas": svc.max_replicas})
    return None


@dataclass(frozen=True, slots=True)
class ResourceDelta:
    cpu_cores: float = 0.0
    accelerators: int = 0
    power_w: float = 0.0


def resource_delta(view: ShieldView, proposal: Proposal) -> ResourceDelta:
    """What a proposal adds to the budgets (negative frees). A migration holds both pods for a while."""
    a, obs = proposal.action, view.observation
    s = _service(view, proposal)
    if s is None:
        return ResourceDelta()
    svc = obs.services[s]
    if isinstance(a, Scale):
        pods = a.replicas - _desired_now(view, s)
        return ResourceDelta(pods * svc.cpu_request, pods * accelerators_per_replica(obs, s, None),
                             pods * replica_power_w(obs, s, None))
    if isinstance(a, Place | Migrate):
        node = _node(obs, a.node if isinstance(a, Place) else a.to_node)
        if node is None:
            return ResourceDelta()
        return ResourceDelta(svc.cpu_request, accelerators_per_replica(obs, s, node), replica_power_w(obs, s, node))
    return ResourceDelta()


def budget_bounds(view: ShieldView, proposal: Proposal) -> Violation | None:
    """Total CPU, accelerators and power stay under the policy's caps (a move that lowers them always passes)."""
    pol, proj, obs = view.policy, view.projection, view.observation
    d = resource_delta(view, proposal)
    checks = (
        ("cpu", d.cpu_cores, float(obs.node_cpu_allocated.sum()) + proj.cpu_cores_delta, pol.max_total_cpu_cores,
         "cores"),
        ("accelerators", float(d.accelerators), float(obs.node_accelerators_allocated.sum()) + proj.accelerators_delta,
         None if pol.max_total_accelerators is None else float(pol.max_total_accelerators), "accelerators"),
        ("power", d.power_w, float(obs.node_power_w.sum()) + proj.power_w_delta, pol.max_power_w, "W"),
    )
    for name, delta, used, cap, unit in checks:
        if cap is not None and delta > 0 and used + delta > cap + 1e-9:
            return Violation("budget", f"{name} would reach {used + delta:.1f} {unit}, over the cap of {cap:g}",
                             {f"{name}_used": used, f"{name}_delta": delta, f"{name}_cap": cap},
                             person_may_approve=True)
    return None


def data_residency(view: ShieldView, proposal: Proposal) -> Violation | None:
    """A replica may only go to a node in one of the service's allowed regions."""
    a, obs = proposal.action, view.observation
    if not isinstance(a, Place | Migrate):
        return None
    s = _service(view, proposal)
    target = a.node if isinstance(a, Place) else a.to_node
    n = _node(obs, target)
    if s is None or n is None:
        return None
    allowed = obs.services[s].allowed_regions
    region = obs.nodes[n].region
    if allowed is not None and region not in allowed:
        return Violation("data-residency", f"{a.service} may run only in {', '.join(allowed)}; "
                         f"{target} is in {region}", {})
    return None


def carbon_cap(view: ShieldView, proposal: Proposal) -> Violation | None:
    """New capacity only where the grid is clean enough: a replica placed or moved to a node in a region
    over the cap, or a scale-up of a service whose every possible node is over it, is refused."""
    cap, obs, a = view.policy.max_carbon_g_per_kwh, view.observation, proposal.action
    if cap is None:
        return None
    carbon = obs.region_carbon_g_per_kwh
    if isinstance(a, Place | Migrate):
        target = a.node if isinstance(a, Place) else a.to_node
        n = _node(obs, target)
        if n is None:
            return None
        region = obs.nodes[n].region
        intensity = float(carbon.get(region, 0.0))
        if intensity > cap:
            return Violation("carbon", f"{target} is in {region} at {intensity:g} gCO2/kWh, over the cap of {cap:g}",
                             {"carbon_g_per_kwh": intensity, "cap_g_per_kwh": cap}, person_may_approve=True)
    elif isinstance(a, Scale):
        s = _service(view, proposal)
        if s is None or a.replicas <= _desired_now(view, s):
            return None
        svc = obs.services[s]
        regions = {n.region for n in obs.nodes if svc.can_run_on(n.node_class)
                   and (svc.allowed_regions is None or n.region in svc.allowed_regions)}
        clean = [r for r in regions if float(carbon.get(r, 0.0)) <= cap]
        if regions and not clean:
            lowest = min(float(carbon.get(r, 0.0)) for r in regions)
            return Violation("carbon", f"{a.service}: every region it can run in is over the cap of {cap:g} "
                             f"gCO2/kWh (lowest {lowest:g})", {"carbon_g_per_kwh": lowest, "cap_g_per_kwh": cap},
                             person_may_approve=True)
    return None


def _count(events: Sequence[DisruptionEvent], since_s: float, service: str | None = None,
           kind: str | None = None) -> int:
    return sum(1 for e in events if e.at_s > since_s and (service is None or service in e.services)
               and (kind is None or e.kind == kind))


def routine_disruption_limit(policy: ShieldPolicy) -> int:
    """How many disruptive actions in the window a routine one may still join (see `routine_disruption_share`)."""
    return math.floor(policy.max_disruptions_cluster * policy.routine_disruption_share + 1e-9)


def disruption_rate(view: ShieldView, proposal: Proposal) -> Violation | None:
    """At most N disruptive actions per window per service, and M cluster-wide, of which routine ones
    (lane ROUTINE) fill only the first `routine_disruption_limit`."""
    event = disruption_of(view, proposal)
    if event is None:
        return None
    pol = view.policy
    since = view.observation.time_s - pol.disruption_window_s
    history = (*view.state.events, *view.projection.new_events)
    cluster = _count(history, since)
    routine = proposal.lane == Lane.ROUTINE
    limit = routine_disruption_limit(pol) if routine else pol.max_disruptions_cluster
    if cluster + 1 > limit:
        what = (f"routine limit {limit} of {pol.max_disruptions_cluster}: the rest is kept for SLO repairs"
                if routine and limit < pol.max_disruptions_cluster else f"cluster limit {limit}")
        return Violation("disruption-rate", f"{cluster} disruptive actions in the last {pol.disruption_window_s:g} s "
                         f"already ({what})",
                         {"disruptions": cluster, "limit": limit,
                          "window_s": pol.disruption_window_s}, person_may_approve=True)
    for name in event.services:
        n = _count(history, since, service=name)
        if n + 1 > pol.max_disruptions_per_service:
            return Violation("disruption-rate", f"{name}: {n} disruptive actions in the last "
                             f"{pol.disruption_window_s:g} s already (limit {pol.max_disruptions_per_service})",
                             {"disruptions": n, "limit": pol.max_disruptions_per_service,
                              "window_s": pol.disruption_window_s}, person_may_approve=True)
    return None


def min_availability(view: ShieldView, proposal: Proposal) -> Violation | None:
    """A migration or quarantine leaves at least k Ready replicas of every service it touches (k: the
    larger of ``min_ready_replicas`` and ``min_available_fraction`` of its desired replicas)."""
    pol = view.policy
    for name, taken in ready_taken(view.observation, view.projection, proposal).items():
        s = view.observation.service_index(name)
        k = pol.min_ready_replicas
        if pol.min_available_fraction is not None:
            k = max(k, math.ceil(pol.min_available_fraction * _desired_now(view, s) - 1e-9))
        left = _ready_now(view, s) - taken
        if left < k:
            return Violation("min-availability", f"{name} would keep {left} Ready replicas (at least {k} required)",
                             {"ready_left": left, "min_ready_replicas": k}, person_may_approve=True)
    return None


def privileged_rate(view: ShieldView, proposal: Proposal) -> Violation | None:
    """Node quarantines (privileged: they cordon a machine) are rate-limited on their own window."""
    a = proposal.action
    if not isinstance(a, QuarantineNode):
        return None
    pol = view.policy
    history = (*view.state.events, *view.projection.new_events)
    n = _count(history, view.observation.time_s - pol.privileged_window_s, kind="quarantine")
    if n + 1 > pol.max_quarantines_per_window:
        return Violation("privileged-rate", f"{n} node quarantines in the last {pol.privileged_window_s:g} s "
                         f"already (limit {pol.max_quarantines_per_window})",
                         {"quarantines": n, "limit": pol.max_quarantines_per_window,
                          "window_s": pol.privileged_window_s}, person_may_approve=True)
    return None


DEFAULT_GUARDS: tuple[Guard, ...] = (slo_invariant, replica_bounds, data_residency, budget_bounds, carbon_cap,
                                     min_availability, disruption_rate, privileged_rate)
"""Hard guards first, so a proposal that is plainly wrong names that, not a soft limit."""


# ------------------------------------------------------------------ the filter
def initial_projection(obs: Observation) -> Projection:
    return Projection(desired={s.name: int(obs.desired_replicas[i]) for i, s in enumerate(obs.services)})


def fold(view: ShieldView, proposal: Proposal) -> Projection:
    """The projection once `proposal` is allowed."""
    proj, a, obs = view.projection, proposal.action, view.observation
    d = resource_delta(view, proposal)
    desired = dict(proj.desired)
    s = _service(view, proposal)
    if isinstance(a, Scale) and s is not None:
        desired[a.service] = a.replicas
    elif isinstance(a, Place) and s is not None:
        desired[a.service] = desired[a.service] + 1
    lost = dict(proj.ready_lost)
    for name, taken in ready_taken(obs, proj, proposal).items():
        lost[name] = lost.get(name, 0) + taken
    quarantined = proj.quarantined | {a.node} if isinstance(a, QuarantineNode) else proj.quarantined
    event = disruption_of(view, proposal)
    return Projection(desired, lost, quarantined, proj.cpu_cores_delta + d.cpu_cores,
                      proj.accelerators_delta + d.accelerators, proj.power_w_delta + d.power_w,
                      proj.new_events + ((event,) if event is not None else ()))


def check(view: ShieldView, proposal: Proposal, guards: Sequence[Guard] = DEFAULT_GUARDS) -> Violation | None:
    for guard in guards:
        violation = guard(view, proposal)
        if violation is not None:
            return violation
    return None


def filter_proposals(observation: Observation, proposals: Sequence[Proposal], policy: ShieldPolicy,
                     state: ShieldState, guards: Sequence[Guard] = DEFAULT_GUARDS,
                     ) -> tuple[tuple[Proposal, ...], tuple[Rejection, ...], ShieldState]:
    """(allowed, rejected with the guard and figures, the state with the allowed disruptions recorded).

    Proposals are taken in lane order (incidents first; stable within a lane)."""
    view = ShieldView(observation, policy, state, initial_projection(observation))
    allowed: list[Proposal] = []
    rejected: list[Rejection] = []
    for proposal in sorted(proposals, key=lambda p: -int(p.lane)):
        violation = check(view, proposal, guards)
        if violation is not None:
            rejected.append(Rejection(proposal, violation))
            continue
        allowed.append(proposal)
        view = replace(view, projection=fold(view, proposal))
    horizon = observation.time_s - max(policy.disruption_window_s, policy.privileged_window_s)
    kept = tuple(e for e in (*state.events, *view.projection.new_events) if e.at_s > horizon)
    return tuple(allowed), tuple(rejected), ShieldState(kept)


def release(state: ShieldState, now_s: float, proposals: Sequence[Proposal]) -> ShieldState:
    """The state without the disruptions that `proposals` recorded at `now_s`: moves that passed the shield
    but were not delivered (the twin rejected them, or had no time for them this tick) disrupt nothing, so
    they must not use the budget that the moves which do happen need."""
    events = list(state.events)
    for p in proposals:
        a = p.action
        if not isinstance(a, Migrate | Scale):
            continue
        kind = "migrate" if isinstance(a, Migrate) else "scale-down"
        for i in range(len(events) - 1, -1, -1):
            e = events[i]
            if e.at_s == now_s and e.kind == kind and e.services == (a.service,):
                del events[i]
                break
    return ShieldState(tuple(events))


# the brief's name for it; `filter` would shadow the builtin inside this module
filter = filter_proposals
