"""Is a scenario's demand more than its cluster can serve? An upper bound on capacity, for the report's warning.

Per service, the most it can serve is (replicas it can have) × (what one replica serves flat out on
the fastest machine it may run on): replicas are capped by `max_replicas` and by how many fit on
the nodes of its classes and regions (CPU, memory, accelerators; the service alone on the
cluster). Across services, the replicas that demand needs at a moment cannot request more CPU than
the cluster has: where they would, the bound scales down by the shortfall. Faults only remove
capacity, so they are left out. Every step of this over-estimates capacity; where demand is above
it anyway, no controller can keep every request inside the SLO and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kubeagora.model import Node, Service
from kubeagora.sim.scenario import CompiledScenario

CHECK_STEP_S = 1.0


@dataclass(frozen=True, slots=True)
class CapacityCheck:
    peak_demand_rps: float
    at_s: float
    """The worst moment: the largest shortfall where there is one, else the peak of demand."""
    demand_rps: float
    capacity_rps: float
    """Upper bound on what could be served at that moment."""
    over_capacity_s: float
    """Seconds in which demand exceeded the bound."""
    over_capacity_share: float
    """Share of all requests that arrived while demand exceeded the bound, beyond the bound."""
    limiting: str
    """What binds at the worst moment, in words."""

    @property
    def exceeded(self) -> bool:
        return self.over_capacity_s > 0

    def warning(self) -> str | None:
        """One sentence for the tables and the report, or None when demand fits."""
        if not self.exceeded:
            return None
        return (
            f"demand exceeds what the cluster can serve for {self.over_capacity_s:.0f} s "
            f"(at t = {self.at_s:.0f} s: {self.demand_rps:,.0f} req/s against at most "
            f"{self.capacity_rps:,.0f}; {self.limiting}): {100 * self.over_capacity_share:.1f} % of requests "
            "cannot be served in time by any controller"
        )


def _eligible(service: Service, node: Node) -> bool:
    if not service.can_run_on(node.node_class):
        return False
    if service.allowed_regions is not None and node.region not in service.allowed_regions:
        return False
    return service.accelerator_request == 0 or node.accelerators > 0 or node.node_class.value in ("cpu", "mcu")


def _replicas_that_fit(service: Service, node: Node) -> int:
    fits = [node.cpu_cores / max(service.cpu_request, 1e-9), node.memory_gib / max(service.memory_request_gib, 1e-9)]
    if service.accelerator_request and node.accelerators:
        fits.append(node.accelerators / service.accelerator_request)
    elif service.accelerator_request and node.node_class.value in ("gpu", "tpu"):
        return 0
    return math.floor(min(fits) + 1e-9)


def service_limits(service: Service, nodes: tuple[Node, ...]) -> tuple[int, float]:
    """(most replicas it can have alone on the cluster, requests/s one replica serves flat out at best)."""
    eligible = [n for n in nodes if _eligible(service, n)]
    fit = sum(_replicas_that_fit(service, n) for n in eligible)
    best_ms = min((service.service_time_ms[n.node_class] / n.speed_factor for n in eligible), default=math.inf)
    return min(service.max_replicas, fit), service.concurrency * 1000.0 / best_ms


def demand_rps(scenario: CompiledScenario) -> np.ndarray:
    """[second, service] expected arrivals, calls from other services included."""
    steps = max(1, int(scenario.duration_s / CHECK_STEP_S))
    external = scenario.workload.rates(0.0, steps, CHECK_STEP_S)
    rates = external
    for _ in range(2):  # a callee of a callee
        with_calls = external.copy()
        for caller, callee in scenario.downstream:
            with_calls[:, callee] += rates[:, caller]
        rates = with_calls
    return np.asarray(rates)


def check_capacity(scenario: CompiledScenario) -> CapacityCheck:
    services, nodes = scenario.services, scenario.nodes
    limits = [service_limits(s, nodes) for s in services]
    max_replicas = np.array([m for m, _ in limits], dtype=np.float64)
    per_replica = np.array([r for _, r in limits])
    cpu_request = np.array([s.cpu_request for s in services])
    demand = demand_rps(scenario)
    needed = np.minimum(np.ceil(demand / per_replica[None, :] - 1e-9), max_replicas[None, :])
    per_service_cap = max_replicas * per_replica
    servable = np.minimum(demand, per_service_cap[None, :])
    cpu_total = sum(n.cpu_cores for n in nodes)
    cpu_needed = (needed * cpu_request[None, :]).sum(axis=1)
    cpu_share = np.minimum(1.0, cpu_total / np.maximum(cpu_needed, 1e-9))
    capacity = servable.sum(axis=1) * cpu_share
    total = demand.sum(axis=1)
    short = np.maximum(total - capacity, 0.0)
    over = short > 1e-6 * np.maximum(total, 1.0)
    peak = int(np.argmax(total))
    worst = int(np.argmax(short)) if over.any() else peak
    capped = demand[worst] > per_service_cap + 1e-9
    if cpu_share[worst] < 1.0:
        limiting = f"the cluster's {cpu_total:g} CPU cores (demand needs {cpu_needed[worst]:.0f})"
    elif capped.any():
        i = int(np.argmax(demand[worst] - per_service_cap))
        limiting = (
            f"{services[i].name} needs {math.ceil(demand[worst, i] / per_replica[i])} replicas at "
            f"{demand[worst, i]:,.0f} req/s and can have {int(max_replicas[i])}"
        )
    else:
        limiting = "nothing"
    return CapacityCheck(
        peak_demand_rps=float(total[peak]),
        at_s=worst * CHECK_STEP_S,
        demand_rps=float(total[worst]),
        capacity_rps=float(capacity[worst]),
        over_capacity_s=float(over.sum() * CHECK_STEP_S),
        over_capacity_share=float(short.sum() / max(total.sum(), 1e-9)),
        limiting=limiting,
    )
