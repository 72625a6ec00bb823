"""``kubeagora``: simulate one run, bench a matrix of them, list the scenarios.

The commands are thin: they parse options, call `kubeagora.bench`, and print. Bad input (an
unknown name, a malformed file, an impossible SLO, a path that cannot be written) is one line on
stderr and exit status 2; it is caught here, at the boundary, and nowhere deeper.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kubeagora.bench.document import bench_document, write_document
from kubeagora.bench.matrix import (
    default_jobs,
    matrix_progress_bar,
    plan_matrix,
    run_matrix,
)
from kubeagora.bench.sweep import STANDARD, describe_standard, expand_sweeps
from kubeagora.bench.tables import equal_cost_table, run_table, scenario_table
from kubeagora.controllers.registry import CONTROLLER_NAMES
from kubeagora.sim.scenario import DEFAULT_SCENARIO, ScenarioError, TraceModel, builtin_names, load_scenario
from kubeagora.sim.trace import TRACE_FORMATS, TraceError

USAGE_ERROR = 2

app = typer.Typer(
    name="kubeagora",
    help="Multi-agent orchestration for Kubernetes, and the simulator that benchmarks it.",
    no_args_is_help=True,
    add_completion=False,
)
# Piped or captured output is not read on an 80-column screen: do not squeeze the tables into one.
_out = Console(width=None if sys.stdout.isatty() else 120)
_err = Console(stderr=True)


class UsageError(ValueError):
    """Bad input found by the CLI itself (as opposed to a scenario or trace file)."""


@contextmanager
def _bad_input_exits() -> Iterator[None]:
    """Turn the errors that describe bad input into one line on stderr and exit status 2."""
    try:
        yield
    except (ScenarioError, TraceError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None


def _names(csv: str | None, default: list[str]) -> list[str]:
    if csv is None:
        return default
    return [name.strip() for name in csv.split(",") if name.strip()]


def _check_output_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory, expected a file path")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {path}: directory {path.parent} does not exist")


def _prepare_report_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--report {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--report {path}: cannot create it ({e.strerror})") from None


def _trace_model(path: Path | None, fmt: str | None, scale: float, offset_s: int = 0) -> TraceModel | None:
    if path is None:
        if fmt is not None:
            raise UsageError("--trace-format needs --trace PATH")
        if offset_s:
            raise UsageError("--trace-offset needs --trace PATH")
        return None
    if offset_s < 0:
        raise UsageError(f"--trace-offset must be zero or more seconds (got {offset_s})")
    fmt = fmt or ("timestamps" if path.suffix.lower() == ".csv" else "counts")
    if fmt not in TRACE_FORMATS:
        raise UsageError(f"--trace-format {fmt!r}: use one of {', '.join(TRACE_FORMATS)}")
    if not scale > 0:
        raise UsageError(f"--trace-scale must be positive (got {scale:g})")
    return TraceModel.model_validate({"path": str(path), "format": fmt, "scale": scale, "offset_s": offset_s})


def _command_line(subcommand: str, *options: tuple[str, object]) -> str:
    """The command that reproduces a result, as a shell line; options whose value is None are left out."""
    words = ["kubeagora", subcommand]
    for flag, value in options:
        if value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


Duration = Annotated[
    float | None,
    typer.Option(
        "--duration", help="Simulated seconds per run (default: the scenario's own).", show_default=False
    ),
]
JsonPath = Annotated[
    Path | None,
    typer.Option(
        "--json", help="Write the results as bench JSON (see DESIGN.md) to this file.", show_default=False
    ),
]


@app.command()
def simulate(
    scenario: Annotated[
        str, typer.Option("--scenario", help="A built-in scenario name or a scenario YAML file.")
    ],
    controller: Annotated[
        str,
        typer.Option(
            "--controller",
            help="The controller to run; a baseline with its knob set as FAMILY@target=VALUE (hpa@target=0.6).",
        ),
    ],
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed (default: the scenario's).", show_default=False)
    ] = None,
    duration: Duration = None,
    json_path: JsonPath = None,
) -> None:
    """Run one controller against one scenario and print its metrics."""
    with _bad_input_exits():
        if json_path is not None:
            _check_output_file(json_path, "--json")
        plan = plan_matrix([scenario], [controller], duration_s=duration, first_seed=seed)
    with matrix_progress_bar(plan.runs, _err) as progress:
        (result,) = run_matrix(plan.runs, jobs=1, progress=progress)
    title = (
        f"{result.scenario} · {result.controller} · seed {result.seed} · {result.duration_s:g} s simulated"
    )
    _out.print(run_table(result.metrics, title))
    _out.print(f"[dim]ran in {result.wall_s:.1f} s[/]")
    if json_path is not None:
        command = _command_line(
            "simulate",
            ("--scenario", scenario),
            ("--controller", controller),
            ("--seed", result.seed),
            ("--duration", duration),
        )
        write_document(bench_document([result], plan.scenarios, command), json_path)
        _out.print(f"wrote {json_path}")


@app.command()
def bench(
    scenarios: Annotated[
        str | None,
        typer.Option(
            "--scenarios",
            help="Comma-separated scenario names or YAML files (default: every built-in one; "
            "with --trace, the default scenario).",
            show_default=False,
        ),
    ] = None,
    controllers: Annotated[
        str | None,
        typer.Option(
            "--controllers",
            help="Comma-separated controller names, FAMILY@target=VALUE for a baseline's setting "
            "(default: all, at their shipped defaults; `oracle` = clairvoyant).",
            show_default=False,
        ),
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            help=f"Sweep a baseline's knob, repeatable: FAMILY.target=START:STOP:STEP, FAMILY.target=A,B,C, "
            f"or '{STANDARD}' (every baseline among --controllers: {describe_standard()}). Each baseline "
            "becomes a frontier of violations vs replica-seconds; mas and mpc are compared with it at equal "
            "replica-seconds.",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        int, typer.Option("--seeds", help="Seeds per scenario, counting up from the scenario's.")
    ] = 1,
    duration: Duration = None,
    trace: Annotated[
        Path | None,
        typer.Option(
            "--trace",
            help="Replace the scenarios' arrivals by this trace, spread over services by weight.",
            show_default=False,
        ),
    ] = None,
    trace_format: Annotated[
        str | None,
        typer.Option(
            "--trace-format",
            help="counts | timestamps (default: timestamps for .csv, else counts).",
            show_default=False,
        ),
    ] = None,
    trace_scale: Annotated[
        float, typer.Option("--trace-scale", help="Multiply the trace's rate by this.")
    ] = 1.0,
    trace_offset: Annotated[
        int, typer.Option("--trace-offset", help="Start the replay this many seconds into the trace.")
    ] = 0,
    json_path: JsonPath = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write an HTML report (tables, figures, results.json) into this directory.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="Worker processes (default: one per CPU core, at most one per run).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run scenarios × controllers × seeds; print a table per scenario, optionally write JSON and a report."""
    with _bad_input_exits():
        trace_model = _trace_model(trace, trace_format, trace_scale, trace_offset)
        default_scenarios = [DEFAULT_SCENARIO] if trace_model is not None else builtin_names()
        scenario_names = _names(scenarios, default_scenarios)
        controller_list = expand_sweeps(_names(controllers, list(CONTROLLER_NAMES)), sweep or [])
        plan = plan_matrix(
            scenario_names, controller_list, n_seeds=seeds, duration_s=duration, trace=trace_model
        )
        workers = default_jobs(len(plan.runs)) if jobs is None else jobs
        if workers < 1:
            raise UsageError(f"--jobs must be at least 1 (got {workers})")
        if report is not None:
            _prepare_report_dir(report)
        if json_path is not None:
            _check_output_file(json_path, "--json")
    with matrix_progress_bar(plan.runs, _err) as progress:
        results = run_matrix(plan.runs, jobs=workers, progress=progress)
    command = _command_line(
        "bench",
        ("--scenarios", ",".join(scenario_names)),
        ("--controllers", ",".join(_names(controllers, list(CONTROLLER_NAMES)))),
        *(("--sweep", spec) for spec in sweep or []),
        ("--seeds", seeds),
        ("--duration", duration),
        ("--trace", trace_model.path if trace_model else None),
        ("--trace-format", trace_model.format if trace_model else None),
        ("--trace-scale", trace_model.scale if trace_model else None),
        ("--trace-offset", trace_model.offset_s if trace_model and trace_model.offset_s else None),
        ("--json", json_path),
        ("--report", report),
    )
    document = bench_document(
        results, plan.scenarios, command, trace_model.model_dump() if trace_model is not None else None
    )
    for name in document["summary"]:
        _out.print(scenario_table(document, name))
    comparison = equal_cost_table(document)
    if comparison is not None:
        _out.print(comparison)
    if json_path is not None:
        write_document(document, json_path)
        _out.print(f"wrote {json_path}")
    if report is not None:
        from kubeagora.bench.report import write_report  # matplotlib is slow to import; only when needed

        _out.print(f"wrote {write_report(document, report)}")


@app.command("scenarios")
def list_scenarios() -> None:
    """List the built-in scenarios."""
    table = Table(header_style="bold")
    table.add_column("scenario")
    table.add_column("duration", justify="right")
    table.add_column("seed", justify="right")
    table.add_column("description")
    for name in builtin_names():
        model, _ = load_scenario(name)
        table.add_row(name, f"{model.duration_s:g} s", str(model.seed), " ".join(model.description.split()))
    _out.print(table)


@app.command()
def explain(
    run_json: Annotated[Path, typer.Argument(help="A JSON file written by `simulate --json` or `bench --json`.")],
    scenario: Annotated[str | None, typer.Option(help="Only runs of this scenario.")] = None,
    controller: Annotated[str | None, typer.Option(help="Only runs of this controller.")] = None,
    seed: Annotated[int | None, typer.Option(help="Only runs with this seed.")] = None,
    outcome: Annotated[str | None, typer.Option(
        help="Only decisions that ended so: Applied, RolledBack, Rejected, AwaitingApproval, …")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many decisions per run.")] = 50,
) -> None:
    """Print the decision log of a run: when, which agent, what, the outcome and why."""
    from kubeagora.bench.explain import load_runs, rows, select_runs

    with _bad_input_exits():
        chosen = select_runs(load_runs(run_json), scenario, controller, seed)
    for run in chosen:
        decisions = run.get("decisions") or []
        shown = [r for r in rows(decisions) if outcome is None or r.outcome == outcome]
        total = run.get("decisions_total", len(decisions))
        table = Table(title=f"{run.get('scenario')} · {run.get('controller')} · seed {run.get('seed')}: "
                            f"{min(len(shown), limit)} of {total} decisions", header_style="bold")
        for column, justify in (("t (s)", "right"), ("agent", "left"), ("action", "left"),
                                ("outcome", "left"), ("why", "left"), ("twin", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for r in shown[:limit]:
            table.add_row(f"{r.at_s:g}", r.agent, r.action, r.outcome, r.why, r.twin)
        _out.print(table)


def _mount_devcluster(cli: typer.Typer) -> None:
    try:
        from kubeagora.devcluster.cli import devcluster_app
    except ImportError:  # the devcluster is optional: the simulator and bench work without it
        return
    cli.add_typer(devcluster_app, name="devcluster")


def _mount_mock_kubelet(cli: typer.Typer) -> None:
    try:
        from kubeagora.kubelet.cli import mock_kubelet
    except ImportError:  # optional, like the devcluster
        return
    cli.command("mock-kubelet")(mock_kubelet)


_mount_devcluster(app)
_mount_mock_kubelet(app)


def _mount_operator(cli: typer.Typer) -> None:
    try:
        from kubeagora.operator.cli import operator_app
    except ImportError:  # needs the 'operator' extra (kopf)
        return
    cli.add_typer(operator_app, name="operator")


def _mount_scheduler_extender(cli: typer.Typer) -> None:
    try:
        from kubeagora.scheduler_plugin.cli import scheduler_extender
    except ImportError:  # needs the 'cluster' extra (aiohttp)
        return
    cli.command("scheduler-extender")(scheduler_extender)


_mount_operator(app)
_mount_scheduler_extender(app)


def _mount_demo(cli: typer.Typer) -> None:
    try:
        from kubeagora.demo_cli import demo
    except ImportError:  # needs the 'cluster' and 'operator' extras
        return
    cli.command("demo")(demo)


_mount_demo(app)
