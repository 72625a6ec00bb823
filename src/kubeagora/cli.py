"""``kubeagora``: simulate one run, bench a matrix of them, list the scenarios, explain a run.

The commands are thin: they parse options, call `kubeagora.bench`, and print. Bad input (an
unknown name, a malformed file, an impossible SLO, a path that cannot be written) is one line on
stderr and exit status 2; it is caught here, at the boundary, and nowhere deeper.

Imports are lazy: the simulator pulls in numpy, scipy and cvxpy (2+ s), and the cluster commands
kopf and aiohttp, so each command imports what it needs when it runs and ``kubeagora --help`` stays
well under a second (tests/unit/test_cli_startup.py guards what this module may import).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from kubeagora import __version__
from kubeagora.bench.explain import Outcome
from kubeagora.bench.sweep import STANDARD, describe_standard
from kubeagora.controllers.registry import CONTROLLER_NAMES
from kubeagora.output import Output, OutputFormat, print_data

if TYPE_CHECKING:
    from kubeagora.sim.scenario import TraceModel

USAGE_ERROR = 2

app = typer.Typer(
    name="kubeagora",
    help="Multi-agent orchestration for Kubernetes, and the simulator that benchmarks it.",
    no_args_is_help=True,
    # Plain help and usage errors, as click prints them: typer's boxed rich rendering imports markdown-it
    # and rich's traceback and pretty-printer, ~40 % of the CLI's startup.
    rich_markup_mode=None,
)
# Piped or captured output is not read on an 80-column screen: do not squeeze the tables into one.
_out = Console(width=None if sys.stdout.isatty() else 120)
_err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kubeagora {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Multi-agent orchestration for Kubernetes, and the simulator that benchmarks it."""


class UsageError(ValueError):
    """Bad input found by the CLI itself (as opposed to a scenario or trace file)."""


class Executor(StrEnum):
    """Where `kubeagora bench` runs its matrix; the results are the same either way."""

    PROCESSES = "processes"
    RAY = "ray"


class TraceFormat(StrEnum):
    """`kubeagora.sim.trace.TRACE_FORMATS`, as choices (a unit test keeps the two equal)."""

    COUNTS = "counts"
    TIMESTAMPS = "timestamps"


@contextmanager
def _bad_input_exits() -> Iterator[None]:
    """Turn the errors that describe bad input into one line on stderr and exit status 2.

    Scenario and trace errors are ValueErrors too (`ScenarioError`, `TraceError`).
    """
    try:
        yield
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None


def _scenario_names(incomplete: str) -> list[str]:
    """Shell completion of scenario names (files complete as files when the shell falls back)."""
    from kubeagora.sim.scenario import builtin_names

    return [name for name in builtin_names() if name.startswith(incomplete)]


def _controller_names(incomplete: str) -> list[str]:
    """Shell completion of one controller name, or of the next one in a comma-separated list."""
    done, _, last = incomplete.rpartition(",")
    prefix = f"{done}," if done else ""
    return [prefix + name for name in CONTROLLER_NAMES if name.startswith(last)]


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


def _trace_model(
    path: Path | None, fmt: TraceFormat | None, scale: float, offset_s: int = 0
) -> TraceModel | None:
    from kubeagora.sim.scenario import TraceModel

    if path is None:
        if fmt is not None:
            raise UsageError("--trace-format needs --trace PATH")
        if offset_s:
            raise UsageError("--trace-offset needs --trace PATH")
        return None
    if offset_s < 0:
        raise UsageError(f"--trace-offset must be zero or more seconds (got {offset_s})")
    fmt = fmt or (TraceFormat.TIMESTAMPS if path.suffix.lower() == ".csv" else TraceFormat.COUNTS)
    if not scale > 0:
        raise UsageError(f"--trace-scale must be positive (got {scale:g})")
    return TraceModel.model_validate({"path": str(path), "format": fmt.value, "scale": scale, "offset_s": offset_s})


def _command_line(subcommand: str, *options: tuple[str, object]) -> str:
    """The command that reproduces a result, as a shell line; options whose value is None are left out."""
    words = ["kubeagora", subcommand]
    for flag, value in options:
        if value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


def _note(fmt: OutputFormat) -> Console:
    """Where the lines around a result go: stdout under a table, stderr when stdout carries -o json|yaml."""
    return _out if fmt is OutputFormat.TABLE else _err


Duration = Annotated[
    float | None,
    typer.Option(
        "--duration", help="Simulated seconds per run (default: the scenario's own).", show_default=False
    ),
]
ModelError = Annotated[
    float | None,
    typer.Option(
        "--model-error",
        help="How far the world strays from the declared specs: service times, cold starts, interference "
        "and node speeds × lognormal factors with this log-sd, drawn from the seed (e.g. 0.3; "
        "default: the scenario's own, 0 for the built-in ones). Controllers see only the specs.",
        show_default=False,
    ),
]
PolicyPath = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        help="The policy file (policy.npz from `kubeagora train`) that the mas-learned controller runs "
        "(default: the checkpoint shipped with kubeagora).",
        show_default=False,
    ),
]
JsonPath = Annotated[
    Path | None,
    typer.Option(
        "--json",
        help="Write the results as bench JSON (runs with the metrics of docs/benchmarks.md) to this file.",
        show_default=False,
    ),
]


@app.command()
def simulate(
    scenario: Annotated[
        str, typer.Option("--scenario", help="A built-in scenario name or a scenario YAML file.",
                          autocompletion=_scenario_names)
    ],
    controller: Annotated[
        str,
        typer.Option(
            "--controller",
            help=f"The controller to run ({', '.join(CONTROLLER_NAMES)}, mas-learned); a baseline with its knob set as "
            "FAMILY@target=VALUE (hpa@target=0.6).",
            autocompletion=_controller_names,
        ),
    ],
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed (default: the scenario's).", show_default=False)
    ] = None,
    duration: Duration = None,
    model_error: ModelError = None,
    policy: PolicyPath = None,
    json_path: JsonPath = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Run one controller against one scenario and print its metrics."""
    from kubeagora.bench.document import bench_document, write_document
    from kubeagora.bench.matrix import matrix_progress_bar, plan_matrix, run_matrix
    from kubeagora.bench.tables import run_table

    with _bad_input_exits():
        if json_path is not None:
            _check_output_file(json_path, "--json")
        plan = plan_matrix([scenario], [controller], duration_s=duration, first_seed=seed, model_error=model_error,
                           policy=policy)
    with matrix_progress_bar(plan.runs, _err) as progress:
        (result,) = run_matrix(plan.runs, jobs=1, progress=progress)
    command = _command_line(
        "simulate",
        ("--scenario", scenario),
        ("--controller", controller),
        ("--seed", result.seed),
        ("--duration", duration),
        ("--model-error", model_error),
        ("--policy", policy),
    )
    document = bench_document([result], plan.scenarios, command)
    if output is OutputFormat.TABLE:
        title = (
            f"{result.scenario} · {result.controller} · seed {result.seed} · {result.duration_s:g} s simulated"
        )
        _out.print(run_table(result.metrics, title))
    else:
        print_data(document, output)
    _note(output).print(f"[dim]ran in {result.wall_s:.1f} s[/]")
    if json_path is not None:
        write_document(document, json_path)
        _note(output).print(f"wrote {json_path}", soft_wrap=True)


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
            help=f"Comma-separated controller names ({', '.join(CONTROLLER_NAMES)}), FAMILY@target=VALUE for a "
            "baseline's setting (default: all, at their shipped defaults; `oracle` = clairvoyant; mas-learned = mas "
            "with the learned residual, only when named).",
            show_default=False,
            autocompletion=_controller_names,
        ),
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep",
            metavar="SPEC",
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
    seed_offset: Annotated[
        int,
        typer.Option(
            "--seed-offset",
            help="Start each scenario's seeds this many after its own (run a bench one seed at a time: "
            "--seeds 1 --seed-offset 0, 1, 2, …; the JSON files merge in benchmarks/results_tables.py).",
        ),
    ] = 0,
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
        TraceFormat | None,
        typer.Option(
            "--trace-format",
            help="Default: timestamps for .csv, else counts.",
            show_default=False,
        ),
    ] = None,
    trace_scale: Annotated[
        float, typer.Option("--trace-scale", help="Multiply the trace's rate by this.")
    ] = 1.0,
    trace_offset: Annotated[
        int, typer.Option("--trace-offset", help="Start the replay this many seconds into the trace.")
    ] = 0,
    model_error: ModelError = None,
    policy: PolicyPath = None,
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
    executor: Annotated[
        Executor,
        typer.Option(
            "--executor",
            help="processes: --jobs worker processes on this machine; ray: Ray tasks on a local Ray with --jobs "
            "CPUs, or on the cluster at --ray-address (the 'ray' extra). Same results either way.",
        ),
    ] = Executor.PROCESSES,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --executor ray: the Ray cluster to run on (ray://HOST:10001, or 'auto' for the one this "
            "machine belongs to); default: start a local Ray for this bench.",
            show_default=False,
        ),
    ] = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Run scenarios × controllers × seeds; print a table per scenario, optionally write JSON and a report.

    With -o json|yaml, the bench document (what --json writes) goes to stdout instead of the tables.
    """
    from kubeagora.bench.document import bench_document, write_document
    from kubeagora.bench.matrix import default_jobs, matrix_progress_bar, plan_matrix, run_matrix
    from kubeagora.bench.sweep import expand_sweeps
    from kubeagora.bench.tables import equal_cost_table, scenario_table
    from kubeagora.sim.scenario import DEFAULT_SCENARIO, builtin_names

    with _bad_input_exits():
        trace_model = _trace_model(trace, trace_format, trace_scale, trace_offset)
        default_scenarios = [DEFAULT_SCENARIO] if trace_model is not None else builtin_names()
        scenario_names = _names(scenarios, default_scenarios)
        controller_list = expand_sweeps(_names(controllers, list(CONTROLLER_NAMES)), sweep or [])
        plan = plan_matrix(
            scenario_names, controller_list, n_seeds=seeds, seed_offset=seed_offset, duration_s=duration,
            trace=trace_model, model_error=model_error, policy=policy,
        )
        workers = default_jobs(len(plan.runs)) if jobs is None else jobs
        if workers < 1:
            raise UsageError(f"--jobs must be at least 1 (got {workers})")
        if ray_address is not None and executor is not Executor.RAY:
            raise UsageError("--ray-address needs --executor ray")
        if ray_address is not None and not ray_address.strip():
            raise UsageError("--ray-address is empty (ray://HOST:10001, or auto)")
        if report is not None:
            _prepare_report_dir(report)
        if json_path is not None:
            _check_output_file(json_path, "--json")
    if executor is Executor.RAY:
        from kubeagora.extras import needs_extra

        with needs_extra("ray", "bench --executor ray"):
            from kubeagora.bench.ray_executor import RayExecutorError, run_matrix_on_ray
        try:
            with matrix_progress_bar(plan.runs, _err) as progress:
                results = run_matrix_on_ray(plan.runs, jobs=workers, address=ray_address, progress=progress)
        except RayExecutorError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(USAGE_ERROR) from None
    else:
        with matrix_progress_bar(plan.runs, _err) as progress:
            results = run_matrix(plan.runs, jobs=workers, progress=progress)
    command = _command_line(
        "bench",
        ("--scenarios", ",".join(scenario_names)),
        ("--controllers", ",".join(_names(controllers, list(CONTROLLER_NAMES)))),
        *(("--sweep", spec) for spec in sweep or []),
        ("--seeds", seeds),
        ("--seed-offset", seed_offset or None),
        ("--duration", duration),
        ("--trace", trace_model.path if trace_model else None),
        ("--trace-format", trace_model.format if trace_model else None),
        ("--trace-scale", trace_model.scale if trace_model else None),
        ("--trace-offset", trace_model.offset_s if trace_model and trace_model.offset_s else None),
        ("--model-error", model_error),
        ("--policy", policy),
        ("--json", json_path),
        ("--report", report),
    )
    document = bench_document(
        results, plan.scenarios, command, trace_model.model_dump() if trace_model is not None else None
    )
    if output is OutputFormat.TABLE:
        for name in document["summary"]:
            _out.print(scenario_table(document, name))
        comparison = equal_cost_table(document)
        if comparison is not None:
            _out.print(comparison)
    else:
        print_data(document, output)
    if json_path is not None:
        write_document(document, json_path)
        _note(output).print(f"wrote {json_path}", soft_wrap=True)
    if report is not None:
        from kubeagora.bench.report import write_report  # matplotlib is slow to import; only when needed

        _note(output).print(f"wrote {write_report(document, report)}", soft_wrap=True)


@app.command("scenarios")
def list_scenarios(output: Output = OutputFormat.TABLE) -> None:
    """List the built-in scenarios."""
    from rich.table import Table

    from kubeagora.sim.scenario import builtin_names, load_scenario

    rows: list[dict[str, Any]] = []
    for name in builtin_names():
        model, _ = load_scenario(name)
        rows.append({"name": name, "duration_s": model.duration_s, "seed": model.seed,
                     "description": " ".join(model.description.split())})
    if output is not OutputFormat.TABLE:
        print_data(rows, output)
        return
    table = Table(header_style="bold")
    table.add_column("scenario")
    table.add_column("duration", justify="right")
    table.add_column("seed", justify="right")
    table.add_column("description")
    for row in rows:
        table.add_row(row["name"], f"{row['duration_s']:g} s", str(row["seed"]), row["description"])
    _out.print(table)


@app.command()
def explain(
    run_json: Annotated[Path, typer.Argument(help="A JSON file written by `simulate --json` or `bench --json`.")],
    scenario: Annotated[str | None, typer.Option(help="Only runs of this scenario.")] = None,
    controller: Annotated[str | None, typer.Option(help="Only runs of this controller.",
                                                   autocompletion=_controller_names)] = None,
    seed: Annotated[int | None, typer.Option(help="Only runs with this seed.")] = None,
    outcome: Annotated[Outcome | None, typer.Option(help="Only decisions that ended so.", show_default=False)
                       ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many decisions per run.")] = 50,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Print the decision log of a run: when, which agent, what, the outcome and why."""
    from dataclasses import asdict

    from rich.table import Table

    from kubeagora.bench.explain import load_runs, rows, select_runs

    with _bad_input_exits():
        chosen = select_runs(load_runs(run_json), scenario, controller, seed)
    explained: list[dict[str, Any]] = []
    for run in chosen:
        decisions = run.get("decisions") or []
        shown = [r for r in rows(decisions) if outcome is None or r.outcome == outcome.value][:limit]
        explained.append({"scenario": run.get("scenario"), "controller": run.get("controller"),
                          "seed": run.get("seed"), "decisions_total": run.get("decisions_total", len(decisions)),
                          "decisions": [asdict(r) for r in shown]})
    if output is not OutputFormat.TABLE:
        print_data(explained, output)
        return
    for run_rows in explained:
        table = Table(title=f"{run_rows['scenario']} · {run_rows['controller']} · seed {run_rows['seed']}: "
                            f"{len(run_rows['decisions'])} of {run_rows['decisions_total']} decisions",
                      header_style="bold")
        for column, justify in (("t (s)", "right"), ("agent", "left"), ("action", "left"),
                                ("outcome", "left"), ("why", "left"), ("twin", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for r in run_rows["decisions"]:
            table.add_row(f"{r['at_s']:g}", r["agent"], r["action"], r["outcome"], r["why"], r["twin"])
        _out.print(table)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Directory for checkpoint.pt, policy.npz and train.csv.")],
    scenarios: Annotated[
        str | None,
        typer.Option("--scenarios", help="Comma-separated training scenarios, one environment each (default: "
                     "every built-in one).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seeds torch, the sampling and the training seeds.")] = 0,
    duration: Annotated[float, typer.Option("--duration", help="Simulated seconds per episode.")] = 600.0,
    model_error: Annotated[float, typer.Option("--model-error", help="The training worlds' log-sd from the specs.")
                           ] = 0.3,
    bc_rounds: Annotated[int, typer.Option("--bc-rounds", min=0, help="Behavioural-cloning rounds (mas as it is, "
                                           "labelled by the clairvoyant planner).")] = 1,
    dagger_rounds: Annotated[int, typer.Option("--dagger-rounds", min=0, help="DAgger rounds (the policy drives, "
                                               "the planner labels).")] = 1,
    iterations: Annotated[int, typer.Option("--iterations", min=0, help="MAPPO iterations after the warm start.")
                          ] = 4,
    bc_epochs: Annotated[int, typer.Option("--bc-epochs", min=1, help="Passes over the data set per cloning round.")
                         ] = 60,
    add_weight: Annotated[float, typer.Option("--add-weight", min=0.0, help="Weight of the planner's adds in the "
                                              "cloning loss, against 1 for keeping the plan.")] = 2.5,
    teacher_cuts: Annotated[bool, typer.Option("--teacher-cuts", help="Teach the planner's cuts too (by default a "
                                               "cut it advises is taught as keeping the plan).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from --out's checkpoint (its settings win).")
                      ] = False,
) -> None:
    """Train the learned residual on the MPC's set-points (BC from the clairvoyant planner, DAgger, MAPPO).

    Needs the 'learn' extra (torch, PettingZoo). Writes policy.npz, which `--policy FILE` runs without torch.
    """
    from kubeagora.extras import needs_extra
    from kubeagora.sim.scenario import builtin_names, load_scenario

    with _bad_input_exits():
        names = _names(scenarios, builtin_names())
        if not names:
            raise UsageError("--scenarios: no scenario named")
        for name in names:
            load_scenario(name)
        if not duration >= 30:
            raise UsageError(f"--duration must be at least 30 s: the agents act every 15 s (got {duration:g})")
        if not 0.0 <= model_error <= 1.0:
            raise UsageError(f"--model-error must be between 0 and 1 (got {model_error:g})")
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        if resume and not (out / "checkpoint.pt").is_file():
            raise UsageError(f"--resume: no checkpoint.pt in {out}")
    with needs_extra("learn", "train"):
        from kubeagora.learn.mappo import TrainArgs
        from kubeagora.learn.mappo import train as run_training
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    args = TrainArgs(seed=seed, scenarios=tuple(names), duration_s=duration, model_error=model_error,
                     bc_rounds=bc_rounds, dagger_rounds=dagger_rounds, ppo_iterations=iterations, bc_epochs=bc_epochs,
                     add_weight=add_weight, teacher_cuts=teacher_cuts)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
               TimeElapsedColumn())
    with Progress(*columns, console=_err) as bar:
        task = bar.add_task("training", total=args.total_episodes)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        policy = run_training(out, args, resume=resume, progress=progress)
    _out.print(f"wrote {policy} (log: {out / 'train.csv'}, checkpoint: {out / 'checkpoint.pt'})", soft_wrap=True)


def _mount_cluster_commands(cli: typer.Typer) -> None:
    """The cluster commands. Their modules import only typer and the standard library at the top; each
    command imports its extra ('cluster' or 'operator') when it runs and names it if it is missing."""
    from kubeagora.demo_cli import demo
    from kubeagora.devcluster.cli import devcluster_app
    from kubeagora.kubelet.cli import mock_kubelet
    from kubeagora.operator.cli import operator_app
    from kubeagora.scheduler_plugin.cli import scheduler_extender
    from kubeagora.trust.cli import intent_app

    cli.add_typer(devcluster_app, name="devcluster")
    cli.command("mock-kubelet")(mock_kubelet)
    cli.add_typer(operator_app, name="operator")
    cli.command("scheduler-extender")(scheduler_extender)
    cli.command("demo")(demo)
    cli.add_typer(intent_app, name="intent")


_mount_cluster_commands(app)
