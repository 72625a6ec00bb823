"""Ray Serve's default autoscaling policy (`replica_queue_length_autoscaling_policy`).

Source: ray-project/ray `python/ray/serve/autoscaling_policy.py` and the AutoscalingConfig docs
(docs.ray.io/en/latest/serve/advanced-guides/advanced-autoscaling.html). Each control-loop period:
- the ongoing requests (queued + running) of every replica, averaged over `look_back_period_s`
  (30 s), are summed: `total_num_requests`;
- `desired = running × total / (target_ongoing_requests × running)` (the core ratio,
  `_core_replica_queue_length_policy`, formerly `_calculate_desired_num_replicas`);
  `target_ongoing_requests` is 2 by default (since Ray 2.32), a figure meant for a replica that
  serves a few requests at once. Our replicas have 2 to 16 slots (an LLM server batches 16), and a
  Ray user sets the target per deployment to match, so the knob here is per slot: the target of a
  service is `target_ongoing_requests_per_slot × concurrency`, 0.5 per slot by default (Ray's 2 on
  a 4-slot web replica), 8 on a 16-slot LLM replica instead of 2;
- `_apply_scaling_factors`: `ceil(running + factor × (desired − running))`, upscaling and
  downscaling factors 1.0 (their defaults, None → `smoothing_factor` 1.0), and a stuck downscale
  moves by one;
- `_apply_bounds`: min/max replicas (the service's; Ray's `num_replicas="auto"` is 1..100);
- `_apply_delay_logic`: a scale-up happens only after it has been the decision for more than
  `upscale_delay_s / CONTROL_LOOP_INTERVAL_S` consecutive periods (30 s), a scale-down after
  `downscale_delay_s` (600 s); any other decision resets the counter;
- with no running replica and traffic waiting, scale to max(1, target) at once (the cold-start
  fast path).
Ray's controller loop runs every 0.1 s; we tick every 1 s and scale the period count accordingly
(the delays, in seconds, are the same). Ongoing requests are those in service, read off the CPU the
replicas burn (`policy_parts.busy_slots`: a replica counts them itself, it needs no declared service
time), plus the queue: the same quantity the replicas report.
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
from kubeagora.model import Action, IntArray, Observation


@dataclass(frozen=True, slots=True)
class RayServeSettings:
    target_ongoing_requests_per_slot: float = 0.5
    """Ongoing requests per worker slot; × the service's concurrency = Ray's target_ongoing_requests."""
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    look_back_period_s: float = 30.0
    upscaling_factor: float = 1.0
    downscaling_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class RayServeState:
    served: SampleHistory
    """served_total, to turn into a served rate per tick."""
    ongoing: SampleHistory
    """Total ongoing requests per service, one sample per tick (the look-back window)."""
    decision_counters: IntArray
    cpu_seconds: SampleHistory
    """busy_core_seconds_total: requests in service are read off the CPU the replicas burn."""


def apply_scaling_factor(
    desired: float, running: int, upscaling_factor: float, downscaling_factor: float
) -> int:
    """`_apply_scaling_factors`: move a share of the way to `desired`; a stuck downscale moves by one."""
    delta = desired - running
    factor = upscaling_factor if delta > 0 else downscaling_factor
    scaled = math.ceil(running + factor * delta)
    if math.ceil(desired) < running and scaled == running:
        scaled -= 1
    return scaled


def apply_delay(
    desired: int, current_target: int, counter: int, upscale_periods: int, downscale_periods: int
) -> tuple[int, int]:
    """`_apply_delay_logic`: (replicas to set, new decision counter)."""
    if desired > current_target:
        counter = max(counter, 0) + 1
        if counter > upscale_periods:
            return desired, 0
        return current_target, counter
    if desired < current_target:
        counter = min(counter, 0) - 1
        if current_target != 1:
            desired = max(1, desired)  # only 1 → 0 may reach zero
        if counter < -downscale_periods:
            return desired, 0
        return current_target, counter
    return current_target, 0


class RayServeController:
    name = "rayserve"
    interval_s = 1.0

    def __init__(self, settings: RayServeSettings | None = None) -> None:
        self.settings = settings or RayServeSettings()

    def initial_state(self, observation: Observation) -> RayServeState:
        horizon = self.settings.look_back_period_s + 2 * self.interval_s
        n = len(observation.services)
        return RayServeState(
            SampleHistory(horizon).record(observation.time_s, observation.served_total),
            SampleHistory(horizon),
            np.zeros(n, dtype=np.int64),
            SampleHistory(horizon).record(observation.time_s, observation.busy_core_seconds_total),
        )

    def decide(
        self, observation: Observation, state: RayServeState
    ) -> tuple[Sequence[Action], RayServeState]:
        cfg, now = self.settings, observation.time_s
        served = state.served.record(now, observation.served_total)
        cpu_seconds = state.cpu_seconds.record(now, observation.busy_core_seconds_total)
        cpu_cores = cpu_seconds.rate(now - self.interval_s, now)
        # a replica counts its ongoing requests itself: those in service (from the CPU they burn, not from a
        # declared service time) and those queued
        in_service = busy_slots(observation, np.zeros(len(observation.services)) if cpu_cores is None else cpu_cores)
        in_flight = in_service + np.maximum(observation.queue_length, 0.0)
        ongoing = state.ongoing.record(now, in_flight)
        averaged = ongoing.mean_since(now - cfg.look_back_period_s)
        total_requests = averaged if averaged is not None else in_flight

        lo, hi = replica_bounds(observation)
        up_periods = int(cfg.upscale_delay_s / self.interval_s)
        down_periods = int(cfg.downscale_delay_s / self.interval_s)
        desired = observation.desired_replicas.copy()
        counters = state.decision_counters.copy()
        reasons = []
        for i, service in enumerate(observation.services):
            running, target_now = int(observation.ready_replicas[i]), int(observation.desired_replicas[i])
            total = float(total_requests[i])
            target_ongoing = cfg.target_ongoing_requests_per_slot * service.concurrency
            reasons.append(
                f"rayserve: {total:.1f} ongoing requests over {running} running replicas, "
                f"target {target_ongoing:g} each ({service.concurrency} slots)"
            )
            if running == 0:
                # cold-start fast path; while replicas are still starting, Ray waits for them
                desired[i] = (
                    max(1, target_now) if total > 0 or float(observation.queue_length[i]) > 0 else target_now
                )
                continue
            raw = running * total / (target_ongoing * running)
            scaled = apply_scaling_factor(raw, running, cfg.upscaling_factor, cfg.downscaling_factor)
            bounded = int(np.clip(scaled, lo[i], hi[i]))
            desired[i], counters[i] = apply_delay(
                bounded, target_now, int(counters[i]), up_periods, down_periods
            )
        new_state = RayServeState(served, ongoing, counters, cpu_seconds)
        return scale_actions(observation, desired, reasons), new_state
