"""Arrival rates over time: Poisson, diurnal, drift, bursts and hotspots, heavy tails, trace replay.

A `Workload` gives the expected arrivals per second of every service over a block of steps; the
engine draws Poisson counts from it. Rates are a product of a scenario-wide profile (diurnal,
drift, trace) and a per-service multiplier (bursts, heavy-tailed modulation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kubeagora.model import FloatArray


@dataclass(frozen=True, slots=True)
class Burst:
    start_s: float
    duration_s: float
    factor: float
    """Peak multiplier (5–10× is a flash crowd)."""
    services: tuple[int, ...]
    """Indices of the hotspot services."""
    ramp_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Workload:
    base_rps: FloatArray
    """[service] mean arrivals per second before modulation."""
    diurnal_amplitude: float = 0.0
    diurnal_period_s: float = 86_400.0
    diurnal_phase_s: float = 0.0
    drift_per_hour: float = 0.0
    """Relative growth of the load per hour (0.2 = +20 % each hour, linear)."""
    bursts: tuple[Burst, ...] = ()
    heavy_tail_alpha: float | None = None
    """Pareto shape of per-service, per-minute load multipliers (None = off; 1.5 is very bursty)."""
    heavy_tail_seed: int = 0
    trace_rps: FloatArray | None = None
    """Replaces the profile: total arrivals per second, spread over services by base_rps weights."""
    trace_scale: float = 1.0
    _modulation: FloatArray | None = field(default=None, compare=False)

    @property
    def n_services(self) -> int:
        return int(self.base_rps.shape[0])

    def with_heavy_tail(self, duration_s: float) -> Workload:
        """Precompute the heavy-tailed multipliers (mean 1) for a run of this length."""
        if self.heavy_tail_alpha is None:
            return self
        rng = np.random.default_rng(self.heavy_tail_seed)
        minutes = int(np.ceil(duration_s / 60.0)) + 2
        a = self.heavy_tail_alpha
        raw = rng.pareto(a, size=(minutes, self.n_services)) + 1.0
        mod = np.minimum(raw / (a / (a - 1.0)), 20.0)
        return Workload(**{**{k: getattr(self, k) for k in self.__dataclass_fields__}, "_modulation": mod})

    def rates(self, t0_s: float, n_steps: int, step_s: float = 1.0) -> FloatArray:
        """[step, service] expected arrivals per second at t0, t0+step, …"""
        t = t0_s + step_s * np.arange(n_steps)
        if self.trace_rps is not None:
            total = self.trace_rps[(t.astype(np.int64)) % self.trace_rps.shape[0]] * self.trace_scale
            weights = self.base_rps / max(float(self.base_rps.sum()), 1e-12)
            out = total[:, None] * weights[None, :]
        else:
            profile = np.ones(n_steps)
            if self.diurnal_amplitude:
                profile = profile + self.diurnal_amplitude * np.sin(
                    2 * np.pi * (t + self.diurnal_phase_s) / self.diurnal_period_s)
            if self.drift_per_hour:
                profile = profile * (1.0 + self.drift_per_hour * t / 3600.0)
            out = np.maximum(profile, 0.0)[:, None] * self.base_rps[None, :]
        for b in self.bursts:
            mult = _burst_shape(np.asarray(t, dtype=np.float64), b)
            if np.any(mult > 1.0):
                idx = np.asarray(b.services, dtype=np.int64)
                out[:, idx] = out[:, idx] * mult[:, None]
        if self._modulation is not None:
            minute = np.minimum((t // 60).astype(np.int64), self._modulation.shape[0] - 1)
            out = out * self._modulation[minute]
        return np.asarray(out, dtype=np.float64)

    def rate_at(self, t_s: float) -> FloatArray:
        return np.asarray(self.rates(t_s, 1)[0], dtype=np.float64)


def _burst_shape(t: FloatArray, b: Burst) -> FloatArray:
    """1 outside, ramps linearly to `factor` over ramp_s, holds, ramps back down."""
    end = b.start_s + b.duration_s
    up = np.clip((t - b.start_s) / max(b.ramp_s, 1e-9), 0.0, 1.0)
    down = np.clip((end - t) / max(b.ramp_s, 1e-9), 0.0, 1.0)
    return 1.0 + (b.factor - 1.0) * np.minimum(up, down)
