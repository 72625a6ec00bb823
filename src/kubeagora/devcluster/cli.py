"""``kubeagora devcluster up|down|delete|status|kubeconfig``.

Mounted by the main CLI with ``app.add_typer(devcluster_app, name="devcluster")``. Every failure
is one message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kubeagora.devcluster.defaults import DEFAULT_STATE_DIR
from kubeagora.devcluster.errors import DevClusterError
from kubeagora.devcluster.prometheus_cli import prometheus_app
from kubeagora.output import Output, OutputFormat, print_data

if TYPE_CHECKING:
    from kubeagora.devcluster.cluster import DevCluster

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
            reused = cluster.holds_data()
            started = cluster.up()
    except DevClusterError as e:
        raise _fail(str(e)) from None
    verb = "started" if started else "already running"
    _out.print(f"[green]control plane {verb}[/]: {cluster.server}")
    if reused:
        _say_what_it_holds(cluster)
    _out.print(f"export KUBECONFIG={cluster.kubeconfig}", highlight=False, soft_wrap=True)


def _say_what_it_holds(cluster: DevCluster) -> None:
    """``up`` kept an earlier session's data: say what is in it, and how to start clean."""
    from kubeagora.devcluster.contents import parse

    proc = cluster.kubectl("get", "nodes,namespaces", "-o", "json")
    try:
        held = parse(proc.stdout).describe() if proc.returncode == 0 else f"(unreadable: {proc.stderr.strip()})"
    except ValueError as e:
        held = f"(unreadable: {e})"
    _out.print(f"[yellow]reusing the existing state[/] in {escape(str(cluster.layout.root))}: {escape(held)}; "
               "start clean with: kubeagora devcluster delete && kubeagora devcluster up", highlight=False,
               soft_wrap=True)


def _stop_mock_kubelets(cluster: DevCluster) -> list[str]:
    """Stop the mock kubelets serving this cluster (they cannot outlive its API server usefully)."""
    from kubeagora.kubelet import runtime

    server = cluster.server
    if server is None:
        return []
    return [f"mock kubelet {r.owner!r} (pid {r.pid})" for r in runtime.records_for(server) if runtime.stop(r)]


@devcluster_app.command()
def down(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Stop every component and the mock kubelets serving it (SIGTERM, then SIGKILL); safe when nothing
    runs. Data stays (``delete`` removes it)."""
    from kubeagora.devcluster.cluster import DevCluster

    try:
        with _progress("devcluster down") as report:
            cluster = DevCluster(state_dir, progress=report)
            stopped = [*_stop_mock_kubelets(cluster), *cluster.down()]
    except DevClusterError as e:
        raise _fail(str(e)) from None
    _out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@devcluster_app.command()
def delete(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Stop everything (as ``down``) and remove the state: certificates, etcd's data, logs. Safe to repeat."""
    from kubeagora.devcluster.cluster import DevCluster

    try:
        with _progress("devcluster delete") as report:
            cluster = DevCluster(state_dir, progress=report)
            stopped = _stop_mock_kubelets(cluster)
            removed = cluster.delete()
    except DevClusterError as e:
        raise _fail(str(e)) from None
    if stopped:
        _out.print(f"stopped: {', '.join(stopped)}")
    root = cluster.layout.root
    _out.print(f"deleted {root}" if removed else f"nothing to delete: {root} does not exist", highlight=False)


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
    records += _mock_kubelets(DevCluster(state_dir).server)
    if output is not OutputFormat.TABLE:
        print_data(records, output)
    else:
        colour = {"healthy": "green", "serving": "green", "unhealthy": "yellow", "not answering": "yellow",
                  "stopped": "red", "none serving": "dim"}
        table = Table()
        table.add_column("component", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("pid", no_wrap=True)
        table.add_column("health endpoint", overflow="fold")
        table.add_column("log", overflow="fold")
        for record in records:
            state = f"[{colour[record['state']]}]{record['state']}[/]"
            if record.get("nodes") is not None:
                state += f" ({record['nodes']} nodes)"
            table.add_row(record["component"], state, str(record["pid"] or "-"), record["health_endpoint"] or "-",
                          record["log"] or "-")
        _out.print(table)
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


def _mock_kubelets(server: str | None) -> list[dict[str, Any]]:
    """One record per mock kubelet that served this cluster (or one saying none does)."""
    from kubeagora.kubelet import runtime

    out: list[dict[str, Any]] = []
    for r in runtime.records_for(server) if server else []:
        state = ("serving" if runtime.serving(r) else "not answering") if runtime.alive(r) else "stopped"
        out.append({"component": "mock-kubelet" if r.owner == runtime.DEFAULT_OWNER else f"mock-kubelet {r.owner}",
                    "state": state, "nodes": r.nodes, "pid": r.pid, "health_endpoint": f"{r.url}/healthz",
                    "log": r.log})
    return out or [{"component": "mock-kubelet", "state": "none serving", "pid": None,
                    "health_endpoint": "start one: kubeagora mock-kubelet --nodes 20 --detach", "log": ""}]


@devcluster_app.command()
def kubeconfig(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Print the admin kubeconfig's path (for KUBECONFIG=$(...))."""
    from kubeagora.devcluster.cluster import DevCluster

    path = DevCluster(state_dir).kubeconfig
    if not path.is_file():
        raise _fail(f"{path} does not exist yet; run 'kubeagora devcluster up' first")
    typer.echo(str(path))
