"""Kubernetes HorizontalPodAutoscaler (autoscaling/v2) on CPU utilisation, with its metrics pipeline.

The HPA: every `--horizontal-pod-autoscaler-sync-period` (15 s) it reads the pods' CPU usage from
the resource metrics API, divides by their CPU requests, and sets
`desired = ceil(ready pods × utilisation / target)` unless the ratio is within the 0.1 tolerance;
not-Ready pods count as 0 % on a scale-up and are ignored on a scale-down; the result is stabilized
(scale-down takes the max recommendation of the last 300 s) and rate-limited (scale-up at most
max(+100 %, +4 pods) per 15 s). See `hpa_behavior` for the arithmetic and its sources:
kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ (algorithm details, default
behavior) and pkg/controller/podautoscaler/{horizontal.go,replica_calculator.go}.

Target: 80 % CPU utilisation, the autoscaling/v1 default (`targetCPUUtilizationPercentage` when
unset, and `kubectl autoscale --cpu-percent` when not given). autoscaling/v2 has no default target,
so 80 % is the documented default an operator gets without tuning.

The metrics pipeline, modelled from the `busy_core_seconds_total` counter (what cAdvisor's
container_cpu_usage_seconds_total counts):
- the kubelet serves cAdvisor's latest housekeeping sample (`--housekeeping-interval` 10 s);
- metrics-server scrapes every 15 s (`--metric-resolution` 15 s) and reports the usage rate between
  its last two scrapes, a 15 s window;
- the HPA syncs every 15 s, at a phase unrelated to the scrape.
With independent phases a load change reaches an HPA decision after up to 10 + 15 + 15 + 15 = 55 s,
~27 s on average (the figures in docs/benchmarks.md). We fix each phase at its mean instead of drawing
it (runs stay reproducible): the HPA sees the usage over [t − 28 s, t − 13 s] — the scrape 8 s
before the sync, the housekeeping sample 5 s before the scrape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from kubeagora.controllers.hpa_behavior import (
    HPA_SYNC_PERIOD_S,
    HPA_TOLERANCE,
    HpaBehavior,
    HpaMemory,
    normalize_with_behavior,
    resource_replicas,
)
from kubeagora.controllers.policy_parts import SampleHistory, TimedRecords, replica_bounds, scale_actions
from kubeagora.model import Action, Observation


@dataclass(frozen=True, slots=True)
class HpaSettings:
    target_cpu_utilization: float = 0.8
    """Target mean CPU usage / request (autoscaling/v1 default, 80 %)."""
    tolerance: float = HPA_TOLERANCE
    sync_period_s: float = HPA_SYNC_PERIOD_S
    metric_window_s: float = 15.0
    """metrics-server --metric-resolution: the rate window of the reported CPU usage."""
    metric_age_s: float = 13.0
    """How old the end of that window is when the HPA reads it (see the module docstring)."""
    behavior: HpaBehavior = field(default_factory=HpaBehavior)


@dataclass(frozen=True, slots=True)
class HpaState:
    cpu_seconds: SampleHistory
    """busy_core_seconds_total per service, one sample per tick."""
    ready_replicas: SampleHistory
    next_sync_s: float
    memory: HpaMemory


class HpaController:
    """The HPA and its metrics pipeline. Ticks every second to sample counters; acts every 15 s."""

    name = "hpa"
    interval_s = 1.0

    def __init__(self, settings: HpaSettings | None = None) -> None:
        self.settings = settings or HpaSettings()

    def initial_state(self, observation: Observation) -> HpaState:
        cfg = self.settings
        horizon = cfg.metric_window_s + cfg.metric_age_s + 2 * self.interval_s
        # maybeInitScaleDownStabilizationWindow: the current scale is the first recommendation
        memory = HpaMemory(
            recommendations=TimedRecords().add(
                observation.time_s, observation.desired_replicas, cfg.behavior.scale_down_stabilization_s
            )
        )
        return HpaState(
            SampleHistory(horizon).record(observation.time_s, observation.busy_core_seconds_total),
            SampleHistory(horizon).record(observation.time_s, observation.ready_replicas.astype(float)),
            observation.time_s + cfg.sync_period_s,
            memory,
        )

    def decide(self, observation: Observation, state: HpaState) -> tuple[Sequence[Action], HpaState]:
        cfg, now = self.settings, observation.time_s
        state = replace(
            state,
            cpu_seconds=state.cpu_seconds.record(now, observation.busy_core_seconds_total),
            ready_replicas=state.ready_replicas.record(now, observation.ready_replicas.astype(float)),
        )
        if now + 1e-9 < state.next_sync_s:
            return (), state
        state = replace(state, next_sync_s=state.next_sync_s + cfg.sync_period_s)

        window_end = now - cfg.metric_age_s
        window_start = window_end - cfg.metric_window_s
        usage_cores = state.cpu_seconds.rate(window_start, window_end)
        if usage_cores is None:
            return (), state  # metrics-server has no two scrapes yet
        no_pods = np.zeros(len(observation.services))
        at_start = state.ready_replicas.latest_at_or_before(window_start)
        at_end = state.ready_replicas.latest_at_or_before(window_end)
        ready_at_start = at_start[1] if at_start is not None else no_pods
        # the pods that served during the window (their usage is what the counter holds)
        ready_in_window = (ready_at_start + (at_end[1] if at_end is not None else no_pods)) / 2.0
        current = observation.desired_replicas
        lo, hi = replica_bounds(observation)
        raw, reasons = self.recommend(observation, usage_cores, ready_at_start, ready_in_window)
        # the HPA leaves a workload scaled to zero alone, and first pulls one outside min/max back in
        outside = (current < lo) | (current > hi)
        raw = np.where(outside, np.clip(current, lo, hi), raw)
        desired, memory = normalize_with_behavior(now, raw, current, lo, hi, cfg.behavior, state.memory)
        desired = np.where(outside, raw, desired)
        desired = np.where(current == 0, current, desired)
        return scale_actions(observation, desired, reasons), replace(state, memory=memory)

    def recommend(
        self,
        observation: Observation,
        usage_cores: np.ndarray,
        ready_at_window_start: np.ndarray,
        ready_in_window: np.ndarray,
    ) -> tuple[np.ndarray, list[str]]:
        """Per service: the replica count the utilisation asks for, before stabilization and limits."""
        cfg = self.settings
        raw = observation.desired_replicas.copy()
        reasons = []
        for i, service in enumerate(observation.services):
            ready_now = int(observation.ready_replicas[i])
            # a pod that became Ready after the window began has no usable metric yet: it counts as unready
            ready_with_metrics = min(ready_now, int(ready_at_window_start[i]))
            pods = ready_now + int(observation.pending_replicas[i])
            unready = max(pods - ready_with_metrics, 0)
            utilisation = float(usage_cores[i]) / max(float(ready_in_window[i]) * service.cpu_request, 1e-9)
            ratio = utilisation / cfg.target_cpu_utilization
            raw[i] = resource_replicas(
                int(observation.desired_replicas[i]), ready_with_metrics, unready, ratio, cfg.tolerance
            )
            reasons.append(
                f"hpa: cpu {100 * utilisation:.0f}% of request vs target "
                f"{100 * cfg.target_cpu_utilization:.0f}% over {ready_with_metrics} ready pods"
            )
        return raw, reasons
