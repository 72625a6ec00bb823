"""Fidelity of the fast engine against the exact per-request simulation (`kubeagora.sim.des`).

The same compiled scenario, the same fixed replica plan and the same placement run through both, and
the per-request simulation replays the engine's arrival counts and packet-loss states second by second
(`des.Exogenous`), so the two differ in what they model, not in their draws. Compared: the metric we
rank by, `slo_violation_pct`; the tail latency over all requests (p95, p99); and window by window, each
service's p95/p99 and its violation verdict.

The scenarios are small variants of the built-in ones (8–10 services, 300 s) so the per-request
simulation takes seconds. Some keep the built-in's workload with a replica plan sized for a target
utilisation (ceil: each service at or below it); others scale each service's arrival rate so that its
busiest replica runs exactly at the target (0.5–0.95), add bursts that overload services for a while,
or move one replica of each service 40 ms farther from its users (a near/far mix).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubeagora.controllers.placement import fits
from kubeagora.model import FloatArray
from kubeagora.sim import latency as lat
from kubeagora.sim.des import DesResult, Exogenous, FixedPlanController, simulate_requests, with_replica_plan
from kubeagora.sim.engine import READY, Engine
from kubeagora.sim.scenario import CompiledScenario, ScenarioModel, compile_scenario, load_scenario

TOLERANCE = 0.15
"""Largest relative error of the engine's slo_violation_pct, p95 and p99 against the per-request simulation."""
TOLERANCE_POINTS = 1.0
"""Where the per-request simulation's slo_violation_pct is under 5 %, the allowed error in points instead."""
FAR_EXTRA_MS = 40.0
"""How much farther from its users a moved replica's node is (nearest available to this)."""


@dataclass(frozen=True)
class FidelityCase:
    name: str
    builtin: str
    """The built-in scenario it is a variant of."""
    overrides: dict[str, Any]
    """Top-level fields replaced (nested mappings are merged into the built-in's)."""
    target_utilisation: float
    """The replica plan sizes every service for this utilisation at its mean rate over the run."""
    exact_utilisation: bool = False
    """Scale each service's arrival rate so that its busiest replica runs exactly at the target."""
    far_replicas: int = 0
    """Replicas of each service with at least two that move to a node `FAR_EXTRA_MS` farther away."""


_SMALL = {"duration_s": 300.0, "services": {"count": 8}}
_STEADY = {**_SMALL, "workload": {"total_rps": 1000.0, "drift_per_hour": 0.0}}

CASES: tuple[FidelityCase, ...] = (
    FidelityCase("steady-drift-small", "steady-drift", {
        **_SMALL, "workload": {"total_rps": 1000.0, "drift_per_hour": 3.0},
    }, 0.75),
    FidelityCase("burst-hotspot-small", "burst-hotspot", {
        **_SMALL, "workload": {"total_rps": 1000.0, "bursts": [
            {"at_s": 80, "duration_s": 30, "factor": 1.4, "hotspots": 1, "ramp_s": 5},
            {"at_s": 200, "duration_s": 30, "factor": 1.3, "hotspots": 3, "ramp_s": 5}]},
    }, 0.75),
    FidelityCase("diurnal-mixed-small", "diurnal-mixed", {
        "duration_s": 300.0, "services": {"count": 10},
        "workload": {"total_rps": 1000.0, "diurnal_amplitude": 0.25, "diurnal_period_s": 300.0,
                     "diurnal_phase_s": 0.0, "heavy_tail_alpha": 8.0},
    }, 0.7),
    FidelityCase("heterogeneous-nodes", "steady-drift", {
        "duration_s": 300.0,
        "topology": {"kind": "grid", "speed_jitter": 0.5, "edge_nodes_per_zone": 2, "mcu_nodes_per_zone": 2,
                     "cloud_nodes_per_region": 1},
        "services": {"count": 8, "mix": {"web": 3, "api": 2, "iot-ingest": 3}},
        "workload": {"total_rps": 1000.0},
    }, 0.75),
    *(FidelityCase(f"utilisation-{u:.2f}", "steady-drift", _STEADY, u, exact_utilisation=True)
      for u in (0.5, 0.7, 0.8, 0.9, 0.95)),
    FidelityCase("overload-bursts", "burst-hotspot", {
        **_SMALL, "workload": {"total_rps": 1000.0, "bursts": [
            {"at_s": 60, "duration_s": 40, "factor": 1.5, "hotspots": 2, "ramp_s": 5},
            {"at_s": 180, "duration_s": 50, "factor": 1.25, "hotspots": 3, "ramp_s": 10}]},
    }, 0.8, exact_utilisation=True),
    FidelityCase("near-far", "steady-drift", {
        **_STEADY, "services": {"count": 6, "mix": {"web": 1, "api": 1, "ml-inference": 0, "iot-ingest": 0, "llm": 0}},
    }, 0.75, exact_utilisation=True, far_replicas=1),
)

CI_CASE = FidelityCase("ci-violation", "steady-drift", {
    "duration_s": 200.0, "workload": {"total_rps": 1100.0, "drift_per_hour": 0.0},
    "services": {"count": 8, "zipf_s": 0.0,
                 "mix": {"web": 1, "api": 1, "ml-inference": 0, "iot-ingest": 0, "llm": 0}},
}, 0.85, exact_utilisation=True)
"""The case the unit tests run (seconds, not minutes): eight web and API services at utilisation 0.85,
near their SLO, so the violation share is large and decided window by window."""
CI_SEEDS = (1, 2)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def case_scenario(case: FidelityCase, seed: int | None = None) -> CompiledScenario:
    model, source = load_scenario(case.builtin)
    data = _merge(model.model_dump(), {"name": case.name, **case.overrides})
    return compile_scenario(ScenarioModel.model_validate(data), f"{source} ({case.name})", seed=seed)


def _replica_rates_rps(eng: Engine) -> tuple[np.ndarray, FloatArray]:
    """(service, the most requests per second each Ready replica serves at its node's speed)."""
    r = eng.state.replicas
    ready = r.state == READY
    svc, node = r.service[ready], r.node[ready]
    service_ms = eng.svc_time_ms[svc, eng.node_class[node]] / eng.node_speed0[node]
    return svc, np.asarray(eng.state.concurrency[svc] * 1000.0 / service_ms, dtype=np.float64)


def _capacity_rps(eng: Engine) -> FloatArray:
    """Per service: the rate at which its slowest replica saturates under an equal split."""
    svc, per_replica_rps = _replica_rates_rps(eng)
    slowest = np.full(eng.n_services, np.inf)
    np.minimum.at(slowest, svc, per_replica_rps)
    return np.asarray(np.bincount(svc, minlength=eng.n_services) * np.where(np.isfinite(slowest), slowest, 0.0),
                      dtype=np.float64)


def _mean_rps(scenario: CompiledScenario) -> FloatArray:
    n_steps = round(scenario.duration_s / scenario.step_s)
    return np.asarray(scenario.workload.rates(0.0, n_steps, scenario.step_s).mean(axis=0), dtype=np.float64)


def replica_plan(scenario: CompiledScenario, target_utilisation: float, rounds: int = 6) -> dict[str, int]:
    """Replicas per service so that its mean rate uses `target_utilisation` of the placed capacity.

    Placement decides each replica's node (class and speed), so the plan is refined on the engine's
    own placement of the previous guess.
    """
    mean_rps = _mean_rps(scenario)
    plan = {s.name: max(1, int(np.ceil(r * min(s.service_time_ms.values()) / 1000.0
                                        / (s.concurrency * target_utilisation))))
            for s, r in zip(scenario.services, mean_rps, strict=True)}
    for _ in range(rounds):
        # equal split: the slowest replica saturates first, so size by count × slowest replica
        utilisation = mean_rps / np.maximum(_capacity_rps(Engine(with_replica_plan(scenario, plan))), 1e-9)
        short = utilisation > target_utilisation * 1.05
        if not short.any():
            break
        for i in np.flatnonzero(short):
            name = scenario.services[i].name
            plan[name] = int(np.ceil(plan[name] * utilisation[i] / target_utilisation))
    return plan


def move_replicas_farther(eng: Engine, count: int, extra_ms: float = FAR_EXTRA_MS) -> None:
    """Move the last `count` Ready replicas of every service with at least two to the node, among those
    that fit them, whose network delay from the service's users is nearest to theirs + `extra_ms`."""
    r = eng.state.replicas
    for s in range(eng.n_services):
        mine = np.flatnonzero((r.service == s) & (r.state == READY))
        if mine.size < 2:
            continue
        for k in mine[-count:]:
            ok = fits(eng._request(s), eng._capacity())
            ok[r.node[k]] = False
            if not ok.any():
                continue
            want = eng.net_ms[s, r.node[k]] + extra_ms
            node = int(np.argmin(np.where(ok, np.abs(eng.net_ms[s] - want), np.inf)))
            eng._release(int(k))
            eng._bind(s, node, ready_now=True)


def prepared_engine(case: FidelityCase, scenario: CompiledScenario) -> Engine:
    """A fresh engine of the planned scenario with the case's placement."""
    eng = Engine(scenario)
    if case.far_replicas:
        move_replicas_farther(eng, case.far_replicas)
    return eng


def planned_scenario(case: FidelityCase, seed: int | None = None) -> tuple[CompiledScenario, dict[str, int]]:
    """The case's scenario with its replica plan (and, for exact cases, arrival rates scaled to the target)."""
    scenario = case_scenario(case, seed)
    plan = replica_plan(scenario, case.target_utilisation)
    planned = with_replica_plan(scenario, plan)
    if case.exact_utilisation:
        capacity = _capacity_rps(prepared_engine(case, planned))
        factor = case.target_utilisation * capacity / np.maximum(_mean_rps(planned), 1e-12)
        workload = dataclasses.replace(planned.workload, base_rps=planned.workload.base_rps * factor)
        planned = dataclasses.replace(planned, workload=workload)
    return planned, plan


@dataclass(frozen=True)
class EngineRun:
    metrics: dict[str, Any]
    service_p95_ms: FloatArray
    service_p99_ms: FloatArray
    window_hist: FloatArray
    """[service, window, bin]"""
    window_violation_probability: FloatArray
    """[service, window]"""
    exogenous: Exogenous
    wall_s: float


def run_engine(scenario: CompiledScenario, plan: dict[str, int], engine: Engine | None = None) -> EngineRun:
    """The fast engine under `FixedPlanController`, keeping each window's per-service histogram and the
    per-second arrivals and loss states (for the per-request simulation to replay)."""
    started = time.perf_counter()
    eng = engine if engine is not None else Engine(scenario)
    controller = FixedPlanController(plan)
    rec = eng.recorder
    steps = round(scenario.duration_s / scenario.step_s)
    every = max(1, round(controller.interval_s / scenario.step_s))
    arrivals = np.zeros((steps, eng.n_services))
    loss_bad = np.zeros((steps, len(scenario.topology.regions)), bool)
    hists: list[FloatArray] = []
    probabilities: list[FloatArray] = []
    state: None = None
    window_start = rec.window_start
    for i in range(steps):
        if i and i % every == 0:
            actions, state = controller.decide(eng.observe(), state)  # the plan needs no state
            if actions:
                eng.apply(actions)
        eng.step()
        arrivals[i] = eng.state.last_arrivals if eng.state.last_arrivals is not None else 0.0
        loss_bad[i] = eng.state.region_loss_bad
        if rec.window_start != window_start:  # a window closed: keep its per-service histogram
            hists.append(rec.last_window_hist)
            probabilities.append(rec.window_violation_probability)
            window_start = rec.window_start
    metrics = rec.metrics(scenario.duration_s, 0.0, None)
    if rec.window_start != window_start:
        hists.append(rec.last_window_hist)
        probabilities.append(rec.window_violation_probability)
    window_hist = np.stack(hists, axis=1)
    pct = lat.percentiles(window_hist.sum(axis=1), (0.95, 0.99))
    return EngineRun(metrics, pct[:, 0], pct[:, 1], window_hist, np.stack(probabilities, axis=1),
                     Exogenous(arrivals, loss_bad), time.perf_counter() - started)


def within_tolerance(engine_value: float, truth: float, points_below: float | None = None) -> bool:
    """|engine − truth| ≤ TOLERANCE × truth, or ≤ TOLERANCE_POINTS where `points_below` is given and the
    truth is under it (a percentage)."""
    if points_below is not None and truth < points_below:
        return abs(engine_value - truth) <= TOLERANCE_POINTS
    return abs(engine_value - truth) <= TOLERANCE * abs(truth)


@dataclass(frozen=True)
class Comparison:
    case: str
    seed: int
    requests: int
    mean_utilisation: float
    max_utilisation: float
    engine: EngineRun
    des: DesResult
    des_again: DesResult | None = None
    """A second per-request draw of the same case (other request-level draws, the same arrival counts and
    loss states): how far one draw of the truth is from another, the floor under any model's error."""

    def error(self, key: str) -> float:
        """Relative error of the engine's metric against the per-request simulation's."""
        truth = float(self.des.metrics[key])
        return (float(self.engine.metrics[key]) - truth) / truth

    def windows(self) -> tuple[np.ndarray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """Per (service, window) with requests on both sides: (mask, requests, engine p95, p99, DES p95, p99)."""
        n_w = min(self.engine.window_hist.shape[1], self.des.window_hist.shape[1])
        eh, dh = self.engine.window_hist[:, :n_w], self.des.window_hist[:, :n_w]
        served = dh.sum(axis=2)
        mask = (served > 0) & (eh.sum(axis=2) > 0)
        pe, pd = lat.percentiles(eh, (0.95, 0.99)), lat.percentiles(dh, (0.95, 0.99))
        return mask, served, pe[..., 0], pe[..., 1], pd[..., 0], pd[..., 1]

    def verdict_agreement(self) -> float:
        """Share of (service, window) cells with requests whose verdict agrees (the engine's: P > 0.5)."""
        n_w = min(self.engine.window_hist.shape[1], self.des.window_hist.shape[1])
        mask = self.windows()[0]
        engine_says = self.engine.window_violation_probability[:, :n_w] > 0.5
        return float((engine_says == self.des.window_violated[:, :n_w])[mask].mean())

    def window_error(self, quantile: int) -> float:
        """Request-weighted mean absolute relative error of the engine windows' p95 (0) or p99 (1)."""
        return window_error(self.engine.window_hist, self.des.window_hist, quantile)


def window_error(model_hist: FloatArray, truth_hist: FloatArray, quantile: int) -> float:
    """Request-weighted mean absolute relative error of the p95 (0) or p99 (1) of `model_hist`'s windows
    against `truth_hist`'s ([service, window, bin]; windows with requests on both sides)."""
    n_w = min(model_hist.shape[1], truth_hist.shape[1])
    mh, th = model_hist[:, :n_w], truth_hist[:, :n_w]
    served = th.sum(axis=2)
    mask = (served > 0) & (mh.sum(axis=2) > 0)
    q = (0.95, 0.99)[quantile]
    m, t = lat.percentiles(mh, (q,))[..., 0], lat.percentiles(th, (q,))[..., 0]
    err = np.abs(m - t) / np.where(mask, t, 1.0)
    return float((err * served)[mask].sum() / served[mask].sum())


SECOND_DRAW_SEED_OFFSET = 1_000


def compare(case: FidelityCase, seed: int | None = None, second_draw: bool = False) -> Comparison:
    """The engine and the per-request simulation on the case; `second_draw` adds another per-request run
    (request-level seed + `SECOND_DRAW_SEED_OFFSET`)."""
    planned, plan = planned_scenario(case, seed)
    engine_run = run_engine(planned, plan, prepared_engine(case, planned))
    des = simulate_requests(planned, exogenous=engine_run.exogenous, engine=prepared_engine(case, planned))
    again = simulate_requests(planned, planned.seed + SECOND_DRAW_SEED_OFFSET, exogenous=engine_run.exogenous,
                              engine=prepared_engine(case, planned)) if second_draw else None
    return Comparison(case.name, planned.seed, des.arrived, float(des.replica_utilisation.mean()),
                      float(des.replica_utilisation.max()), engine_run, des, again)


@dataclass(frozen=True)
class CaseSummary:
    """A case over seeds: each figure is the mean over the seeds' runs."""

    case: str
    seeds: tuple[int, ...]
    requests: int
    utilisation: tuple[float, float]
    """Mean over replicas, and the busiest replica (per-request simulation)."""
    engine: dict[str, float]
    des: dict[str, float]
    """slo_violation_pct, p95_ms, p99_ms."""
    verdict_agreement: float
    window_p95_error: float
    window_p99_error: float
    engine_s: float
    des_s: float
    per_seed: tuple[tuple[dict[str, float], dict[str, float]], ...] = ()
    """Each seed's (engine, DES) figures, for the spread."""
    second_draw: tuple[float, float, float, float] | None = None
    """With a second per-request draw: its mean slo_violation_pct, the largest relative difference of a
    seed's two draws, and the window p95 / p99 error of the second draw against the first."""

    def error(self, key: str) -> float:
        """Relative error of the means over seeds (0 where both are 0, infinite where only the truth is)."""
        return relative_error(self.engine[key], self.des[key])

    def agrees(self, key: str) -> bool:
        """The means over seeds within tolerance."""
        return within_tolerance(self.engine[key], self.des[key], _points_below(key))

    def seed_errors(self, key: str) -> tuple[list[float], bool]:
        """Each seed's error as the tolerance judges it: relative, or in points (then True) where some
        seed's per-request figure is under the points threshold."""
        below = _points_below(key)
        if below is not None and any(d[key] < below for _, d in self.per_seed):
            return [e[key] - d[key] for e, d in self.per_seed], True
        return [relative_error(e[key], d[key]) for e, d in self.per_seed], False

    def seeds_outside(self, key: str) -> int:
        """Seeds whose own figures are outside the tolerance."""
        return sum(not within_tolerance(e[key], d[key], _points_below(key)) for e, d in self.per_seed)


def relative_error(engine_value: float, truth: float) -> float:
    diff = engine_value - truth
    return diff / truth if truth else (0.0 if diff == 0 else float("inf"))


def _points_below(key: str) -> float | None:
    return 5.0 if key == "slo_violation_pct" else None


KEYS = ("slo_violation_pct", "p95_ms", "p99_ms")


def summarise(case: FidelityCase, seeds: tuple[int | None, ...], second_draw: bool = False) -> CaseSummary:
    return summary_of(case.name, [compare(case, seed, second_draw) for seed in seeds])


def _second_draw(runs: list[Comparison]) -> tuple[float, float, float, float] | None:
    pairs = [(c.des, c.des_again) for c in runs if c.des_again is not None]
    if not pairs:
        return None
    key = "slo_violation_pct"
    return (float(np.mean([b.metrics[key] for _, b in pairs])),
            max(abs(relative_error(float(b.metrics[key]), float(a.metrics[key]))) for a, b in pairs),
            float(np.mean([window_error(b.window_hist, a.window_hist, 0) for a, b in pairs])),
            float(np.mean([window_error(b.window_hist, a.window_hist, 1) for a, b in pairs])))


def summary_of(case: str, runs: list[Comparison]) -> CaseSummary:
    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    return CaseSummary(
        case, tuple(c.seed for c in runs), sum(c.requests for c in runs),
        (mean([c.mean_utilisation for c in runs]), max(c.max_utilisation for c in runs)),
        {k: mean([float(c.engine.metrics[k]) for c in runs]) for k in KEYS},
        {k: mean([float(c.des.metrics[k]) for c in runs]) for k in KEYS},
        mean([c.verdict_agreement() for c in runs]), mean([c.window_error(0) for c in runs]),
        mean([c.window_error(1) for c in runs]), sum(c.engine.wall_s for c in runs), sum(c.des.wall_s for c in runs),
        tuple(({k: float(c.engine.metrics[k]) for k in KEYS}, {k: float(c.des.metrics[k]) for k in KEYS})
              for c in runs),
        _second_draw(runs),
    )

