"""``kubeagora devcluster prometheus up|down|url``: a real Prometheus scraping the local components.

Mounted under ``kubeagora devcluster``. ``up`` fetches Prometheus when needed (see
``kubeagora.devcluster.prometheus``), starts it in the background and returns once it is ready;
run again with other targets, it reloads the running server with them. Every failure is one
message on stderr and exit status 2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from kubeagora.devcluster.defaults import (
    JOB_MOCK_KUBELET,
    JOB_OPERATOR,
    JOB_SCHEDULER_EXTENDER,
    PROMETHEUS_PORT,
    PROMETHEUS_SCRAPE_INTERVAL_S,
    PROMETHEUS_STATE_DIR,
)
from kubeagora.devcluster.errors import DevClusterError

prometheus_app = typer.Typer(
    name="prometheus",
    help="A real Prometheus (Debian's build, fetched without root) scraping the mock kubelet and kubeagora.",
    no_args_is_help=True,
    add_completion=False,
)

_out = Console()
_err = Console(stderr=True)

StateDir = Annotated[Path, typer.Option("--state-dir", help="Config, TSDB, log and pid of the server.")]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _report(line: str) -> None:
    _err.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(line)}", highlight=False)


@prometheus_app.command()
def up(
    state_dir: StateDir = PROMETHEUS_STATE_DIR,
    mock_kubelet: Annotated[str, typer.Option(help="HOST:PORT of the mock kubelet's /metrics ('' for none).")
                            ] = "127.0.0.1:9108",
    operator: Annotated[str, typer.Option(help="HOST:PORT of the operator's /metrics ('' for none).")] = "",
    scheduler_extender: Annotated[str, typer.Option(help="HOST:PORT of the scheduler extender ('' for none).")
                                  ] = "",
    port: Annotated[int, typer.Option(help="Port of Prometheus on 127.0.0.1 (0: any free one).")] = PROMETHEUS_PORT,
    scrape_interval: Annotated[float, typer.Option(help="Seconds between scrapes.")] = PROMETHEUS_SCRAPE_INTERVAL_S,
    timeout: Annotated[float, typer.Option(help="Seconds Prometheus has to become ready.")] = 60.0,
) -> None:
    """Start Prometheus (or reload the running one with these targets) and print its URL."""
    from kubeagora.devcluster.prometheus import PrometheusServer

    targets = {JOB_MOCK_KUBELET: mock_kubelet, JOB_OPERATOR: operator, JOB_SCHEDULER_EXTENDER: scheduler_extender}
    try:
        server = PrometheusServer(state_dir, {job: [t] for job, t in targets.items() if t}, scrape_interval,
                                  port=port, progress=_report)
        started = server.start(timeout_s=timeout)
    except DevClusterError as e:  # PrometheusError among them
        raise _fail(str(e)) from None
    verb = "started" if started else "already running (config reloaded)"
    _out.print(f"[green]prometheus {verb}[/]: {server.url}", highlight=False)


@prometheus_app.command()
def down(state_dir: StateDir = PROMETHEUS_STATE_DIR) -> None:
    """Stop Prometheus; safe when it does not run. Its data stays in the state directory."""
    from kubeagora.devcluster.prometheus import PrometheusServer

    try:
        stopped = PrometheusServer(state_dir, progress=_report).stop()
    except DevClusterError as e:  # PrometheusError among them
        raise _fail(str(e)) from None
    _out.print("stopped: prometheus" if stopped else "nothing was running")


@prometheus_app.command()
def url(state_dir: StateDir = PROMETHEUS_STATE_DIR) -> None:
    """Print the running Prometheus's URL (for --prometheus-url $(...))."""
    from kubeagora.devcluster.prometheus import PrometheusServer

    try:
        address = PrometheusServer(state_dir).url
    except DevClusterError as e:  # PrometheusError among them
        raise _fail(str(e)) from None
    if address is None:
        raise _fail("prometheus is not running; start it with 'kubeagora devcluster prometheus up'")
    typer.echo(address)
