"""The run matrix: scenarios × controllers × seeds, each run in a worker process of its own.

`plan_matrix` checks everything a user typed (scenario names or files, controller names, seeds,
duration, trace) before any run starts, so bad input fails in a second instead of after the first
run. `run_matrix` runs the plan, in parallel when asked; every run compiles its own scenario from
(name, seed, duration, trace), so the results do not depend on how many processes ran them. Only
`overhead_us_per_req` and `wall_s` differ between repeats: they are measured CPU and wall time.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kubeagora.bench.capacity import CapacityCheck, check_capacity
from kubeagora.controllers.registry import controller_label, make_controller
from kubeagora.sim.run import RunResult, simulate
from kubeagora.sim.scenario import CompiledScenario, ScenarioError, TraceModel, compile_scenario, load_scenario

RunProgress = Callable[[int, float], None]
"""Called with (index of the run in the plan, fraction of that run done)."""


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    """What the report says about a scenario of the matrix."""

    name: str
    source: str
    description: str
    seeds: tuple[int, ...]
    duration_s: float
    capacity: CapacityCheck | None = None
    """Demand against an upper bound on what the cluster can serve (on the first seed)."""
    model_error: float = 0.0
    """The log-sd of the world's deviation from the declared specs (`--model-error`)."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One cell of the matrix; everything a worker process needs to reproduce the run alone."""

    scenario: str
    """A built-in scenario name or the path of a scenario YAML file."""
    controller: str
    """A canonical controller label: a family, or a family with its knob set (`hpa@target=0.6`)."""
    seed: int
    duration_s: float | None = None
    """None = the scenario's own duration."""
    trace: TraceModel | None = None
    """Replaces the scenario's arrivals (`kubeagora bench --trace`)."""
    model_error: float | None = None
    """None = the scenario's own `model_error`."""
    policy: Path | None = None
    """The policy file mas-learned runs (None = the shipped checkpoint)."""


@dataclass(frozen=True, slots=True)
class MatrixPlan:
    scenarios: tuple[ScenarioInfo, ...]
    runs: tuple[RunSpec, ...]


def plan_matrix(
    scenarios: Sequence[str],
    controllers: Sequence[str],
    n_seeds: int = 1,
    duration_s: float | None = None,
    trace: TraceModel | None = None,
    first_seed: int | None = None,
    model_error: float | None = None,
    policy: Path | None = None,
    seed_offset: int = 0,
) -> MatrixPlan:
    """Scenario × controller × seed runs, seeds counting up from `first_seed` (default: each scenario's own),
    each start moved on by `seed_offset` (seed 3 of a scenario's five alone: `n_seeds=1, seed_offset=2`).

    Raises `ScenarioError` for a scenario that cannot run and `ValueError` for any other bad argument.
    """
    if n_seeds < 1:
        raise ValueError(f"--seeds must be at least 1 (got {n_seeds})")
    if first_seed is not None and first_seed < 0:
        raise ValueError(f"--seed must be zero or more (got {first_seed})")
    if seed_offset < 0:
        raise ValueError(f"--seed-offset must be zero or more (got {seed_offset})")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"--duration must be a positive number of seconds (got {duration_s:g})")
    if model_error is not None and not (math.isfinite(model_error) and 0.0 <= model_error <= 1.0):
        raise ValueError(f"--model-error must be between 0 and 1 (got {model_error:g})")
    if not scenarios:
        raise ValueError("no scenarios to run")
    if not controllers:
        raise ValueError("no controllers to run")
    # canonical labels: `oracle` is the clairvoyant planner, `hpa@target=0.8` is hpa's default
    controllers = [controller_label(name).text for name in controllers]
    if policy is not None:
        from kubeagora.controllers.registry import LEARNED
        from kubeagora.learn.policy import load_actor

        if LEARNED not in {controller_label(name).family for name in controllers}:
            raise ValueError(f"--policy {policy}: only {LEARNED} runs a policy; add it to --controllers")
        load_actor(policy)  # a bad file fails now, naming what is wrong, not in a worker later
    infos: list[ScenarioInfo] = []
    runs: list[RunSpec] = []
    sources: dict[str, str] = {}
    for scenario in dict.fromkeys(scenarios):
        model, source = load_scenario(scenario)
        if sources.setdefault(model.name, source) != source:
            # results are keyed by scenario name; two scenarios under one name would be averaged together
            raise ScenarioError(
                f"{source}: field 'name': {model.name!r} is also the name of {sources[model.name]}"
            )
        # compiling is cheap; doing it here turns an impossible SLO or a bad trace into an error now
        start = (model.seed if first_seed is None else first_seed) + seed_offset
        compiled = compile_scenario(model, source, seed=start, duration_s=duration_s, trace=trace,
                                    model_error=model_error)
        seeds = tuple(start + k for k in range(n_seeds))
        infos.append(
            ScenarioInfo(
                model.name,
                source,
                " ".join(model.description.split()),
                seeds,
                compiled.duration_s,
                check_capacity(compiled),
                compiled.model_error,
            )
        )
        runs.extend(
            RunSpec(scenario, controller, seed, duration_s, trace, model_error, policy)
            for controller in dict.fromkeys(controllers)
            for seed in seeds
        )
    return MatrixPlan(tuple(infos), tuple(runs))


def compile_run(spec: RunSpec) -> CompiledScenario:
    """The world a run simulates: its scenario compiled for its seed, duration, trace and model error.

    Every run of one (scenario, seed, duration, trace, model error) compiles to the same world, whoever
    compiles it: the Ray executor compiles once here and ships the result to the cluster's workers.
    """
    model, source = load_scenario(spec.scenario)
    return compile_scenario(model, source, seed=spec.seed, duration_s=spec.duration_s, trace=spec.trace,
                            model_error=spec.model_error)


def run_compiled(spec: RunSpec, scenario: CompiledScenario,
                 progress: Callable[[float], None] | None = None) -> RunResult:
    """Run the spec's controller against its compiled scenario."""
    result = simulate(scenario, make_controller(spec.controller, scenario, spec.policy), progress=progress)
    result.controller = spec.controller  # the label, setting included, not the family's name
    return result


def run_one(spec: RunSpec, progress: Callable[[float], None] | None = None) -> RunResult:
    """Compile the scenario for this seed and run the controller against it (the worker's whole job)."""
    return run_compiled(spec, compile_run(spec), progress)


def default_jobs(n_runs: int) -> int:
    return max(1, min(os.cpu_count() or 1, n_runs))


def run_matrix(
    runs: Sequence[RunSpec], jobs: int = 1, progress: RunProgress | None = None
) -> list[RunResult]:
    """Results in the order of `runs`. `jobs` > 1 runs them in that many worker processes."""
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1 (got {jobs})")
    if jobs == 1 or len(runs) <= 1:
        return [_run_in_process(i, spec, progress) for i, spec in enumerate(runs)]
    results: list[RunResult | None] = [None] * len(runs)
    # spawn, not fork: the parent runs a progress-bar thread, and forking a threaded process is unsafe
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(runs)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        pending: dict[Future[RunResult], int] = {pool.submit(run_one, spec): i for i, spec in enumerate(runs)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    results[index] = future.result()
                    if progress is not None:
                        progress(index, 1.0)
        except BaseException:  # a failed run or Ctrl-C: do not start the runs still queued
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [r for r in results if r is not None]


def _run_in_process(index: int, spec: RunSpec, progress: RunProgress | None) -> RunResult:
    def report(fraction: float) -> None:
        if progress is not None:
            progress(index, fraction)

    return run_one(spec, report)


@contextmanager
def matrix_progress_bar(runs: Sequence[RunSpec], console: Console | None = None) -> Iterator[RunProgress]:
    """A rich progress bar over the whole matrix; yields the callback `run_matrix` takes."""
    done = [0.0] * len(runs)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("simulating", total=len(runs))

        def advance(index: int, fraction: float) -> None:
            done[index] = fraction
            spec = runs[index]
            bar.update(
                task,
                completed=sum(done),
                description=f"{spec.scenario} · {spec.controller} · seed {spec.seed}",
            )

        yield advance
