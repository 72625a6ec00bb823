"""The oracle: knows the future arrivals and provisions just enough, early enough.

Not a real system: the lower bound the others are measured against. It reads the compiled
scenario's workload (`Workload.rates`), so it sees the expected arrivals of every service ahead of
time (not the Poisson draws, and not the faults). Every 5 s, per service:
- the peak expected rate over [now, now + cold start + interval] (what replicas started now must
  still cover when the next decision can act), plus two standard deviations of a 10-second Poisson
  count (the recorder judges SLOs over 10 s windows);
- the least replica count whose predicted p95 and p99 meet the SLO (with 10 % headroom for the
  co-location slowdown it cannot see) under `sim.latency`'s model: lognormal service time on the
  planned node at its current speed, Sakasegawa's probability of waiting, an exponential
  Allen–Cunneen wait, plus the network from the users' region to that node;
- it scales up by starting replicas itself (`Place`) on the node with the lowest expected tail
  (network + service time), least allocated among equals, and moves (`Migrate`, one per service
  per tick) a replica sitting on a node far worse than the best one that fits;
- it scales down as soon as the look-ahead window no longer needs the replicas.
Replicas on nodes the control plane marks NotReady do not count as capacity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kubeagora.controllers.packing import NodeLedger, best_node
from kubeagora.controllers.policy_parts import replica_bounds, service_time_matrix_ms
from kubeagora.model import Action, FloatArray, Migrate, Observation, Place, Scale
from kubeagora.sim import latency as lat
from kubeagora.sim.scenario import CompiledScenario

MAX_UTILISATION = 0.97
"""Above this the queue model's waits diverge; the oracle never plans a replica this busy."""


@dataclass(frozen=True, slots=True)
class OracleSettings:
    interval_s: float = 5.0
    slo_headroom: float = 0.9
    noise_sigmas: float = 2.0
    noise_window_s: float = 10.0
    migrate_when_worse_ms: float = 20.0
    """Move a replica when its node's expected tail is this much worse than the best node that fits."""


@lru_cache(maxsize=32)
def _latency_samples(cv: float, samples: int = 2000) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Fixed draws of Z (lognormal service time, mean 1), E ~ Exp(1) and U ~ U(0, 1)."""
    rng = np.random.default_rng(7)
    sigma = lat.lognormal_sigma(cv)
    return (
        rng.lognormal(-sigma * sigma / 2, sigma, samples),
        rng.exponential(1.0, samples),
        rng.random(samples),
    )


def predicted_tail_ms(
    rate_rps: float, replicas: int, service_ms: float, cv: float, concurrency: int, network_ms: float
) -> tuple[float, float]:
    """(p95, p99) of one request's latency when `rate_rps` spreads evenly over `replicas`."""
    rho = rate_rps * service_ms / 1000.0 / (replicas * concurrency)
    if rho >= MAX_UTILISATION:
        return math.inf, math.inf
    z, e, u = _latency_samples(round(cv, 3))
    p_wait = float(lat.wait_probability(np.array(rho), np.array(float(concurrency))))
    wait_over_service = (1.0 + cv * cv) / (2.0 * concurrency * (1.0 - rho))
    latency = network_ms + service_ms * (z + np.where(u < p_wait, wait_over_service * e, 0.0))
    p95, p99 = np.quantile(latency, (0.95, 0.99))
    return float(p95), float(p99)


def replicas_for_slo(
    rate_rps: float,
    service_ms: float,
    cv: float,
    concurrency: int,
    network_ms: float,
    slo_p95_ms: float,
    slo_p99_ms: float,
    max_replicas: int,
) -> int:
    """The least replicas (≤ max) whose predicted tail meets both SLOs; `max_replicas` if none does."""
    if rate_rps <= 0:
        return 0

    def meets(n: int) -> bool:
        p95, p99 = predicted_tail_ms(rate_rps, n, service_ms, cv, concurrency, network_ms)
        return p95 <= slo_p95_ms and p99 <= slo_p99_ms

    if not meets(max_replicas):
        return max_replicas
    low, high = 1, max_replicas  # the tail shrinks as replicas grow: binary search for the least
    while low < high:
        mid = (low + high) // 2
        if meets(mid):
            high = mid
        else:
            low = mid + 1
    return low


@dataclass(frozen=True, slots=True)
class OracleState:
    service_time_ms: FloatArray
    """[service, node] at nominal speed."""
    network_ms: FloatArray
    """[service, node]: from the service's users to the node, incl. transmitting a 1 KiB request."""


class OracleController:
    name = "oracle"

    def __init__(self, scenario: CompiledScenario, settings: OracleSettings | None = None) -> None:
        self.scenario = scenario
        self.settings = settings or OracleSettings()

    @property
    def interval_s(self) -> float:
        return self.settings.interval_s

    def initial_state(self, observation: Observation) -> OracleState:
        topology = self.scenario.topology
        region = {r: i for i, r in enumerate(topology.regions)}
        origin = np.array([region[s.origin_region] for s in observation.services])
        network = topology.ingress_rtt_ms[origin] + 8.0 / topology.access_bandwidth_mbps[origin]
        return OracleState(service_time_matrix_ms(observation), network)

    def future_peak_rps(self, now_s: float, horizon_s: FloatArray) -> FloatArray:
        """Per service: the peak expected arrival rate over [now, now + horizon], callers' calls included."""
        step = self.scenario.step_s
        steps = math.ceil(float(horizon_s.max()) / step) + 1
        external = self.scenario.workload.rates(now_s, steps, step)
        rates = external
        for _ in range(2):  # calls reach a callee of a callee too
            with_calls = external.copy()
            for caller, callee in self.scenario.downstream:
                with_calls[:, callee] += rates[:, caller]
            rates = with_calls
        reach = np.ceil(horizon_s / step).astype(np.int64) + 1
        mask = np.arange(steps)[:, None] < reach[None, :]
        return np.asarray(np.where(mask, rates, 0.0).max(axis=0), dtype=np.float64)

    def decide(self, observation: Observation, state: OracleState) -> tuple[Sequence[Action], OracleState]:
        cfg, now = self.settings, observation.time_s
        services, nodes = observation.services, observation.nodes
        nominal = np.array([n.speed_factor for n in nodes])
        # service time on each node now (a power-capped GPU is slower), and the expected tail it implies
        service_ms = state.service_time_ms * (nominal / np.maximum(observation.node_speed, 1e-9))[None, :]
        p99_factor = np.array(
            [
                math.exp(
                    -(lat.lognormal_sigma(s.service_time_cv) ** 2) / 2
                    + 2.326 * lat.lognormal_sigma(s.service_time_cv)
                )
                for s in services
            ]
        )
        node_tail_ms = np.nan_to_num(state.network_ms + service_ms * p99_factor[:, None], nan=np.inf)

        ledger = NodeLedger.from_observation(observation)
        usable = ledger.schedulable
        # count from spec.replicas, not from the pod list: a migrating pod shows up twice there
        stranded = np.bincount(
            observation.replica_service[~usable[observation.replica_node]], minlength=len(services)
        )
        effective = observation.desired_replicas - stranded

        # plan each service on the best node it could get a replica on now
        plan_node = [
            best_node(ledger.runs_service[i] & usable, -node_tail_ms[i]) for i in range(len(services))
        ]
        cold_s = np.array(
            [
                0.0 if (j := plan_node[i]) is None else services[i].cold_start_on(nodes[j].node_class)
                for i in range(len(services))
            ]
        )
        peak = self.future_peak_rps(now, cold_s + cfg.interval_s)
        peak = peak + cfg.noise_sigmas * np.sqrt(peak / cfg.noise_window_s)
        lo, hi = replica_bounds(observation)
        needed = np.zeros(len(services), dtype=np.int64)
        for i, s in enumerate(services):
            j = plan_node[i]
            if j is None:
                needed[i] = int(observation.desired_replicas[i])
                continue
            needed[i] = replicas_for_slo(
                float(peak[i]),
                float(service_ms[i, j]),
                s.service_time_cv,
                s.concurrency,
                float(state.network_ms[i, j]),
                cfg.slo_headroom * s.slo_p95_ms,
                cfg.slo_headroom * s.slo_p99_ms,
                int(hi[i]),
            )
        needed = np.clip(needed, lo, hi)

        actions: list[Action] = []
        # services needing the fewest new replicas go first: one hungry service must not starve the rest
        for i in sorted(range(len(services)), key=lambda k: int(needed[k] - effective[k])):
            s, short = services[i], int(needed[i] - effective[i])
            why = f"oracle: peak {peak[i]:.0f} req/s ahead needs {needed[i]} replicas"
            if short > 0:
                placed = 0
                for _ in range(short):
                    node = best_node(
                        ledger.fits(observation, i),
                        -node_tail_ms[i] - 1e-3 * (1.0 - ledger.cpu_free / ledger.cpu_total),
                    )
                    if node is None:
                        break
                    actions.append(Place(s.name, nodes[node].name, why))
                    ledger = ledger.take(observation, i, node)
                    placed += 1
                if placed < short:
                    actions.append(
                        Scale(s.name, int(observation.desired_replicas[i]) + short, why + ", no node fits")
                    )
            elif short < 0:
                actions.append(
                    Scale(s.name, max(int(observation.desired_replicas[i]) + short, int(lo[i])), why)
                )
            elif observation.pending_replicas[i] == 0:
                actions.extend(self._migrate_one(observation, i, ledger, node_tail_ms))
        return actions, state

    def _migrate_one(
        self, observation: Observation, service: int, ledger: NodeLedger, node_tail_ms: FloatArray
    ) -> list[Action]:
        mine = (observation.replica_service == service) & observation.replica_ready
        if not mine.any():
            return []
        hosting = observation.replica_node[mine]
        worst = int(hosting[np.argmax(node_tail_ms[service, hosting])])
        target = best_node(ledger.fits(observation, service), -node_tail_ms[service])
        if (
            target is None
            or node_tail_ms[service, worst] - node_tail_ms[service, target]
            < self.settings.migrate_when_worse_ms
        ):
            return []
        s = observation.services[service]
        return [
            Migrate(
                s.name,
                observation.nodes[worst].name,
                observation.nodes[target].name,
                f"oracle: {node_tail_ms[service, worst]:.0f} ms expected tail on "
                f"{observation.nodes[worst].name}, {node_tail_ms[service, target]:.0f} ms on the target",
            )
        ]
