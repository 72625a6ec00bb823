"""``kubeagora devcluster up|down|status|kubeconfig``.

Mounted by the main CLI with ``app.add_typer(devcluster_app, name="devcluster")``. Every failure
is one message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kubeagora.devcluster.defaults import DEFAULT_STATE_DIR
from kubeagora.devcluster.errors import DevClusterError
from kubeagora.devcluster.prometheus_cli import prometheus_app
from kubeagora.output import Output, OutputFormat, print_data

devcluster_app = typer.Typer(
    name="devcluster",
    help="A real local Kubernetes control plane (etcd, API server, controller manager, scheduler).",
    no_args_is_help=True,
    add_completion=False,
)

devcluster_app.add_typer(prometheus_app, name="prometheus")

_out = Console()
_err = Console(stderr=True)

StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir", help="Where certificates, data, logs and kubeconfigs live.", show_default=True
    ),
]
Binary = Annotated[
    Path | None,
    typer.Option(
        "--binary",
        help="A kubeagora-controlplane binary to use instead of building or reusing the cached one.",
    ),
]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(2)


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner whose text follows the latest step, with each step also logged above it."""
    with _err.status(title) as spinner:

        def report(line: str) -> None:
            spinner.update(f"{escape(title)} [dim]{escape(line)}[/]")
            _err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(line)}", highlight=False)

        yield report


@devcluster_app.command()
def up(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    binary: Binary = None,
    node_monitor_grace_period: Annotated[
        str | None,
        typer.Option(
            help="kube-controller-manager --node-monitor-grace-period (e.g. 20s); default: upstream's."
        ),
    ] = None,
    scheduler_config: Annotated[
        Path | None,
        typer.Option(
            help="A KubeSchedulerConfiguration to use (e.g. with an extender) instead of the default."
        ),
    ] = None,
    extra_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--extra-arg", help="COMPONENT=--flag=value, appended to that component's flags; repeatable."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds each component has to become healthy.")] = 180.0,
) -> None:
    """Build (or reuse) the binary and start the control plane; no-op when it already runs."""
    from kubeagora.devcluster.cluster import DevCluster, Settings, parse_extra_args

    try:
        settings = Settings(
            node_monitor_grace_period=node_monitor_grace_period,
            scheduler_config=scheduler_config,
            start_timeout_s=timeout,
            extra_args=parse_extra_args(extra_arg or []),
        )
        with _progress("devcluster up") as report:
            cluster = DevCluster(state_dir, binary=binary, settings=settings, progress=report)
            started = cluster.up()
    except DevClusterError as e:
        raise _fail(str(e)) from None
    verb = "started" if started else "already running"
    _out.print(f"[green]control plane {verb}[/]: {cluster.server}")
    _out.print(f"export KUBECONFIG={cluster.kubeconfig}", highlight=False, soft_wrap=True)


@devcluster_app.command()
def down(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Stop every component (SIGTERM, then SIGKILL); safe when nothing runs. Data stays."""
    from kubeagora.devcluster.cluster import DevCluster

    try:
        with _progress("devcluster down") as report:
            stopped = DevCluster(state_dir, progress=report).down()
    except DevClusterError as e:
        raise _fail(str(e)) from None
    _out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@devcluster_app.command()
def status(state_dir: StateDir = DEFAULT_STATE_DIR, output: Output = OutputFormat.TABLE) -> None:
    """Show each component's pid and health; exit status 1 unless all are healthy."""
    from kubeagora.devcluster.cluster import DevCluster

    try:
        rows = DevCluster(state_dir).status()
    except DevClusterError as e:
        raise _fail(str(e)) from None
    records: list[dict[str, Any]] = [
        {"component": row.name, "state": "healthy" if row.healthy else "unhealthy" if row.running else "stopped",
         "pid": row.pid, "health_endpoint": row.url, "log": str(row.log)}
        for row in rows
    ]
    if output is not OutputFormat.TABLE:
        print_data(records, output)
    else:
        colour = {"healthy": "green", "unhealthy": "yellow", "stopped": "red"}
        table = Table()
        table.add_column("component", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("pid", no_wrap=True)
        table.add_column("health endpoint", overflow="fold")
        table.add_column("log", overflow="fold")
        for record in records:
            state = f"[{colour[record['state']]}]{record['state']}[/]"
            table.add_row(record["component"], state, str(record["pid"] or "-"), record["health_endpoint"] or "-",
                          record["log"])
        _out.print(table)
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@devcluster_app.command()
def kubeconfig(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Print the admin kubeconfig's path (for KUBECONFIG=$(...))."""
    from kubeagora.devcluster.cluster import DevCluster

    path = DevCluster(state_dir).kubeconfig
    if not path.is_file():
        raise _fail(f"{path} does not exist yet; run 'kubeagora devcluster up' first")
    typer.echo(str(path))
