"""What a run measured: latency histograms per 10-second window, SLO accounting, energy, recovery.

The engine hands the recorder each step's latency description per replica group
(`latency.ReplicaGroups`); the recorder turns it into log-binned histograms (the knots of each group's
distribution, mass spread evenly in log-latency between them), closes a window every `WINDOW_S`, and
at the end computes every metric key of the bench contract (docs/benchmarks.md defines each one).

A window's histogram is the expected distribution of its latencies; whether the window violated its
SLO is the probability that one draw of it would (`kubeagora.sim.verdict`), so `slo_violation_pct`
counts each window's requests by that probability.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from kubeagora.model import FloatArray
from kubeagora.sim import kernels, verdict
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


def window_shares_above(hist: FloatArray, within95: FloatArray, within99: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Share of the requests of each histogram ([service, ..., bin]) above the service's p95 and p99
    targets; `within95`/`within99` are `latency.mass_below_weights` of the targets ([service, bin]).

    Inside a bin the mass is taken as spread evenly in log-latency, as `latency.percentiles`
    interpolates, so "p95 above target" is exactly "share95 > 5 %" (0 where the row is empty)."""
    served = hist.sum(axis=-1)
    per = np.where(served > 0, served, 1.0)
    below95 = np.einsum("s...b,sb->s...", hist, within95)
    below99 = np.einsum("s...b,sb->s...", hist, within99)
    return (np.where(served > 0, 1.0 - below95 / per, 0.0), np.where(served > 0, 1.0 - below99 / per, 0.0))


class Recorder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        n_s = engine.n_services
        self.n_services = n_s
        self.slo95 = np.array([s.slo_p95_ms for s in engine.scenario.services])
        self.slo99 = np.array([s.slo_p99_ms for s in engine.scenario.services])
        # a window's latency mass as density entries: per step, a knot per group row, point masses for lost
        # packets (≤ one per row) and for requests released from a buffer (≤ one per service)
        steps = int(np.ceil(WINDOW_S / engine.dt)) + 1
        self._entries: lat.DensityEntries | kernels.DensityAccumulator = (
            kernels.DensityAccumulator(n_s) if engine.compiled
            else lat.DensityEntries(n_s, 2 * steps * (2 * n_s * (lat.N_KNOTS + 1) + n_s)))
        self._knots = np.zeros(lat.N_KNOTS * 2 * n_s, np.float32)
        self.row_offset = np.arange(n_s, dtype=np.float64) * lat.BINS
        self.pending_steps = 0
        # per group (service, or its second group at n_s + service), summed over the window's steps: requests n,
        # then n × each mean of `lat.GROUP_STATS` (service ms, offset ms, P(wait), P(wait)·wait ms, relaxation s,
        # replicas)
        self._group_window = np.zeros((len(lat.GROUP_STATS), 2 * n_s))
        self.group_service = np.arange(2 * n_s) % n_s
        self.window_violation_probability = np.zeros(n_s)
        no_wait = engine.knot_table[engine.svc_knot_base + lat.knot_row(np.zeros(n_s), np.ones(n_s))].T
        self._log_no_wait = np.log(np.maximum(no_wait, 1e-12))
        """[knot, service] log quantiles of the service time alone (no request waits)."""
        cvs = sorted({round(float(cv), 3) for cv in engine.svc_cv})
        self._pair_tail = np.concatenate([verdict.pair_tail_table(cv).ravel() for cv in cvs])
        self._pair_base = np.array([cvs.index(round(float(cv), 3)) for cv in engine.svc_cv]) * verdict.pair_tail_table(
            cvs[0]).size
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
        self.violating_served_by_service = np.zeros(n_s)
        """Per service: requests served in its windows that missed the SLO (what a learned policy is rewarded on)."""
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
        """[service, bin] latency histogram of the window still open; the window's entries are consumed
        (`close_window` calls it once)."""
        return self._entries.histograms()

    def last_window_percentiles(self) -> tuple[FloatArray, FloatArray]:
        """Per-service p95 and p99 (ms) of the last completed window; NaN where nothing was served."""
        if self._last_window_pct is None:
            pct = lat.percentiles(self.last_window_hist, (0.95, 0.99))
            self._last_window_pct = (pct[:, 0], pct[:, 1])
        return self._last_window_pct

    def fault_fired(self, fault: FaultEvent) -> None:
        self.faults.append((fault.at_s, fault.label))

    # ------------------------------------------------------------------ per step
    def record_step(self, *, groups: lat.ReplicaGroups, served_s: FloatArray, loss: FloatArray,
                    released: FloatArray, released_wait_s: FloatArray, arrivals: FloatArray, rate: FloatArray,
                    power_w: FloatArray, slowdown_weighted: FloatArray) -> None:
        eng = self.engine
        dt = eng.dt
        g, n_s = groups, self.n_services
        rows = g.service.shape[0]
        split = rows > n_s  # some services have a second group (columns n_s …)
        stats = g.stats
        mean_ms, offset_ms, p_wait = stats[1], stats[2], stats[3]
        # requests released from a buffer come out of the service's first group
        rel = np.minimum(released, served_s)
        held = bool(rel.any())
        base = stats[0]
        if held:
            base = base.copy()
            base[:n_s] -= rel
            np.maximum(base, 0.0, out=base)
        loss_g = loss[g.service] if split else loss
        row_offset = self.row_offset[g.service] if split else self.row_offset
        knots = self._knots[: lat.N_KNOTS * rows].reshape(lat.N_KNOTS, rows)
        if eng.compiled:
            kernels.knot_values(eng.knot_table, eng.svc_knot_base, g.service, stats, lat.KNOT_RATIO_BOUNDS,
                                lat.KNOT_RATIO_GRID.shape[0], lat.P_WAIT_STEPS, knots)
        else:
            knot_base = eng.svc_knot_base[g.service] if split else eng.svc_knot_base
            column = knot_base + lat.knot_row(p_wait, stats[4] / np.maximum(p_wait * mean_ms, 1e-12))
            knots[:] = eng.knot_table[column].T
            np.multiply(knots, mean_ms[None, :], out=knots, casting="same_kind")
            np.add(knots, offset_ms[None, :], out=knots, casting="same_kind")  # as lat.mixture_knots_ms
        # a lost packet adds a retransmission timeout: a point mass, where the loss is large enough to matter
        # (the 0.01 % of a quiet access network would only cost entries)
        lossy = np.flatnonzero(loss_g >= lat.LOSS_POINT_MASS_MIN) if loss.max() >= lat.LOSS_POINT_MASS_MIN else None
        delivered = base
        if lossy is not None:
            lost = base[lossy] * loss_g[lossy]
            delivered = base.copy()
            delivered[lossy] -= lost
        self._entries.add_knots(knots, delivered, row_offset)
        if lossy is not None:
            self._entries.add_points(lat.point_bin(mean_ms[lossy] + offset_ms[lossy] + lat.RTO_MS) + row_offset[lossy],
                                     lost)
        if eng.compiled:  # the same sums as below
            kernels.window_sums(stats, base, loss_g, g.group, g.service, n_s, lat.RTO_MS, self.window_latency_sum,
                                self._group_window)
        else:
            latency_sum = base * (offset_ms + mean_ms + stats[4] + loss_g * lat.RTO_MS)
            if split:
                self.window_latency_sum += np.bincount(g.service, latency_sum, minlength=n_s)
            else:
                self.window_latency_sum += latency_sum
            self._add_group_window(g, base, stats)
        if held:
            s = np.flatnonzero(rel > 0)
            held_ms = mean_ms[s] + offset_ms[s] + released_wait_s[s] * 1000.0
            self._entries.add_points(lat.point_bin(held_ms) + s * float(lat.BINS), rel[s])
            self.window_latency_sum[s] += rel[s] * held_ms
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

    def _add_group_window(self, g: lat.ReplicaGroups, base: FloatArray, stats: FloatArray) -> None:
        """The window's sums per group for the scatter of its verdict: n, then n × each mean."""
        acc, n_s = self._group_window, self.n_services
        acc[0, :n_s] += base[:n_s]
        acc[1:, :n_s] += base[:n_s] * stats[1:, :n_s]
        if g.service.shape[0] > n_s:
            far = g.group[n_s:]
            acc[0, far] += base[n_s:]
            acc[1:, far] += base[n_s:] * stats[1:, n_s:]

    # ------------------------------------------------------------------ per window
    def close_window(self, t_end: float) -> None:
        hist = self.pending_histogram()
        span_s = max(self.pending_steps, 1) * self.engine.dt
        self.pending_steps = 0
        # row and column sums as matrix-vector products: BLAS is several times faster than .sum(axis)
        served = hist @ self.ones_bins
        # p95 > target  <=>  more than 5 % of the window's requests took longer than the target
        has = served > 0
        per = np.where(has, served, 1.0)
        share95, share99 = window_shares_above(hist, self.within_slo95, self.within_slo99)
        probability = np.where(has, self._violation_probability(share95, share99, per, span_s), 0.0)
        self.window_violation_probability = probability
        violated = probability > 0.5
        c = self.engine.state.counters
        bad_now = c.dropped + c.lost
        bad_in_window = bad_now - self.window_bad_start
        self.window_bad_start = bad_now.copy()
        self.violating_served += float(served @ probability)
        self.good_served += served * (1.0 - probability)
        self.violating_served_by_service += served * probability
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

    def _violation_probability(self, share95: FloatArray, share99: FloatArray, served: FloatArray,
                               span_s: float) -> FloatArray:
        """P(the window's p95 or p99 exceeded target) per service, from the expected shares above the
        targets and their scatter (`kubeagora.sim.verdict`); resets the window's group sums."""
        eng, acc = self.engine, self._group_window
        active = np.flatnonzero(acc[0] > 0)
        sums = acc[:, active]
        acc[:] = 0.0
        n = sums[0]
        mean_ms = np.maximum(sums[1] / n, 1e-9)
        offset_ms, p_wait = sums[2] / n, sums[3] / n
        wait_ms = sums[4] / np.maximum(sums[3], 1e-12)
        relaxation_s, replicas = sums[5] / n, sums[6] / n
        svc = self.group_service[active]
        with_wait = eng.knot_table[eng.svc_knot_base[svc] + lat.knot_row(p_wait, wait_ms / mean_ms)].T
        log_with_wait = np.log(np.maximum(with_wait, 1e-12))
        # the latency targets in units of the group's mean service time, past its offset
        level = (np.stack([self.slo95[svc], self.slo99[svc]]) - offset_ms) / mean_ms
        log_x = np.log(np.maximum(level, 1e-12))
        share = lat.tail_share(log_with_wait, log_x)
        share_no_wait = lat.tail_share(self._log_no_wait[:, svc], log_x)
        ratio = wait_ms / mean_ms
        pair_tail = verdict.pair_tail(self._pair_tail, self._pair_base[svc], ratio, level)
        variance_g = verdict.stationary_variance(share, share_no_wait, p_wait, pair_tail)
        queue_var = verdict.queue_share_variance(variance_g, share - share_no_wait, relaxation_s, span_s, replicas)
        queue_var *= (n / served[svc]) ** 2
        share = np.stack([share95, share99])
        variance = share * (1.0 - share) / served
        variance[0] += np.bincount(svc, queue_var[0], minlength=self.n_services)
        variance[1] += np.bincount(svc, queue_var[1], minlength=self.n_services)
        return verdict.violation_probability(share95, variance[0], share99, variance[1])

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
