"""Scheduler: priority lanes and graceful degradation when Ready capacity cannot keep up.

The engine routes requests itself (no per-request steering), so the one lever left is admission:
`ShedLoad` rejects a share of a service's arrivals at the ingress. Queuing them instead would hold
every request of the service behind work it cannot finish in time (head-of-line blocking) and
spread the overload into the whole tail. The scheduler sheds only when all of these hold:

- the service is out of its SLO now (p95 or p99 over target — never a service within it) and its
  arrivals exceed its Ready capacity;
- no scale-up can land in time: its fastest cold start is longer than `max_wait_s`, or it is at its
  replica maximum;
- it is not in the protected lane: services with `priority_weight ≥ protected_priority_weight`
  are never shed; the rest are shed lowest priority first, each only by its excess over
  `target_load_share` of its Ready capacity.

A shed is lifted (`ShedLoad(service, 0)`) once the arrivals fit `lift_load_share` of Ready capacity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubeagora.agents.base import AgentContext, Lane, Proposal
from kubeagora.agents.signals import fastest_cold_start_s, latency_ratio, load_ratio
from kubeagora.model import Observation, ShedLoad


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    protected_priority_weight: float = 2.0
    """Services at or above this priority weight are never shed (default 2.0: twice the default
    weight, i.e. declared important); they keep the fast lane while others degrade."""
    max_wait_s: float = 5.0
    """A scale-up that is Ready within this long is worth waiting for instead of shedding (default
    5 s: half a latency window). CPU pods start in ~8 s, accelerator pods in 25–30 s."""
    target_load_share: float = 0.9
    """Shed down to this share of Ready capacity (default 90 %), so the queue drains."""
    max_shed_fraction: float = 0.8
    """Never reject more than this share of a service's arrivals (default 80 %): some users keep
    being served, and the measurements that show recovery keep coming."""
    lift_load_share: float = 0.8
    """Lift the shed once the arrivals fit this share of Ready capacity (default 80 %, below the
    shedding point: hysteresis)."""
    min_change: float = 0.05
    """A running shed is re-set only when the wanted fraction moves by more than this (default 5 points)."""


@dataclass(frozen=True, slots=True)
class SchedulerState:
    shed_fraction: Mapping[str, float] = field(default_factory=dict)
    """service → share of arrivals this agent asked to reject (absent: none)."""


class SchedulerAgent:
    name = "scheduler"

    def __init__(self, settings: SchedulerSettings | None = None) -> None:
        self.settings = settings or SchedulerSettings()

    def initial_state(self, observation: Observation) -> SchedulerState:
        return SchedulerState()

    def decide(self, observation: Observation, state: SchedulerState,
               context: AgentContext) -> tuple[Sequence[Proposal], SchedulerState]:
        cfg, obs = self.settings, observation
        shed = dict(state.shed_fraction)
        proposals: list[Proposal] = []
        by_priority = sorted(range(len(obs.services)), key=lambda s: (obs.services[s].priority_weight, s))
        for s in by_priority:
            service = obs.services[s]
            arrival, capacity = float(obs.arrival_rps[s]), float(obs.capacity_rps[s])
            current = shed.get(service.name, 0.0)
            if current > 0 and arrival <= capacity * cfg.lift_load_share:
                reason = (f"{service.name}: {arrival:.0f} req/s fit {100 * cfg.lift_load_share:.0f} % of "
                          f"{capacity:.0f} req/s Ready capacity again — stop shedding")
                proposals.append(Proposal(self.name, ShedLoad(service.name, 0.0, reason), reason,
                                          inputs={"arrival_rps": arrival, "capacity_rps": capacity},
                                          predicted_effect={"shed_fraction": -current}, risk=0.0,
                                          lane=Lane.SLO))
                shed.pop(service.name)
                continue
            wanted = self._wanted_fraction(obs, s)
            if wanted is None or abs(wanted - current) <= cfg.min_change:
                continue
            cold_start_s = fastest_cold_start_s(obs, s)
            reason = (f"{service.name} (priority {service.priority_weight:g}): {arrival:.0f} req/s over "
                      f"{capacity:.0f} req/s Ready, p99 {float(obs.p99_ms[s]):.0f} ms of {service.slo_p99_ms:.0f} ms, "
                      f"a new replica needs {cold_start_s:.0f} s — reject {100 * wanted:.0f} % at the ingress")
            proposals.append(Proposal(
                self.name, ShedLoad(service.name, wanted, reason), reason,
                inputs={"arrival_rps": arrival, "capacity_rps": capacity, "p99_ms": float(obs.p99_ms[s]),
                        "cold_start_s": cold_start_s, "priority_weight": service.priority_weight},
                predicted_effect={"shed_fraction": wanted - current, "admitted_rps": -arrival * (wanted - current)},
                # shed requests are lost for good: the risk is the share of users turned away
                risk=wanted, lane=Lane.SLO))
            shed[service.name] = wanted
        return proposals, SchedulerState(shed)

    def _wanted_fraction(self, obs: Observation, s: int) -> float | None:
        """The share of arrivals to reject, or None when this service must not be shed."""
        cfg, service = self.settings, obs.services[s]
        if service.priority_weight >= cfg.protected_priority_weight:
            return None
        if latency_ratio(obs, s) <= 1.0 or load_ratio(obs, s) <= 1.0:
            return None  # within its SLO, or the overload is not about capacity
        at_max = int(obs.desired_replicas[s]) >= service.max_replicas
        if fastest_cold_start_s(obs, s) <= cfg.max_wait_s and not at_max:
            return None  # a scale-up lands in time
        admitted = float(obs.capacity_rps[s]) * cfg.target_load_share
        return min(max(1.0 - admitted / float(obs.arrival_rps[s]), 0.0), cfg.max_shed_fraction)
