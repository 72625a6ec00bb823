"""KEDA ScaledObject with a Prometheus trigger on request rate: KEDA for 0↔1, its HPA for 1↔N.

Defaults, from the ScaledObject specification (keda.sh/docs/latest/reference/scaledobject-spec/):
- `pollingInterval` 30 s: how often the KEDA operator checks the trigger for activation;
- `cooldownPeriod` 300 s: how long after the trigger was last active KEDA scales to zero (it only
  governs N→0; 1↔N is the HPA's, with the HPA's own behaviour);
- `minReplicaCount` 0, `activationThreshold` 0: any traffic activates the workload;
- the HPA KEDA creates uses the External metric with an AverageValue target, min replicas
  max(minReplicaCount, 1), the default autoscaling/v2 behaviour and the 15 s sync (`hpa_behavior`).
  KEDA's metrics adapter queries the scaler on every HPA request (`useCachedMetrics` false).

The trigger, as an operator would write it:
`sum(rate(requests_total{service="…"}[1m]))` with `threshold` = 70 % of what one replica serves flat
out on the service's fastest node class (concurrency × 1000 / service time). 70 % is the same
headroom Knative's default target utilisation keeps and puts a replica at ρ ≈ 0.7, where the SLOs
of the built-in services hold on one replica: a tuned, fair setting, not a strawman.
Prometheus scrapes every 15 s, so the newest point in the `[1m]` range is ~8 s old on average:
the metric at time t is the arrival rate over [t − 68 s, t − 8 s].
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
    external_average_value_replicas,
    normalize_with_behavior,
)
from kubeagora.controllers.policy_parts import (
    SampleHistory,
    TimedRecords,
    replica_bounds,
    replica_capacity_rps,
    scale_actions,
    service_time_matrix_ms,
)
from kubeagora.model import Action, FloatArray, Observation


@dataclass(frozen=True, slots=True)
class KedaSettings:
    polling_interval_s: float = 30.0
    cooldown_period_s: float = 300.0
    min_replica_count: int = 0
    activation_threshold_rps: float = 0.0
    target_fraction_of_replica_capacity: float = 0.7
    rate_window_s: float = 60.0
    """The PromQL range of `rate(...[1m])`."""
    metric_age_s: float = 8.0
    """Mean age of the newest sample with a 15 s Prometheus scrape interval."""
    hpa_sync_period_s: float = HPA_SYNC_PERIOD_S
    tolerance: float = HPA_TOLERANCE
    behavior: HpaBehavior = field(default_factory=HpaBehavior)


@dataclass(frozen=True, slots=True)
class KedaState:
    arrivals: SampleHistory
    target_rps_per_replica: FloatArray
    last_active_s: FloatArray
    next_poll_s: float
    next_sync_s: float
    memory: HpaMemory


class KedaController:
    name = "keda"
    interval_s = 1.0
    """Ticks every second to keep the counter history; acts on KEDA's 30 s poll and the HPA's 15 s sync."""

    def __init__(self, settings: KedaSettings | None = None) -> None:
        self.settings = settings or KedaSettings()

    def initial_state(self, observation: Observation) -> KedaState:
        cfg = self.settings
        target = cfg.target_fraction_of_replica_capacity * replica_capacity_rps(
            observation, service_time_matrix_ms(observation)
        )
        memory = HpaMemory(
            recommendations=TimedRecords().add(
                observation.time_s, observation.desired_replicas, cfg.behavior.scale_down_stabilization_s
            )
        )
        history = SampleHistory(cfg.rate_window_s + cfg.metric_age_s + 2 * self.interval_s)
        return KedaState(
            history.record(observation.time_s, observation.arrived_total),
            target,
            np.full(len(observation.services), observation.time_s),
            observation.time_s + cfg.polling_interval_s,
            observation.time_s + cfg.hpa_sync_period_s,
            memory,
        )

    def decide(self, observation: Observation, state: KedaState) -> tuple[Sequence[Action], KedaState]:
        cfg, now = self.settings, observation.time_s
        state = replace(state, arrivals=state.arrivals.record(now, observation.arrived_total))
        polling = now + 1e-9 >= state.next_poll_s
        syncing = now + 1e-9 >= state.next_sync_s
        if not (polling or syncing):
            return (), state
        window_end = now - cfg.metric_age_s
        metric_rps = state.arrivals.rate(window_end - cfg.rate_window_s, window_end)
        if metric_rps is None:  # the [1m] range is not filled yet: Prometheus returns what it has
            metric_rps = state.arrivals.rate(state.arrivals.times_s[0], window_end)
        current = observation.desired_replicas
        desired = current.copy()
        reasons = [""] * len(observation.services)

        if syncing and metric_rps is not None:
            state = replace(state, next_sync_s=state.next_sync_s + cfg.hpa_sync_period_s)
            lo, hi = replica_bounds(observation, min_override=max(cfg.min_replica_count, 1))
            pods = observation.ready_replicas + observation.pending_replicas
            raw = current.copy()
            for i in range(len(observation.services)):
                raw[i] = external_average_value_replicas(
                    int(pods[i]), float(metric_rps[i]), float(state.target_rps_per_replica[i]), cfg.tolerance
                )
                reasons[i] = (
                    f"keda/hpa: {metric_rps[i]:.0f} req/s vs {state.target_rps_per_replica[i]:.0f} "
                    f"per replica"
                )
            normalized, memory = normalize_with_behavior(
                now, raw, current, lo, hi, cfg.behavior, state.memory
            )
            # the HPA is idle while KEDA holds the workload at zero
            desired = np.where(current == 0, current, normalized)
            state = replace(state, memory=memory)
        elif syncing:
            state = replace(state, next_sync_s=state.next_sync_s + cfg.hpa_sync_period_s)

        if polling:
            state = replace(state, next_poll_s=state.next_poll_s + cfg.polling_interval_s)
            if metric_rps is not None:
                active = metric_rps > cfg.activation_threshold_rps
                last_active = np.where(active, now, state.last_active_s)
                state = replace(state, last_active_s=last_active)
                activate = active & (current == 0)
                idle_long = (~active) & (current > 0) & (now - last_active >= cfg.cooldown_period_s)
                to_zero = idle_long & (cfg.min_replica_count == 0)
                desired = np.where(activate, max(cfg.min_replica_count, 1), desired)
                desired = np.where(to_zero, cfg.min_replica_count, desired)
                for i in map(int, np.flatnonzero(activate | to_zero)):
                    reasons[i] = (
                        "keda: trigger active, activating from zero"
                        if activate[i]
                        else f"keda: no traffic for {cfg.cooldown_period_s:.0f} s cooldown, scaling to zero"
                    )
        return scale_actions(observation, desired, reasons), state
