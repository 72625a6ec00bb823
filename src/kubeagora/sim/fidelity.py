"""Fidelity of the fast engine against the exact per-request simulation (`kubeagora.sim.des`).

The same compiled scenario and the same fixed replica plan run through both; the tail latency over
all requests (p95, p99) of the engine should be within 10 % of the per-request truth. The scenarios
are small variants of the built-in ones (fewer services, minutes instead of half an hour) so the
per-request simulation takes seconds, with a replica plan that puts the replicas' utilisation in a
realistic band and lets the bursts overload some of them for a while.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubeagora.model import FloatArray
from kubeagora.sim import latency as lat
from kubeagora.sim.des import DesResult, FixedPlanController, simulate_requests, with_replica_plan
from kubeagora.sim.engine import READY, Engine
from kubeagora.sim.scenario import CompiledScenario, ScenarioModel, compile_scenario, load_scenario

TOLERANCE = 0.10
"""Largest relative error of the engine's p95 and p99 against the per-request simulation."""


@dataclass(frozen=True)
class FidelityCase:
    name: str
    builtin: str
    """The built-in scenario it is a variant of."""
    overrides: dict[str, Any]
    """Top-level fields replaced (nested mappings are merged into the built-in's)."""
    target_utilisation: float
    """The replica plan sizes every service for this utilisation at its mean rate over the run."""


CASES: tuple[FidelityCase, ...] = (
    FidelityCase("steady-drift-small", "steady-drift", {
        "duration_s": 300.0, "services": {"count": 8},
        "workload": {"total_rps": 1000.0, "drift_per_hour": 3.0},
    }, 0.75),
    FidelityCase("burst-hotspot-small", "burst-hotspot", {
        "duration_s": 300.0, "services": {"count": 8},
        "workload": {"total_rps": 1000.0, "bursts": [
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
)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def case_scenario(case: FidelityCase, seed: int | None = None) -> CompiledScenario:
    model, source = load_scenario(case.builtin)
    data = _merge(model.model_dump(), {"name": case.name, **case.overrides})
    return compile_scenario(ScenarioModel.model_validate(data), f"{source} ({case.name})", seed=seed)


def replica_plan(scenario: CompiledScenario, target_utilisation: float, rounds: int = 6) -> dict[str, int]:
    """Replicas per service so that its mean rate uses `target_utilisation` of the placed capacity.

    Placement decides each replica's node (class and speed), so the plan is refined on the engine's
    own placement of the previous guess.
    """
    n_steps = round(scenario.duration_s / scenario.step_s)
    mean_rps = scenario.workload.rates(0.0, n_steps, scenario.step_s).mean(axis=0)
    plan = {s.name: max(1, int(np.ceil(r * min(s.service_time_ms.values()) / 1000.0
                                        / (s.concurrency * target_utilisation))))
            for s, r in zip(scenario.services, mean_rps, strict=True)}
    for _ in range(rounds):
        eng = Engine(with_replica_plan(scenario, plan))
        r = eng.state.replicas
        ready = r.state == READY
        svc, node = r.service[ready], r.node[ready]
        per_replica_rps = eng.state.concurrency[svc] * 1000.0 / (
            eng.svc_time_ms[svc, eng.node_class[node]] / eng.node_speed0[node])
        capacity = np.bincount(svc, per_replica_rps, minlength=eng.n_services)
        count = np.bincount(svc, minlength=eng.n_services)
        # equal split: the slowest replica saturates first, so size by count × slowest replica
        slowest = np.full(eng.n_services, np.inf)
        np.minimum.at(slowest, svc, per_replica_rps)
        utilisation = mean_rps / np.maximum(np.minimum(capacity, count * slowest), 1e-9)
        short = utilisation > target_utilisation * 1.05
        if not short.any():
            break
        for i in np.flatnonzero(short):
            name = scenario.services[i].name
            plan[name] = int(np.ceil(plan[name] * utilisation[i] / target_utilisation))
    return plan


@dataclass(frozen=True)
class EngineRun:
    metrics: dict[str, Any]
    service_p95_ms: FloatArray
    service_p99_ms: FloatArray
    wall_s: float


def run_engine(scenario: CompiledScenario, plan: dict[str, int]) -> EngineRun:
    """The fast engine under `FixedPlanController`, keeping per-service histograms over the whole run."""
    started = time.perf_counter()
    eng = Engine(scenario)
    controller = FixedPlanController(plan)
    rec = eng.recorder
    per_service = np.zeros((eng.n_services, lat.BINS))
    steps = round(scenario.duration_s / scenario.step_s)
    every = max(1, round(controller.interval_s / scenario.step_s))
    state: None = None
    window_start = rec.window_start
    for i in range(steps):
        if i and i % every == 0:
            actions, state = controller.decide(eng.observe(), state)  # the plan needs no state
            if actions:
                eng.apply(actions)
        eng.step()
        if rec.window_start != window_start:  # a window closed: keep its per-service histogram
            per_service += rec.last_window_hist
            window_start = rec.window_start
    metrics = rec.metrics(scenario.duration_s, 0.0, None)
    if rec.window_start != window_start:
        per_service += rec.last_window_hist
    pct = lat.percentiles(per_service, (0.95, 0.99))
    return EngineRun(metrics, pct[:, 0], pct[:, 1], time.perf_counter() - started)


@dataclass(frozen=True)
class Comparison:
    case: str
    seed: int
    requests: int
    mean_utilisation: float
    max_utilisation: float
    engine: EngineRun
    des: DesResult

    def error(self, key: str) -> float:
        """Relative error of the engine's metric against the per-request simulation's."""
        truth = float(self.des.metrics[key])
        return (float(self.engine.metrics[key]) - truth) / truth


def compare(case: FidelityCase, seed: int | None = None) -> Comparison:
    scenario = case_scenario(case, seed)
    plan = replica_plan(scenario, case.target_utilisation)
    planned = with_replica_plan(scenario, plan)
    engine_run = run_engine(planned, plan)
    des = simulate_requests(planned)
    return Comparison(case.name, scenario.seed, des.arrived, float(des.replica_utilisation.mean()),
                      float(des.replica_utilisation.max()), engine_run, des)
