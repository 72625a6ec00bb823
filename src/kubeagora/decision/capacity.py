"""Safe capacity: the req/s one replica can take while its service still meets its latency SLO.

The MPC plans replicas as `demand / safe capacity`. The safe capacity comes from the same latency model
the engine applies (`controllers.latency_prediction.predict_latency_ms`: M/G/c waiting by Sakasegawa's
P(wait) and Allen–Cunneen's mean wait, lognormal service times, network offset): it is the largest
arrival rate per replica whose predicted p95 and p99 stay within a margin of the targets, found by
bisection on the utilisation (latency grows monotonically with it), and never above `max_utilisation`
(near ρ = 1 a second's Poisson excess builds a backlog that the stationary formulas do not show).

Where even an idle replica misses the SLO (users far from every node, a slow model), the target is
relaxed to `unattainable_slack` × that floor: more replicas cannot help there, so plan for a sensible
load instead of an infinite replica count.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kubeagora.controllers.latency_prediction import predict_latency_ms
from kubeagora.model import FloatArray


@dataclass(frozen=True, slots=True)
class SafeCapacitySettings:
    slo_margin: float = 0.8
    """Plan p95 and p99 at this share of the SLO (room for Poisson bursts within a 10-second window)."""
    max_utilisation: float = 0.85
    """No replica is planned busier than this."""
    unattainable_slack: float = 1.1
    bisection_steps: int = 14
    """Utilisation resolution 2⁻¹⁴ of the range: far below the noise of a forecast."""


@lru_cache(maxsize=4096)
def _safe_utilisation(service_ms: float, network_ms: float, concurrency: int, service_time_cv: float,
                      slo_p95_ms: float, slo_p99_ms: float, settings: SafeCapacitySettings) -> float:
    """The largest utilisation ρ ≤ max_utilisation whose predicted tail meets the (margined) SLO."""
    service = np.array([service_ms])
    network = np.array([network_ms])
    full_rate_rps = concurrency * 1000.0 / service_ms

    def tail(rho: float) -> tuple[float, float]:
        return predict_latency_ms(service, network, rho * full_rate_rps, concurrency, service_time_cv)

    # "idle" at 1 % load, not 0: the predicted tail steps up by a histogram bin as soon as any request can
    # wait, and a target within that step of the true idle tail would leave no feasible load at all
    idle_p95, idle_p99 = tail(0.01)
    target_p95 = max(settings.slo_margin * slo_p95_ms, settings.unattainable_slack * idle_p95)
    target_p99 = max(settings.slo_margin * slo_p99_ms, settings.unattainable_slack * idle_p99)
    low, high = 0.0, settings.max_utilisation
    p95, p99 = tail(high)
    if p95 <= target_p95 and p99 <= target_p99:
        return high
    for _ in range(settings.bisection_steps):
        mid = (low + high) / 2.0
        p95, p99 = tail(mid)
        if p95 <= target_p95 and p99 <= target_p99:
            low = mid
        else:
            high = mid
    return low


def safe_replica_capacity_rps(service_ms: FloatArray, network_ms: FloatArray, concurrency: FloatArray,
                              service_time_cv: FloatArray, slo_p95_ms: FloatArray, slo_p99_ms: FloatArray,
                              settings: SafeCapacitySettings | None = None) -> FloatArray:
    """Per service: req/s one replica serves within its SLO.

    `service_ms` is a replica's mean service time where it runs (node speed and interference included),
    `network_ms` the delay from its users to it. Inputs are rounded (0.5 ms, 1 ms) so that ticks with
    nearly the same conditions share one cached bisection.
    """
    cfg = settings or SafeCapacitySettings()
    arrays = [np.asarray(a, dtype=np.float64) for a in
              (service_ms, network_ms, concurrency, service_time_cv, slo_p95_ms, slo_p99_ms)]
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise ValueError(f"all per-service inputs must have the same shape, got {[a.shape for a in arrays]}")
    if np.any(arrays[0] <= 0) or np.any(arrays[2] < 1):
        raise ValueError("service_ms must be > 0 and concurrency ≥ 1")
    out = np.empty(shape)
    for i, (s_ms, n_ms, conc, cv, p95, p99) in enumerate(zip(*arrays, strict=True)):
        s_ms_rounded = max(round(float(s_ms) * 2.0) / 2.0, 0.5)
        rho = _safe_utilisation(s_ms_rounded, float(round(n_ms)), int(conc), round(float(cv), 3),
                                float(p95), float(p99), cfg)
        out[i] = rho * conc * 1000.0 / s_ms_rounded
    return out
