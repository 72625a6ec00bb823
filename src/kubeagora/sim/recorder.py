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

METRIC_KEYS = (
    "p50_ms", "p95_ms", "p99_ms", "slo_violation_pct", "throughput_rps", "jitter_ms", "energy_j_per_req",
    "replica_seconds", "overhead_us_per_req", "lost_per_million", "mttr_s", "time_to_scale_s",
    "cold_start_p99_delta_ms", "interference_penalty_pct", "rollback_pct", "jain_fairness",
)


class Recorder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        n_s = engine.n_services
        self.n_services = n_s
        self.slo95 = np.array([s.slo_p95_ms for s in engine.scenario.services])
        self.slo99 = np.array([s.slo_p99_ms for s in engine.scenario.services])
        self.mass = lat.STRATUM_MASS
        self.row_offset = (np.arange(n_s, dtype=np.int32) * lat.BINS)[:, None]
        self.n_strata = lat.STRATUM_MASS.shape[0]
        points = 2 * self.n_strata + 2
        steps = int(np.ceil(WINDOW_S / engine.dt)) + 1
        # preallocated float32/int32 buffers: fresh arrays this size each step cost more than the maths
        self._values = np.zeros((n_s, points), np.float32)
        self._weights = np.zeros((steps, n_s, points), np.float32)
        self._bins = np.zeros((steps, n_s, points), np.int32)
        self.pending_steps = 0
        self.within_slo95 = lat.mass_below_weights(self.slo95)
        self.within_slo99 = lat.mass_below_weights(self.slo99)
        self.window_latency_sum = np.zeros(n_s)
        self.ones_bins = np.ones(lat.BINS)
        self.ones_services = np.ones(n_s)
        self.prev_mean_ms = np.full(n_s, np.nan)
        self.last_window_hist = np.zeros((n_s, lat.BINS))
        self._last_window_pct: tuple[FloatArray, FloatArray] | None = None
        self.window_start = 0.0
        self.window_served = np.zeros(n_s)
        self.window_bad_start = np.zeros(n_s)
        self.window_had_cold = np.zeros(n_s, bool)
        self.window_had_overload = np.zeros(n_s, bool)
        self.hist_all = np.zeros(lat.BINS)
        self.hist_cold = np.zeros(lat.BINS)
        self.hist_steady = np.zeros(lat.BINS)
        self.violating_served = 0.0
        self.good_served = np.zeros(n_s)
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

    def pending_histogram(self) -> FloatArray:
        """[service, bin] latency histogram of the window still open (not yet closed)."""
        j, n_s = self.pending_steps, self.n_services
        hist = np.bincount(self._bins[:j].ravel(), self._weights[:j].ravel(), minlength=n_s * lat.BINS)
        return np.asarray(hist, dtype=np.float64).reshape(n_s, lat.BINS)

    def last_window_percentiles(self) -> tuple[FloatArray, FloatArray]:
        """Per-service p95 and p99 (ms) of the last completed window; NaN where nothing was served."""
        if self._last_window_pct is None:
            pct = lat.percentiles(self.last_window_hist, (0.95, 0.99))
            self._last_window_pct = (pct[:, 0], pct[:, 1])
        return self._last_window_pct

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
        k = self.n_strata
        j = self.pending_steps
        vals, wts, idx = self._values, self._weights[j], self._bins[j]
        # strata: [0, k) no wait, [k, 2k) with a wait, 2k: a lost packet's retransmission, 2k+1: held in a buffer
        np.multiply(mean_ms[:, None], eng.z_strata, out=vals[:, :k], casting="same_kind")
        np.multiply(mean_ms[:, None], eng.wait_strata_flat.take(eng.wait_strata_row + ratio_idx, axis=0),
                    out=vals[:, k:2 * k], casting="same_kind")
        vals[:, 2 * k] = mean_ms + lat.RTO_MS
        vals[:, 2 * k + 1] = mean_ms + released_wait_s * 1000.0
        vals += off_ms[:, None].astype(np.float32)
        no_loss = base * (1 - loss)
        np.multiply((no_loss * (1 - pwait))[:, None], self.mass[None, :], out=wts[:, :k], casting="same_kind")
        np.multiply((no_loss * pwait)[:, None], self.mass[None, :], out=wts[:, k:2 * k], casting="same_kind")
        wts[:, 2 * k] = base * loss
        wts[:, 2 * k + 1] = rel
        self.window_latency_sum += np.einsum("ij,ij->i", vals, wts)
        lat.bin_index_into(vals, idx)
        idx += self.row_offset
        self.pending_steps += 1
        self.window_served += served_s

        r = eng.state.replicas
        starting = r.state == 1
        if starting.any():
            self.window_had_cold[r.service[starting]] = True
        self.pod_seconds += float(np.count_nonzero(r.state)) * dt
        total_w = float(power_w.sum())
        self.energy_j += total_w * dt
        carbon = self.carbon_g_per_kwh(eng.state.t)
        self.carbon_g += float(power_w @ carbon[self.node_region]) * dt / 3.6e6
        self.interference_num += float(slowdown_weighted.sum())
        served_total = float(served_s.sum())
        self.interference_den += served_total

        cap = eng.state.capacity_rps if eng.state.capacity_rps is not None else np.zeros(self.n_services)
        over = rate > cap + 1e-9
        self.window_had_overload |= over
        ended = (~over) & (self.overload_run >= SUSTAINED_OVERLOAD_S)
        self.scale_times.extend(self.overload_run[ended].tolist())
        self.overload_run = np.where(over, self.overload_run + dt, 0.0)

        self._acc_arrivals += float(arrivals.sum())
        self._acc_served += served_total
        self._acc_power += total_w
        self._acc_steps += 1
        if eng.state.t + dt >= self.window_start + WINDOW_S - 1e-9:
            self.close_window(eng.state.t + dt)

    # ------------------------------------------------------------------ per window
    def close_window(self, t_end: float) -> None:
        hist = self.pending_histogram()
        self.pending_steps = 0
        # row and column sums as matrix-vector products: BLAS is several times faster than .sum(axis)
        served = hist @ self.ones_bins
        # p95 > target  <=>  less than 95 % of the window's requests finished within the target
        violated = (served > 0) & ((np.einsum("ij,ij->i", hist, self.within_slo95) < 0.95 * served)
                                   | (np.einsum("ij,ij->i", hist, self.within_slo99) < 0.99 * served))
        c = self.engine.state.counters
        bad_now = c.dropped + c.lost
        bad_in_window = bad_now - self.window_bad_start
        self.window_bad_start = bad_now.copy()
        self.violating_served += float(served[violated].sum())
        self.good_served += np.where(violated, 0.0, served)
        ok = bool(not violated.any() and bad_in_window.sum() < 1e-6 * max(served.sum(), 1.0) + 0.5)
        self.window_ok.append((self.window_start, ok))
        self.last_window_hist = hist
        self._last_window_pct = None
        mean_ms = np.where(served > 0, self.window_latency_sum / np.maximum(served, 1e-12), np.nan)
        self.window_latency_sum[:] = 0.0
        both = (served > 0) & ~np.isnan(self.prev_mean_ms)
        self.jitter_sum += float((np.abs(mean_ms - self.prev_mean_ms)[both] * served[both]).sum())
        self.jitter_weight += float(served[both].sum())
        self.prev_mean_ms = np.where(served > 0, mean_ms, self.prev_mean_ms)
        window_total = self.ones_services @ hist
        self.hist_all += window_total
        # cold-start penalty: windows with a pod starting against healthy steady windows (no pod
        # starting, demand within Ready capacity throughout); overloaded windows without a cold start
        # say nothing about cold starts and stay out of both
        if self.window_had_cold.any():
            self.hist_cold += self.window_had_cold.astype(np.float64) @ hist
        steady = ~self.window_had_cold & ~self.window_had_overload
        self.hist_steady += steady.astype(np.float64) @ hist
        self.window_had_cold[:] = False
        self.window_had_overload[:] = False
        pods, ready = self.engine.pods()
        glob = lat.percentiles(window_total, (0.5, 0.95, 0.99))
        span = max(self._acc_steps, 1) * self.engine.dt
        s = self.series
        s["t_s"].append(self.window_start)
        s["demand_rps"].append(self._acc_arrivals / span)
        s["served_rps"].append(self._acc_served / span)
        s["ready_replicas"].append(float(ready.sum()))
        s["pods"].append(float(pods.sum()))
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
        hold = round(RECOVERY_HOLD_S / WINDOW_S)
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
