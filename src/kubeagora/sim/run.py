"""Run one controller against one scenario: the loop every bench run, test and demo goes through."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeagora.controllers.base import Controller
from kubeagora.sim.engine import Engine, PlatformDefaults
from kubeagora.sim.scenario import CompiledScenario


@dataclass
class RunResult:
    scenario: str
    seed: int
    controller: str
    duration_s: float
    metrics: dict[str, float | None]
    timeseries: dict[str, list[float]]
    """Per 10-second window: t_s, demand_rps, served_rps, ready_replicas, pods, p50/p95/p99_ms, power_w,
    violating_services."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """Every action taken: time, kind, target, reason, and why it was refused if it was."""
    extras: dict[str, float] = field(default_factory=dict)
    faults: list[tuple[float, str]] = field(default_factory=list)
    wall_s: float = 0.0

    def as_json(self, with_series: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"scenario": self.scenario, "seed": self.seed, "controller": self.controller,
                               "metrics": self.metrics, "extras": self.extras, "faults": self.faults,
                               "wall_s": round(self.wall_s, 3)}
        if with_series:
            out["timeseries"] = self.timeseries
            out["decisions"] = self.decisions
        return out


def _describe(action: Any) -> dict[str, Any]:
    d = {k: getattr(action, k) for k in action.__slots__}
    d["kind"] = type(action).__name__
    return d


def simulate(scenario: CompiledScenario, controller: Controller, platform: PlatformDefaults | None = None,
             progress: Callable[[float], None] | None = None, max_decisions: int = 5000) -> RunResult:
    """Step the engine for the scenario's duration, calling the controller every `interval_s`.

    The controller's CPU time (decide + enact) is what `overhead_us_per_req` divides by requests served.
    """
    started = time.perf_counter()
    engine = Engine(scenario, platform=platform)
    steps = round(scenario.duration_s / scenario.step_s)
    every = max(1, round(controller.interval_s / scenario.step_s))
    cpu_s = 0.0
    t0 = time.process_time()
    state = controller.initial_state(engine.observe())
    cpu_s += time.process_time() - t0
    decisions: list[dict[str, Any]] = []
    report_every = max(1, steps // 100)
    for i in range(steps):
        if i % every == 0 and i > 0:
            t0 = time.process_time()
            actions, state = controller.decide(engine.observe(), state)
            refused = engine.apply(actions) if actions else []
            cpu_s += time.process_time() - t0
            if len(decisions) < max_decisions:
                for a in actions:
                    decisions.append({"t_s": engine.state.t, **_describe(a)})
                for why in refused:
                    decisions.append({"t_s": engine.state.t, "kind": "Refused", "reason": why})
        engine.step()
        if progress is not None and (i % report_every == 0 or i == steps - 1):
            progress((i + 1) / steps)
    rollbacks = getattr(controller, "rollback_pct", None)
    rollback_pct = rollbacks(state) if callable(rollbacks) else None
    # a controller that keeps its own decision records (the MAS: agent, reasons, shield and twin
    # verdicts, rollout stages) reports those instead of the bare actions
    decision_log = getattr(controller, "decision_log", None)
    if callable(decision_log):
        decisions = list(decision_log(state))[:max_decisions]
    rec = engine.recorder
    metrics = rec.metrics(scenario.duration_s, cpu_s, rollback_pct)
    # CPU seconds per simulated second = the cores the controller needs to keep up at real time
    extras = {**rec.extras(), "controller_cores": cpu_s / scenario.duration_s,
              "services": float(len(scenario.services))}
    return RunResult(scenario.name, scenario.seed, controller.name, scenario.duration_s, metrics, rec.series,
                     decisions, extras, rec.faults, time.perf_counter() - started)
