"""Small composable pieces the baseline autoscalers share: histories, windows, bounds, rates.

Every piece is an immutable value with pure methods that return a new value, so a controller's
state can be a frozen dataclass of them and `decide(obs, state) -> (actions, state)` stays pure.
Arrays stored inside are never written after construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kubeagora.controllers.latency_prediction import IDLE_CPU_FRACTION
from kubeagora.model import Action, FloatArray, IntArray, NodeClass, Observation, Scale, class_service_time_ms
from kubeagora.model.spec_tables import per_specs


@dataclass(frozen=True, slots=True)
class SampleHistory:
    """Timestamped per-service samples (counters or gauges), oldest first, kept for `horizon_s`.

    Counters give rates over any past window (what Prometheus' `rate()` and metrics-server do);
    gauges give window averages (what Knative's and Ray Serve's look-back windows do).
    """

    horizon_s: float
    times_s: tuple[float, ...] = ()
    values: tuple[FloatArray, ...] = ()

    def record(self, time_s: float, value: FloatArray) -> SampleHistory:
        cutoff = time_s - self.horizon_s
        keep = next((i for i, t in enumerate(self.times_s) if t >= cutoff), len(self.times_s))
        # keep one sample older than the horizon, so a window reaching back exactly horizon_s has a left edge
        keep = max(keep - 1, 0)
        return SampleHistory(
            self.horizon_s,
            (*self.times_s[keep:], time_s),
            (*self.values[keep:], np.array(value, dtype=np.float64)),
        )

    def latest_at_or_before(self, time_s: float) -> tuple[float, FloatArray] | None:
        for t, v in zip(reversed(self.times_s), reversed(self.values), strict=True):
            if t <= time_s + 1e-9:
                return t, v
        return None

    def rate(self, start_s: float, end_s: float) -> FloatArray | None:
        """Counter increase per second between the samples nearest before `start_s` and `end_s`.

        None when the history does not reach back that far yet (a rate needs two points).
        """
        end = self.latest_at_or_before(end_s)
        start = self.latest_at_or_before(start_s)
        if end is None or start is None or end[0] - start[0] <= 1e-9:
            return None
        return (end[1] - start[1]) / (end[0] - start[0])

    def mean_since(self, start_s: float) -> FloatArray | None:
        """Mean of the gauge samples taken after `start_s` (None if there are none)."""
        picked = [v for t, v in zip(self.times_s, self.values, strict=True) if t > start_s + 1e-9]
        if not picked:
            return None
        mean: FloatArray = np.mean(np.stack(picked), axis=0)
        return mean


@dataclass(frozen=True, slots=True)
class TimedRecords:
    """(time, per-service integer vector) records, e.g. HPA recommendations or scale events."""

    times_s: tuple[float, ...] = ()
    values: tuple[IntArray, ...] = ()

    def add(self, time_s: float, value: IntArray, keep_s: float) -> TimedRecords:
        cutoff = time_s - keep_s
        pairs = [(t, v) for t, v in zip(self.times_s, self.values, strict=True) if t > cutoff - 1e-9]
        pairs.append((time_s, np.array(value, dtype=np.int64)))
        return TimedRecords(tuple(t for t, _ in pairs), tuple(v for _, v in pairs))

    def within(self, now_s: float, window_s: float) -> list[IntArray]:
        """Records strictly newer than now − window (the HPA's `timestamp.After(cutoff)`)."""
        cutoff = now_s - window_s
        return [v for t, v in zip(self.times_s, self.values, strict=True) if t > cutoff + 1e-9]

    def max_within(self, now_s: float, window_s: float, floor: IntArray) -> IntArray:
        out = np.array(floor, dtype=np.int64)
        for v in self.within(now_s, window_s):
            out = np.maximum(out, v)
        return out

    def min_within(self, now_s: float, window_s: float, ceiling: IntArray) -> IntArray:
        out = np.array(ceiling, dtype=np.int64)
        for v in self.within(now_s, window_s):
            out = np.minimum(out, v)
        return out

    def sum_within(self, now_s: float, window_s: float, n: int) -> IntArray:
        out = np.zeros(n, dtype=np.int64)
        for v in self.within(now_s, window_s):
            out = out + v
        return out


def replica_bounds(observation: Observation, min_override: int | None = None) -> tuple[IntArray, IntArray]:
    """Per-service (min, max) replicas from the services' specs; `min_override` replaces the minimum
    (KEDA's and Knative's scale-to-zero defaults)."""
    lo = np.array(
        [s.min_replicas if min_override is None else min_override for s in observation.services],
        dtype=np.int64,
    )
    hi = np.array([s.max_replicas for s in observation.services], dtype=np.int64)
    return lo, np.maximum(hi, lo)


def clamp_replicas(desired: IntArray, low: IntArray, high: IntArray) -> IntArray:
    return np.clip(np.asarray(desired, dtype=np.int64), low, high)


def scale_actions(observation: Observation, desired: IntArray, reasons: Sequence[str]) -> list[Action]:
    """A `Scale` for every service whose desired replica count changes."""
    return [
        Scale(s.name, int(desired[i]), reasons[i])
        for i, s in enumerate(observation.services)
        if int(desired[i]) != int(observation.desired_replicas[i])
    ]


def service_time_matrix_ms(observation: Observation) -> FloatArray:
    """[service, node] mean service time of one request on that node at its nominal speed (NaN where the
    service cannot run). Static: computed once per run's specs (read-only; copy it to change it)."""
    services, nodes = observation.services, observation.nodes

    def build() -> FloatArray:
        classes = tuple(NodeClass)
        column = {c: k for k, c in enumerate(classes)}
        node_column = np.array([column[n.node_class] for n in nodes], dtype=np.int64)
        speed = np.array([n.speed_factor for n in nodes], dtype=np.float64)
        return np.asarray(class_service_time_ms(tuple(services), classes)[:, node_column] / speed, dtype=np.float64)
    return per_specs("policy_parts.service_time_matrix_ms", (services, nodes), build)


def mean_service_time_s(observation: Observation, service_time_ms: FloatArray) -> FloatArray:
    """Per service: mean service time over its Ready replicas at the nodes' current speeds (seconds).

    Services without a Ready replica get their fastest node's time, so estimates stay finite.
    """
    n_s = len(observation.services)
    nominal_speed = np.array([n.speed_factor for n in observation.nodes])
    slowdown = nominal_speed / np.maximum(observation.node_speed, 1e-9)
    ready = observation.replica_ready
    svc, node = observation.replica_service[ready], observation.replica_node[ready]
    per_replica = service_time_ms[svc, node] * slowdown[node]
    total = np.bincount(svc, np.nan_to_num(per_replica, nan=0.0), minlength=n_s)
    count = np.bincount(svc, minlength=n_s)
    fastest = np.nanmin(np.where(np.isnan(service_time_ms), np.inf, service_time_ms), axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), fastest) / 1000.0


def busy_slots(observation: Observation, cpu_cores: FloatArray, idle_cpu_fraction: float = IDLE_CPU_FRACTION,
               ) -> FloatArray:
    """Per service: requests in service, read off the CPU its pods burn (`cpu_cores`, the rate of
    `busy_core_seconds_total`). Every live pod burns `idle_cpu_fraction` of its CPU request; each busy slot
    adds 1/concurrency of the rest. What a replica's own in-flight gauge counts (Ray Serve's ongoing
    requests, Knative's queue-proxy), from what cAdvisor reports, without assuming a service time."""
    services = observation.services
    cpu_request = np.array([s.cpu_request for s in services])
    slots = np.minimum(observation.concurrency.astype(np.float64), [float(s.concurrency) for s in services])
    up = observation.node_ready[observation.replica_node]
    pods = np.bincount(observation.replica_service[up], minlength=len(services)).astype(np.float64)
    busy_share = np.maximum(np.asarray(cpu_cores, dtype=np.float64) / np.maximum(cpu_request, 1e-12)
                            - idle_cpu_fraction * pods, 0.0) / (1.0 - idle_cpu_fraction)
    return np.asarray(busy_share * slots, dtype=np.float64)


def replica_capacity_rps(observation: Observation, service_time_ms: FloatArray) -> FloatArray:
    """Per service: what one replica serves per second flat out on the service's fastest node class."""
    fastest_ms = np.nanmin(np.where(np.isnan(service_time_ms), np.inf, service_time_ms), axis=1)
    concurrency = np.array([s.concurrency for s in observation.services], dtype=float)
    capacity: FloatArray = concurrency * 1000.0 / fastest_ms
    return capacity
