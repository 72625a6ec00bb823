"""What a run measured: latency histograms per 10-second window, SLO accounting, energy, recovery.

The engine hands the recorder each step's latency strata per service; the recorder turns them into
log-binned histograms, closes a window every `WINDOW_S`, and at the end computes every metric key
of the bench contract (docs/benchmarks.md defines each one).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from kubeagora.model import FloatArray
from kubeagora.sim import latency as lat

if TYPE_CHECKING:
    from kubeagora.sim.engine import Engine
    from kubeagora.sim.scenario import FaultEvent

WINDOW_S = 10.0
RECOVERY_HOLD_S = 60.0
SUSTAINED_OVERLOAD_S = 10.0
CARBON_BASE_G_PER_KWH = (380.0, 120.0, 450.0, 250.0, 600.0, 60.0, 300.0, 500.0)
"""Grid carbon intensity per region (cycled): a coal-heavy grid is ~600, a hydro grid ~60."""

METRIC_KEYS = ("p50_ms p95_ms p99_ms slo_violation_pct throughput_rps jitter_ms energy_j_per_req "
               "replica_seconds overhead_us_per_req lost_per_million mttr_s time_to_scale_s "
               "cold_start_p99_delta_ms interference_penalty_pct rollback_pct jain_fairness").split()


class Recorder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        n_s = engine.n_services
        self.n_services = n_s
        self.slo95 = np.array([s.slo_p95_ms for s in engine.scenario.services])
        self.slo99 = np.array([s.slo_p99_ms for s in engine.scenario.services])
        self.mass = lat.STRATUM_MASS
        self.row_offset = (np.arange(n_s) * lat.BINS)[:, None]
        self.pending_idx: list[np.ndarray] = []
        self.pending_w: list[np.ndarray] = []
        self.window_start = 0.0
        self.window_served = np.zeros(n_s)
        self.window_bad_start = np.zeros(n_s)
        self.window_had_cold = np.zeros(n_s, bool)
        self.last_window_p95 = np.full(n_s, np.nan)
        self.last_window_p99 = np.full(n_s, np.nan)
        self.hist_all = np.zeros(lat.BINS)
        self.hist_cold = np.zeros(lat.BINS)
        self.hist_steady = np.zeros(lat.BINS)
        self.violating_served = 0.0
        self.good_served = np.zeros(n_s)
        self.prev_p50 = np.full(n_s, np.nan)
        self.jitter_sum = 0.0
        self.jitter_weight = 0.0
        self.energy_j = 0.0
        self.carbon_g = 0.0
        self.pod_seconds = 0.0
        self.interference_num = 0.0
        self.interference_den = 0.0
        self.overload_run = np.zeros(n_s)
        self.scale_times: list[float] = []
        self.faults: list[tuple[float, str]] = []
        self.window_ok: list[tuple[float, bool]] = []
        self.series: dict[str, list[float]] = {k: [] for k in (
            "t_s", "demand_rps", "served_rps", "ready_replicas", "pods", "p50_ms", "p95_ms", "p99_ms",
            "power_w", "violating_services")}
        self._acc_arrivals = 0.0
        self._acc_served = 0.0
        self._acc_power = 0.0
        self._acc_steps = 0
        self.node_region = engine.node_region
        regions = len(engine.scenario.topology.regions)
        self.carbon_base = np.array([CARBON_BASE_G_PER_KWH[i % len(CARBON_BASE_G_PER_KWH)] for i in range(regions)])
        self.carbon_phase = np.linspace(0.0, 1.0, regions, endpoint=False)

    def fork(self, engine: Engine) -> Recorder:
        twin = copy.deepcopy(self.__dict__ | {"engine": None})
        new = Recorder.__new__(Recorder)
        new.__dict__.update(twin)
        new.engine = engine
        return new

    def carbon_g_per_kwh(self, t_s: float) -> FloatArray:
        return self.carbon_base * (1.0 + 0.25 * np.sin(2 * np.pi * (t_s / 86_400.0 + self.carbon_phase)))

    def fault_fired(self, fault: FaultEvent) -> None:
        self.faults.append((fault.at_s, fault.label))

    # ------------------------------------------------------------------ per step
    def record_step(self, *, served_s: FloatArray, mean_ms: FloatArray, off_ms: FloatArray, pwait: FloatArray,
                    ratio_idx: np.ndarray, loss: FloatArray, released: FloatArray, released_wait_s: FloatArray,
                    arrivals: FloatArray, rate: FloatArray, power_w: FloatArray, slowdown_weighted: FloatArray) -> None:
        eng = self.engine
        dt = eng.dt
        rel = np.minimum(released, served_s)
        base = served_s - rel
        w_plain = (base * (1 - pwait) * (1 - loss))[:, None] * self.mass[None, :]
        w_wait = (base * pwait * (1 - loss))[:, None] * self.mass[None, :]
        v_plain = off_ms[:, None] + mean_ms[:, None] * eng.z_strata
        v_wait = off_ms[:, None] + mean_ms[:, None] * eng.wait_strata[eng.svc_arange, ratio_idx]
        v_loss = off_ms + lat.RTO_MS + mean_ms
        v_rel = off_ms + released_wait_s * 1000.0 + mean_ms
        values = np.concatenate([v_plain, v_wait, v_loss[:, None], v_rel[:, None]], axis=1)
        weights = np.concatenate([w_plain, w_wait, (base * loss)[:, None], rel[:, None]], axis=1)
        idx = lat.bin_index(values).astype(np.int64) + self.row_offset
        keep = weights > 0
        self.pending_idx.append(idx[keep])
        self.pending_w.append(weights[keep])
        self.window_served += served_s

        pods, ready = eng.pods()
        r = eng.state.replicas
        starting = np.bincount(r.service[r.state == 1], minlength=self.n_services)
        self.window_had_cold |= starting > 0
        self.pod_seconds += float(((r.state != 0).sum())) * dt
        self.energy_j += float(power_w.sum()) * dt
        carbon = self.carbon_g_per_kwh(eng.state.t)
        self.carbon_g += float((power_w * carbon[self.node_region]).sum()) * dt / 3.6e6
        self.interference_num += float(slowdown_weighted.sum())
        self.interference_den += float(served_s.sum())

        cap = eng.state.capacity_rps if eng.state.capacity_rps is not None else np.zeros(self.n_services)
        over = rate > cap + 1e-9
        ended = (~over) & (self.overload_run >= SUSTAINED_OVERLOAD_S)
        self.scale_times.extend(self.overload_run[ended].tolist())
        self.overload_run = np.where(over, self.overload_run + dt, 0.0)

        self._acc_arrivals += float(arrivals.sum())
        self._acc_served += float(served_s.sum())
        self._acc_power += float(power_w.sum())
        self._acc_steps += 1
        self._acc_pods = float(pods.sum())
        self._acc_ready = float(ready.sum())
        if eng.state.t + dt >= self.window_start + WINDOW_S - 1e-9:
            self.close_window(eng.state.t + dt)

    # ------------------------------------------------------------------ per window
    def close_window(self, t_end: float) -> None:
        n_s, bins = self.n_services, lat.BINS
        if self.pending_idx:
            hist = np.bincount(np.concatenate(self.pending_idx), np.concatenate(self.pending_w),
                               minlength=n_s * bins).reshape(n_s, bins)
        else:
            hist = np.zeros((n_s, bins))
        self.pending_idx, self.pending_w = [], []
        pct = lat.percentiles(hist, (0.5, 0.95, 0.99))
        p50, p95, p99 = pct[:, 0], pct[:, 1], pct[:, 2]
        served = hist.sum(axis=1)
        violated = (served > 0) & ((p95 > self.slo95) | (p99 > self.slo99))
        c = self.engine.state.counters
        bad_now = c.dropped + c.lost
        bad_in_window = bad_now - self.window_bad_start
        self.window_bad_start = bad_now.copy()
        self.violating_served += float(served[violated].sum())
        self.good_served += np.where(violated, 0.0, served)
        ok = bool(not violated.any() and bad_in_window.sum() < 1e-6 * max(served.sum(), 1.0) + 0.5)
        self.window_ok.append((self.window_start, ok))
        self.last_window_p95 = np.where(served > 0, p95, np.nan)
        self.last_window_p99 = np.where(served > 0, p99, np.nan)
        both = (served > 0) & ~np.isnan(self.prev_p50)
        self.jitter_sum += float((np.abs(p50 - self.prev_p50)[both] * served[both]).sum())
        self.jitter_weight += float(served[both].sum())
        self.prev_p50 = np.where(served > 0, p50, self.prev_p50)
        self.hist_all += hist.sum(axis=0)
        self.hist_cold += hist[self.window_had_cold].sum(axis=0)
        self.hist_steady += hist[~self.window_had_cold].sum(axis=0)
        self.window_had_cold[:] = False
        glob = lat.percentiles(hist.sum(axis=0), (0.5, 0.95, 0.99))
        span = max(self._acc_steps, 1) * self.engine.dt
        s = self.series
        s["t_s"].append(self.window_start)
        s["demand_rps"].append(self._acc_arrivals / span)
        s["served_rps"].append(self._acc_served / span)
        s["ready_replicas"].append(getattr(self, "_acc_ready", 0.0))
        s["pods"].append(getattr(self, "_acc_pods", 0.0))
        s["p50_ms"].append(float(glob[0]))
        s["p95_ms"].append(float(glob[1]))
        s["p99_ms"].append(float(glob[2]))
        s["power_w"].append(self._acc_power / max(self._acc_steps, 1))
        s["violating_services"].append(float(violated.sum()))
        self._acc_arrivals = self._acc_served = self._acc_power = 0.0
        self._acc_steps = 0
        self.window_start = t_end

    # ------------------------------------------------------------------ the end
    def metrics(self, duration_s: float, controller_cpu_s: float, rollback_pct: float | None) -> dict[str, Any]:
        if self._acc_steps:
            self.close_window(self.engine.state.t)
        c = self.engine.state.counters
        arrived, served = float(c.arrived.sum()), float(c.served.sum())
        dropped, lost = float(c.dropped.sum()), float(c.lost.sum())
        p50, p95, p99 = (float(v) for v in lat.percentiles(self.hist_all, (0.5, 0.95, 0.99)))
        cold99 = float(lat.percentiles(self.hist_cold, (0.99,))[0])
        steady99 = float(lat.percentiles(self.hist_steady, (0.99,))[0])
        runs = self.scale_times + self.overload_run[self.overload_run >= SUSTAINED_OVERLOAD_S].tolist()
        share = np.where(c.arrived > 0, self.good_served / np.maximum(c.arrived, 1e-12), 1.0)
        jain = float(share.sum() ** 2 / (len(share) * (share**2).sum())) if (share**2).sum() > 0 else 0.0

        def none_if_nan(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 4)

        return {
            "p50_ms": none_if_nan(p50), "p95_ms": none_if_nan(p95), "p99_ms": none_if_nan(p99),
            "slo_violation_pct": round(100.0 * (self.violating_served + dropped + lost) / max(arrived, 1.0), 4),
            "throughput_rps": round(served / duration_s, 3),
            "jitter_ms": none_if_nan(self.jitter_sum / self.jitter_weight if self.jitter_weight else np.nan),
            "energy_j_per_req": none_if_nan(self.energy_j / served if served else np.nan),
            "replica_seconds": round(self.pod_seconds, 1),
            "overhead_us_per_req": none_if_nan(controller_cpu_s * 1e6 / served if served else np.nan),
            "lost_per_million": round(1e6 * (dropped + lost) / max(arrived, 1.0), 2),
            "mttr_s": none_if_nan(self._mttr(duration_s)),
            "time_to_scale_s": none_if_nan(float(np.mean(runs)) if runs else np.nan),
            "cold_start_p99_delta_ms": none_if_nan(cold99 - steady99),
            "interference_penalty_pct": none_if_nan(100.0 * self.interference_num / self.interference_den
                                                    if self.interference_den else np.nan),
            "rollback_pct": rollback_pct,
            "jain_fairness": round(jain, 4),
        }

    def extras(self) -> dict[str, float]:
        c = self.engine.state.counters
        return {"arrived": float(c.arrived.sum()), "served": float(c.served.sum()), "dropped": float(c.dropped.sum()),
                "lost": float(c.lost.sum()), "queued": float(self.engine.queued().sum()),
                "energy_j": self.energy_j, "carbon_g": self.carbon_g}

    def _mttr(self, duration_s: float) -> float:
        """Mean over faults of: first moment after the fault from which every window for 60 s is in SLO."""
        if not self.faults:
            return float("nan")
        hold = int(round(RECOVERY_HOLD_S / WINDOW_S))
        starts = np.array([t for t, _ in self.window_ok])
        oks = np.array([ok for _, ok in self.window_ok], dtype=bool)
        times = []
        for t_fault, _ in self.faults:
            after = np.flatnonzero(starts + WINDOW_S > t_fault)
            recovered = duration_s - t_fault
            for i in after:
                if i + hold <= len(oks) and oks[i:i + hold].all():
                    recovered = max(0.0, starts[i] - t_fault)
                    break
            times.append(recovered)
        return float(np.mean(times))
