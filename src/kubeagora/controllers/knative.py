"""Knative Pod Autoscaler (KPA) on concurrency, with stable and panic modes.

Defaults from the `config-autoscaler` ConfigMap (knative/serving config/core/configmaps/autoscaler.yaml;
knative.dev/docs/serving/autoscaling/kpa-specific/):
stable-window 60 s, panic-window-percentage 10 % (6 s), panic-threshold-percentage 200 %,
tick-interval 2 s, container-concurrency-target-percentage 70 %, max-scale-up-rate 1000,
max-scale-down-rate 2, scale-to-zero-grace-period 30 s, min-scale 0 (enable-scale-to-zero true).

The decision (pkg/autoscaler/scaling/autoscaler.go `Scale`), every tick:
    ready   = max(1, Ready pods)
    dspc    = ceil(stable-window mean concurrency / target), dppc likewise over the panic window
    desired = clamp(dspc, floor(ready / max-scale-down-rate), ceil(max-scale-up-rate × ready))
    panic starts (or is extended) when dppc / ready ≥ 200 %; in panic the count never goes down
    (it is the max panic recommendation seen); panic ends a stable window after the last trigger.
Scale to zero: when the stable window saw no traffic, the last pod goes after the 30 s grace period.

Target: with the default containerConcurrency 0 (unlimited) the target is 100 × 70 % = 70
concurrent requests per pod, far above what our replicas serve at once. We set containerConcurrency
to each service's `concurrency` (its worker slots), as a Knative user with a worker pool would, so
the target is 0.7 × concurrency (2.8 for a 4-slot web replica): the same ρ ≈ 0.7 the other tuned
baselines aim for. Concurrency is requests in flight at the queue-proxy: those in service, read off
the CPU the pods burn (`policy_parts.busy_slots`: the queue-proxy counts them, it needs no service time),
plus the queue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.controllers.policy_parts import (
    SampleHistory,
    busy_slots,
    replica_bounds,
    scale_actions,
)
from kubeagora.model import Action, FloatArray, IntArray, Observation


@dataclass(frozen=True, slots=True)
class KnativeSettings:
    stable_window_s: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold: float = 2.0
    """panic-threshold-percentage 200 %."""
    tick_interval_s: float = 2.0
    target_utilization: float = 0.7
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace_s: float = 30.0
    min_scale: int = 0

    @property
    def panic_window_s(self) -> float:
        return self.stable_window_s * self.panic_window_percentage / 100.0


@dataclass(frozen=True, slots=True)
class KpaDecision:
    """One service's decision, and its panic bookkeeping for the next tick."""

    desired: int
    panic_since_s: float | None
    max_panic_pods: int


def kpa_scale(
    stable_concurrency: float,
    panic_concurrency: float,
    ready_pods: int,
    target: float,
    now_s: float,
    panic_since_s: float | None,
    max_panic_pods: int,
    cfg: KnativeSettings,
) -> KpaDecision:
    """autoscaler.go `Scale` for one revision (reachable, so scale-down is allowed)."""
    ready = max(1, ready_pods)
    max_up = math.ceil(cfg.max_scale_up_rate * ready)
    max_down = math.floor(ready / cfg.max_scale_down_rate)
    dspc = math.ceil(stable_concurrency / target)
    dppc = math.ceil(panic_concurrency / target)
    desired_stable = int(min(max(dspc, max_down), max_up))
    desired_panic = int(min(max(dppc, max_down), max_up))
    over_threshold = dppc / ready >= cfg.panic_threshold
    if over_threshold:
        panic_since_s = now_s  # start or extend panic
    elif panic_since_s is not None and panic_since_s + cfg.stable_window_s < now_s:
        panic_since_s, max_panic_pods = None, 0
    if panic_since_s is None:
        return KpaDecision(desired_stable, None, max_panic_pods)
    max_panic_pods = max(max_panic_pods, desired_panic)
    return KpaDecision(max_panic_pods, panic_since_s, max_panic_pods)


@dataclass(frozen=True, slots=True)
class KnativeState:
    served: SampleHistory
    queue: SampleHistory
    panic_since_s: tuple[float | None, ...]
    max_panic_pods: IntArray
    zero_wanted_since_s: tuple[float | None, ...]
    cpu_seconds: SampleHistory
    """busy_core_seconds_total: requests in service are read off the CPU the pods burn (the queue-proxy
    counts them itself; no declared service time is needed)."""


class KnativeController:
    name = "knative"

    def __init__(self, settings: KnativeSettings | None = None) -> None:
        self.settings = settings or KnativeSettings()

    @property
    def interval_s(self) -> float:
        return self.settings.tick_interval_s

    def initial_state(self, observation: Observation) -> KnativeState:
        horizon = self.settings.stable_window_s + 2 * self.interval_s
        n = len(observation.services)
        return KnativeState(
            SampleHistory(horizon).record(observation.time_s, observation.served_total),
            SampleHistory(horizon).record(observation.time_s, observation.queue_length),
            (None,) * n,
            np.zeros(n, dtype=np.int64),
            (None,) * n,
            SampleHistory(horizon).record(observation.time_s, observation.busy_core_seconds_total),
        )

    def window_concurrency(
        self,
        observation: Observation,
        cpu_seconds: SampleHistory,
        queue: SampleHistory,
        now_s: float,
        window_s: float,
    ) -> FloatArray:
        """Mean requests in flight over the last `window_s`: those in service (busy slots, from the CPU
        burnt over the window) + the mean queue."""
        zeros = np.zeros(len(observation.services))
        cpu_cores = cpu_seconds.rate(now_s - window_s, now_s)
        queued = queue.mean_since(now_s - window_s)
        in_service = busy_slots(observation, cpu_cores if cpu_cores is not None else zeros)
        return np.asarray(in_service + np.maximum(queued if queued is not None else zeros, 0.0), dtype=np.float64)

    def decide(self, observation: Observation, state: KnativeState) -> tuple[Sequence[Action], KnativeState]:
        cfg, now = self.settings, observation.time_s
        served = state.served.record(now, observation.served_total)
        queue = state.queue.record(now, observation.queue_length)
        cpu_seconds = state.cpu_seconds.record(now, observation.busy_core_seconds_total)
        stable = self.window_concurrency(observation, cpu_seconds, queue, now, cfg.stable_window_s)
        panic = self.window_concurrency(observation, cpu_seconds, queue, now, cfg.panic_window_s)
        lo, hi = replica_bounds(observation, min_override=cfg.min_scale)
        desired = observation.desired_replicas.copy()
        panic_since = list(state.panic_since_s)
        max_panic = state.max_panic_pods.copy()
        zero_since = list(state.zero_wanted_since_s)
        reasons = []
        for i, service in enumerate(observation.services):
            target = cfg.target_utilization * service.concurrency
            decision = kpa_scale(
                float(stable[i]),
                float(panic[i]),
                int(observation.ready_replicas[i]),
                target,
                now,
                panic_since[i],
                int(max_panic[i]),
                cfg,
            )
            panic_since[i], max_panic[i] = decision.panic_since_s, decision.max_panic_pods
            wanted = int(np.clip(decision.desired, lo[i], hi[i]))
            mode = "panic" if decision.panic_since_s is not None else "stable"
            reasons.append(
                f"knative ({mode}): concurrency {stable[i]:.1f} stable / {panic[i]:.1f} panic, "
                f"target {target:.1f} per pod"
            )
            if wanted == 0 and int(observation.desired_replicas[i]) > 0:
                # the last pod stays for the scale-to-zero grace period
                since = zero_since[i]
                zero_since[i] = since = now if since is None else since
                if now - since < cfg.scale_to_zero_grace_s:
                    wanted = int(observation.desired_replicas[i])
            else:
                zero_since[i] = None
            if int(observation.desired_replicas[i]) == 0 and float(observation.queue_length[i]) > 0:
                wanted = max(wanted, 1)  # the activator holds the requests and pokes the autoscaler
            desired[i] = wanted
        new_state = KnativeState(
            served, queue, tuple(panic_since), max_panic, tuple(zero_since), cpu_seconds
        )
        return scale_actions(observation, desired, reasons), new_state
