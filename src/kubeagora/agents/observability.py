"""Observability: per-service telemetry onto the bus within a cardinality budget, and SLO alerts.

Every tick the agent compares each service's figures (arrivals, p95, p99, Ready replicas) with what it
last published. A service whose figures moved by more than `min_relative_change` gets a fresh
`ServiceMetrics` event (the bus coalesces them per service, so a reader sees the newest only). When
more services changed than `max_series_per_tick`, only the top-k by relative change go out this tick;
the rest keep their last published figures and compete again next tick, so nothing is starved for
long and the bus never carries more than the budget. A service whose last-window p95 or p99 is over
target raises an `SloAlert` (Lane.SLO) every tick it stays over — alerts are never budgeted away.

The agent proposes no actions: its output is the events in `ObservabilityState.events`, which the MAS
publishes (`publish_events`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubeagora.agents.base import AgentContext, Proposal
from kubeagora.coordination.bus import Bus
from kubeagora.coordination.events import ServiceMetrics, SloAlert
from kubeagora.model import Observation


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    max_series_per_tick: int = 50
    """Metric events published per tick at most (default 50): at 1,000 services a full snapshot every
    second would be most of the bus's routine budget (4,096 events)."""
    min_relative_change: float = 0.1
    """A figure must move by this share of its last published value to be republished (default 10 %,
    the HPA's tolerance: smaller moves do not change any decision)."""


@dataclass(frozen=True, slots=True)
class ObservabilityState:
    published: Mapping[str, ServiceMetrics] = field(default_factory=dict)
    """service → the figures last published for it."""
    events: tuple[ServiceMetrics | SloAlert, ...] = ()
    """What this tick publishes: alerts first, then metrics by descending change."""
    suppressed: int = 0
    """Changed services held back this tick by the budget."""


def relative_change(new: ServiceMetrics, old: ServiceMetrics | None) -> float:
    """The largest relative move of any figure (inf for a service never published; NaN-safe)."""
    if old is None:
        return math.inf

    def moved(a: float, b: float) -> float:
        if math.isnan(a) and math.isnan(b):
            return 0.0
        if math.isnan(a) or math.isnan(b):
            return math.inf
        return abs(a - b) / max(abs(b), 1e-9)

    return max(moved(new.arrival_rps, old.arrival_rps), moved(new.p95_ms, old.p95_ms),
               moved(new.p99_ms, old.p99_ms), moved(float(new.ready_replicas), float(old.ready_replicas)))


def publish_events(bus: Bus, state: ObservabilityState) -> None:
    for event in state.events:
        bus.publish(event)


class ObservabilityAgent:
    name = "observability"

    def __init__(self, settings: ObservabilitySettings | None = None) -> None:
        self.settings = settings or ObservabilitySettings()

    def initial_state(self, observation: Observation) -> ObservabilityState:
        return ObservabilityState()

    def decide(self, observation: Observation, state: ObservabilityState,
               context: AgentContext) -> tuple[Sequence[Proposal], ObservabilityState]:
        cfg, obs = self.settings, observation
        alerts: list[ServiceMetrics | SloAlert] = []
        changed: list[tuple[float, ServiceMetrics]] = []
        for s, service in enumerate(obs.services):
            metrics = ServiceMetrics(service.name, obs.time_s, float(obs.arrival_rps[s]), float(obs.p95_ms[s]),
                                     float(obs.p99_ms[s]), int(obs.ready_replicas[s]))
            change = relative_change(metrics, state.published.get(service.name))
            if change > cfg.min_relative_change:
                changed.append((change, metrics))
            if metrics.p95_ms > service.slo_p95_ms or metrics.p99_ms > service.slo_p99_ms:
                alerts.append(SloAlert(service.name, obs.time_s, metrics.p99_ms, service.slo_p99_ms))
        changed.sort(key=lambda pair: -pair[0])  # stable: ties keep service order
        sent = [m for _, m in changed[:cfg.max_series_per_tick]]
        published = {**state.published, **{m.service: m for m in sent}}
        return (), ObservabilityState(published, (*alerts, *sent), max(len(changed) - len(sent), 0))
