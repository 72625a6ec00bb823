"""`kubeagora bench --executor ray`: the run matrix as Ray tasks, on this machine or on a Ray cluster.

Without an address, a local Ray starts for the bench with `jobs` CPUs and stops after it. With
`--ray-address` (`ray://HOST:10001` for a cluster's Ray Client server, `auto` for the Ray this
machine already belongs to) the runs go to that cluster, and the workers run this driver's own
kubeagora code (shipped with the job as a Ray `py_modules` entry), so a cluster image with an older
kubeagora cannot give different numbers; the image needs kubeagora's dependencies (the core install).

Results are those `run_matrix` gives for `--jobs N`: the driver compiles each (scenario, seed) once,
exactly as a worker process would, and ships the compiled world, so the workers read no file of this
machine (a scenario YAML, a trace); each run is the same pure function of its spec and world.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ray  # the 'ray' extra: the CLI imports this module inside `needs_extra`, which names it when missing

import kubeagora
from kubeagora.bench.matrix import RunProgress, RunSpec, compile_run, run_compiled
from kubeagora.sim.run import RunResult
from kubeagora.sim.scenario import CompiledScenario


class RayExecutorError(ValueError):
    """The Ray cluster could not be reached or could not run kubeagora (one line for the CLI)."""


def _world_key(spec: RunSpec) -> tuple[object, ...]:
    """The runs that simulate one world: everything but the controller."""
    return (spec.scenario, spec.seed, spec.duration_s, spec.trace, spec.model_error)


def _run_task(spec: RunSpec, scenario: CompiledScenario, driver_version: str) -> RunResult:
    if kubeagora.__version__ != driver_version:
        raise RayExecutorError(f"the Ray worker runs kubeagora {kubeagora.__version__}, the driver "
                               f"{driver_version}: the numbers would not be comparable")
    return run_compiled(spec, scenario)


def _connect(address: str | None, jobs: int) -> None:
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address is None:
        # "local": a Ray of its own, even where `ray start` left one on this machine to join
        ray.init(address="local", num_cpus=jobs, include_dashboard=False, **quiet)
        return
    package = Path(kubeagora.__file__).parent
    try:
        ray.init(address=address, runtime_env={"py_modules": [str(package)]}, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RayExecutorError(f"--ray-address {address}: cannot connect ({first_line})") from None


def run_matrix_on_ray(
    runs: Sequence[RunSpec],
    jobs: int = 1,
    address: str | None = None,
    progress: RunProgress | None = None,
) -> list[RunResult]:
    """Results in the order of `runs`, as `run_matrix` returns them.

    `jobs` is the number of CPUs of the local Ray (ignored with an `address`: the cluster's size
    decides). Raises `RayExecutorError` when the cluster cannot be reached or runs another kubeagora.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1 (got {jobs})")
    if not runs:
        return []
    started_here = not ray.is_initialized()
    if started_here:
        _connect(address, jobs)
    try:
        return _run_all(runs, progress)
    finally:
        if started_here:
            ray.shutdown()


def _run_all(runs: Sequence[RunSpec], progress: RunProgress | None) -> list[RunResult]:
    task: Callable[..., Any] = ray.remote(num_cpus=1, max_retries=0)(_run_task).remote
    worlds: dict[tuple[object, ...], Any] = {}
    pending: dict[Any, int] = {}
    for index, spec in enumerate(runs):
        key = _world_key(spec)
        if key not in worlds:
            worlds[key] = ray.put(compile_run(spec))
        pending[task(spec, worlds[key], kubeagora.__version__)] = index
    results: list[RunResult | None] = [None] * len(runs)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                results[index] = _result(ref)
                if progress is not None:
                    progress(index, 1.0)
    except BaseException:  # a failed run or Ctrl-C: cancel the runs not done yet
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return [r for r in results if r is not None]


def _result(ref: Any) -> RunResult:
    try:
        result: RunResult = ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        # the worker's own exception, as a local run would have raised it
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise
    return result
