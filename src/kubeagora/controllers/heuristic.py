"""The seed paper's heuristic baseline: threshold autoscaling plus bin-packing placement.

Every 10 s, per service, CPU utilisation of the Ready replicas over the last 10 s (no metrics
pipeline lag: the paper's baseline reads its simulator directly):
- above 70 %: scale out proportionally, to ceil(ready × utilisation / 0.7), at least +1
  (only +0 extra while earlier replicas are still starting, so one spike is not counted twice);
- below 30 %: scale in by one, at most once per 30 s cooldown after any scaling of the service.
New replicas are bin-packed, first-fit-decreasing style: services with the largest CPU request are
placed first, each replica on the most-allocated node that fits (kube-scheduler's MostAllocated
score), among the node classes on which the service runs within 1.5× of its fastest service time
(the node affinity a sane operator would set, so a web replica is not packed onto a microcontroller).
A replica that fits nowhere is left to the default scheduler (it stays Pending until room appears).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.controllers.packing import NodeLedger, best_node
from kubeagora.controllers.policy_parts import (
    SampleHistory,
    replica_bounds,
    scale_actions,
    service_time_matrix_ms,
)
from kubeagora.model import Action, BoolArray, FloatArray, Observation, Place, Scale


@dataclass(frozen=True, slots=True)
class HeuristicSettings:
    interval_s: float = 10.0
    scale_out_utilization: float = 0.7
    scale_in_utilization: float = 0.3
    scale_in_cooldown_s: float = 30.0
    class_slowdown_allowed: float = 1.5
    """Node classes slower than this multiple of the service's fastest class are not packed onto."""


@dataclass(frozen=True, slots=True)
class HeuristicState:
    cpu_seconds: SampleHistory
    last_scaled_s: FloatArray
    preferred_nodes: BoolArray
    """[service, node]: nodes of the classes the service may be packed onto."""


def preferred_nodes(observation: Observation, slowdown_allowed: float) -> BoolArray:
    times = service_time_matrix_ms(observation)
    # compare classes at their reference speed, not the per-machine jitter
    speed = np.array([n.speed_factor for n in observation.nodes])
    class_ms = times * speed[None, :]
    fastest = np.nanmin(np.where(np.isnan(class_ms), np.inf, class_ms), axis=1)
    allowed: BoolArray = np.nan_to_num(class_ms, nan=np.inf) <= slowdown_allowed * fastest[:, None] + 1e-9
    return allowed


class HeuristicController:
    name = "heuristic"

    def __init__(self, settings: HeuristicSettings | None = None) -> None:
        self.settings = settings or HeuristicSettings()

    @property
    def interval_s(self) -> float:
        return self.settings.interval_s

    def initial_state(self, observation: Observation) -> HeuristicState:
        history = SampleHistory(self.settings.interval_s * 2).record(
            observation.time_s, observation.busy_core_seconds_total
        )
        return HeuristicState(
            history,
            np.full(len(observation.services), -np.inf),
            preferred_nodes(observation, self.settings.class_slowdown_allowed),
        )

    def decide(
        self, observation: Observation, state: HeuristicState
    ) -> tuple[Sequence[Action], HeuristicState]:
        cfg, now = self.settings, observation.time_s
        history = state.cpu_seconds.record(now, observation.busy_core_seconds_total)
        usage_cores = history.rate(now - cfg.interval_s, now)
        if usage_cores is None:
            return (), HeuristicState(history, state.last_scaled_s, state.preferred_nodes)
        lo, hi = replica_bounds(observation)
        requests = np.array([s.cpu_request for s in observation.services])
        ready = observation.ready_replicas
        utilisation = usage_cores / np.maximum(ready * requests, 1e-9)
        current = observation.desired_replicas
        desired = current.copy()
        last_scaled = state.last_scaled_s.copy()
        reasons = []
        for i in range(len(observation.services)):
            u = float(utilisation[i])
            reasons.append(f"heuristic: utilisation {100 * u:.0f}%")
            if ready[i] > 0 and u > cfg.scale_out_utilization:
                proportional = math.ceil(int(ready[i]) * u / cfg.scale_out_utilization)
                floor = int(current[i]) + (1 if observation.pending_replicas[i] == 0 else 0)
                desired[i] = max(proportional, floor)
            elif u < cfg.scale_in_utilization and now - last_scaled[i] >= cfg.scale_in_cooldown_s:
                desired[i] = int(current[i]) - 1
        desired = np.clip(desired, lo, hi)
        last_scaled = np.where(desired != current, now, last_scaled)
        actions = self.pack(observation, state.preferred_nodes, current, desired, reasons)
        return actions, HeuristicState(history, last_scaled, state.preferred_nodes)

    def pack(
        self,
        observation: Observation,
        preferred: BoolArray,
        current: np.ndarray,
        desired: np.ndarray,
        reasons: list[str],
    ) -> list[Action]:
        """Scale-ins as `Scale`; scale-outs as `Place` on the most-allocated node that fits, big first."""
        growing = np.flatnonzero(desired > current)
        shrinking = desired < current
        actions: list[Action] = scale_actions(observation, np.where(shrinking, desired, current), reasons)
        ledger = NodeLedger.from_observation(observation)
        order = sorted((int(i) for i in growing), key=lambda i: -observation.services[i].cpu_request)
        for i in order:
            service = observation.services[i]
            placed = 0
            for _ in range(int(desired[i] - current[i])):
                node = best_node(
                    ledger.fits(observation, i) & preferred[i], ledger.most_allocated_scores(observation, i)
                )
                if node is None:
                    break
                actions.append(Place(service.name, observation.nodes[node].name, reasons[i] + ", bin-packed"))
                ledger = ledger.take(observation, i, node)
                placed += 1
            if placed < int(desired[i] - current[i]):
                actions.append(Scale(service.name, int(desired[i]), reasons[i] + ", no preferred node fits"))
        return actions
