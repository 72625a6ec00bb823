"""The HorizontalPodAutoscaler's replica arithmetic, shared by the `hpa` and `keda` baselines.

Pure functions that mirror kube-controller-manager's HPA (pkg/controller/podautoscaler):
- `resource_replicas`: replica_calculator.go `GetResourceReplicas` (utilisation of ready pods,
  tolerance, not-Ready pods counted at 0 % on a scale-up and ignored on a scale-down);
- `external_average_value_replicas`: `GetExternalPerPodMetricReplicas` (what a KEDA trigger becomes);
- `normalize_with_behavior`: horizontal.go `normalizeDesiredReplicasWithBehaviors`, i.e.
  `stabilizeRecommendationWithBehaviors` (scale-up takes the min and scale-down the max of the
  recommendations in their stabilization windows) followed by `convertDesiredReplicasWithBehaviorRate`
  (`calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`: the policies'
  limits are relative to the replica count at the start of each policy period, selectPolicy Max).

Defaults (`HpaBehavior()`) are autoscaling/v2's documented defaults
(kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#default-behavior):
scale-up stabilization 0 s, policies 100 % or 4 pods per 15 s (the larger); scale-down
stabilization 300 s (`--horizontal-pod-autoscaler-downscale-stabilization`), policy 100 % per 15 s;
tolerance 0.1 (`--horizontal-pod-autoscaler-tolerance`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kubeagora.controllers.policy_parts import TimedRecords
from kubeagora.model import IntArray

HPA_TOLERANCE = 0.1
"""--horizontal-pod-autoscaler-tolerance (default 0.1)."""
HPA_SYNC_PERIOD_S = 15.0
"""--horizontal-pod-autoscaler-sync-period (default 15 s)."""


@dataclass(frozen=True, slots=True)
class HpaBehavior:
    """spec.behavior of an autoscaling/v2 HPA; the defaults are the API's defaults."""

    scale_up_stabilization_s: float = 0.0
    scale_up_percent: float = 100.0
    scale_up_pods: int = 4
    scale_up_period_s: float = 15.0
    scale_down_stabilization_s: float = 300.0
    scale_down_percent: float = 100.0
    scale_down_period_s: float = 15.0


@dataclass(frozen=True, slots=True)
class HpaMemory:
    """What the HPA controller keeps between syncs: recommendations and recent scale events."""

    recommendations: TimedRecords = field(default_factory=TimedRecords)
    scale_up_events: TimedRecords = field(default_factory=TimedRecords)
    scale_down_events: TimedRecords = field(default_factory=TimedRecords)


def resource_replicas(
    current: int, ready_with_metrics: int, unready: int, usage_ratio: float, tolerance: float = HPA_TOLERANCE
) -> int:
    """Replicas for a resource-utilisation metric; `usage_ratio` = ready pods' mean utilisation / target.

    `current` is spec.replicas. Mirrors GetResourceReplicas without missing-metric pods: a pod that
    is not Ready (or became Ready after the metric window started) is "unready".
    """
    if ready_with_metrics <= 0:
        return current  # no metrics: the HPA leaves the scale alone
    if not (unready > 0 and usage_ratio > 1.0):
        if abs(1.0 - usage_ratio) <= tolerance:
            return current
        return math.ceil(usage_ratio * ready_with_metrics)
    # scale-up with unready pods: count them at 0 % and see whether the scale-up survives
    pods = ready_with_metrics + unready
    new_ratio = usage_ratio * ready_with_metrics / pods
    if abs(1.0 - new_ratio) <= tolerance or new_ratio < 1.0:
        return current
    new_replicas = math.ceil(new_ratio * pods)
    return max(new_replicas, current)


def external_average_value_replicas(
    status_replicas: int, metric_total: float, target_per_replica: float, tolerance: float = HPA_TOLERANCE
) -> int:
    """An External metric with an AverageValue target (a KEDA trigger): ceil(metric / target)."""
    if status_replicas <= 0:
        return status_replicas
    usage_ratio = metric_total / (target_per_replica * status_replicas)
    if abs(1.0 - usage_ratio) <= tolerance:
        return status_replicas
    return math.ceil(metric_total / target_per_replica)


def normalize_with_behavior(
    now_s: float,
    desired: IntArray,
    current: IntArray,
    min_replicas: IntArray,
    max_replicas: IntArray,
    behavior: HpaBehavior,
    memory: HpaMemory,
) -> tuple[IntArray, HpaMemory]:
    """Stabilize the raw recommendations, then apply the scaling policies and min/max.

    Returns the replicas to set and the memory with this sync's recommendation and scale events added.
    """
    desired = np.asarray(desired, dtype=np.int64)
    current = np.asarray(current, dtype=np.int64)
    n = desired.shape[0]
    up_bound = memory.recommendations.min_within(now_s, behavior.scale_up_stabilization_s, desired)
    down_bound = memory.recommendations.max_within(now_s, behavior.scale_down_stabilization_s, desired)
    stabilized = np.minimum(np.maximum(current, up_bound), down_bound)
    keep_s = max(behavior.scale_up_stabilization_s, behavior.scale_down_stabilization_s)
    recommendations = memory.recommendations.add(now_s, desired, keep_s)

    added_up = memory.scale_up_events.sum_within(now_s, behavior.scale_up_period_s, n)
    removed_up = memory.scale_down_events.sum_within(now_s, behavior.scale_up_period_s, n)
    start_up = current - added_up + removed_up
    up_limit = np.maximum(
        np.ceil(start_up * (1.0 + behavior.scale_up_percent / 100.0)).astype(np.int64),
        start_up + behavior.scale_up_pods,
    )
    up_limit = np.maximum(up_limit, current)  # never forces a scale-down while old events age out
    added_down = memory.scale_up_events.sum_within(now_s, behavior.scale_down_period_s, n)
    removed_down = memory.scale_down_events.sum_within(now_s, behavior.scale_down_period_s, n)
    start_down = current - added_down + removed_down
    down_limit = np.floor(start_down * (1.0 - behavior.scale_down_percent / 100.0)).astype(np.int64)
    down_limit = np.minimum(down_limit, current)

    out = stabilized.copy()
    rising = out > current
    out = np.where(rising, np.minimum(out, np.minimum(up_limit, max_replicas)), out)
    falling = out < current
    out = np.where(falling, np.maximum(out, np.maximum(down_limit, min_replicas)), out)
    out = np.clip(out, min_replicas, max_replicas)

    change = out - current
    keep_events_s = max(behavior.scale_up_period_s, behavior.scale_down_period_s)
    up_events = memory.scale_up_events.add(now_s, np.maximum(change, 0), keep_events_s)
    down_events = memory.scale_down_events.add(now_s, np.maximum(-change, 0), keep_events_s)
    return out, HpaMemory(recommendations, up_events, down_events)
