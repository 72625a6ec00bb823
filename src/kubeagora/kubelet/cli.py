"""``kubeagora mock-kubelet``: play a topology's nodes against a real API server.

Mounted by the main CLI. Bad input (options, files, an unreachable API server) is one line on
stderr and exit status 2. The asyncio/aiohttp part is imported only when the command runs, so the
rest of the CLI works without the ``cluster`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubeagora.extras import needs_extra
from kubeagora.kubelet.errors import KubeletError

USAGE_ERROR = 2
DEFAULT_KUBECONFIG = Path("~/.local/state/kubeagora/devcluster/kubeconfig")


def mock_kubelet(
    kubeconfig: Annotated[
        Path, typer.Option("--kubeconfig", help="Kubeconfig of the cluster (default: the devcluster's).")
    ] = DEFAULT_KUBECONFIG,
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", help="Nodes, services and faults of this scenario (name or YAML file).",
                     show_default=False),
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option("--nodes", help="Instead of a scenario: a hub-and-spoke topology of about N nodes.",
                     show_default=False),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Topology and traffic seed (default: the scenario's, or 1).",
                                 show_default=False)
    ] = None,
    traffic: Annotated[
        Path | None,
        typer.Option("--traffic", help="YAML 'services: {NAME: RPS | {rps: RPS, template: T}}'.",
                     show_default=False),
    ] = None,
    default_rps: Annotated[
        float, typer.Option("--default-rps", help="Load of a service nothing else gives a rate for.")
    ] = 10.0,
    metrics_host: Annotated[str, typer.Option("--metrics-host", help="Address of /metrics and /faults.")] = "127.0.0.1",
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Port of /metrics and /faults (0: any).")] = 9108,
    name_prefix: Annotated[str, typer.Option("--name-prefix", help="Prefix of every Node name.")] = "",
    taint: Annotated[
        list[str] | None,
        typer.Option("--taint", help="KEY[=VALUE]:EFFECT on every node (repeatable).", show_default=False),
    ] = None,
    faults: Annotated[
        bool, typer.Option("--faults/--no-faults", help="Replay the scenario's fault schedule.")
    ] = True,
    delete_nodes: Annotated[
        bool, typer.Option("--delete-nodes-on-exit", help="Delete the nodes when stopped.")
    ] = False,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight", help="Concurrent API writes.")] = 32,
    metrics_api_port: Annotated[
        int, typer.Option("--metrics-api-port",
                          help="Serve metrics.k8s.io/v1beta1 (for the HPA, kubectl top) over HTTPS here; 0: off.")
    ] = 0,
    metrics_api_address: Annotated[
        str | None,
        typer.Option("--metrics-api-address",
                     help="Non-loopback address the metrics API listens on and registers (default: this "
                          "machine's default-route address).", show_default=False),
    ] = None,
    register_metrics_api: Annotated[
        bool, typer.Option("--register-metrics-api/--no-register-metrics-api",
                           help="Create the APIService, Service and EndpointSlice for the metrics API.")
    ] = True,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background once the nodes are registered; a start-up "
                                            "failure is printed here and exits non-zero.")
    ] = False,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="With --detach: where the kubelet logs "
                                                     "(default: mock-kubelet.log).", show_default=False)
    ] = None,
    detach_timeout: Annotated[
        float, typer.Option("--detach-timeout", help="With --detach: seconds to wait for the nodes to register.")
    ] = 180.0,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the mock kubelet of this --name-prefix serving this cluster.")
    ] = False,
) -> None:
    """Register mock Nodes, keep their Leases, run the pods bound to them, serve traffic, export /metrics.

    Nodes this mock kubelet registered earlier (label kubeagora.io/mock-kubelet, one value per
    --name-prefix) are adopted when they fit the topology, recreated when they cannot (a changed pod
    CIDR), and removed when the topology no longer has them."""
    from kubeagora.kubelet.nodes import owner_of, parse_taint
    from kubeagora.kubelet.plan import make_plan

    try:
        if stop:
            _stop(kubeconfig.expanduser(), owner_of(name_prefix))
            return
        if not 0 <= metrics_port < 65536:
            raise KubeletError(f"--metrics-port {metrics_port}: not a port number")
        if not 0 <= metrics_api_port < 65536:
            raise KubeletError(f"--metrics-api-port {metrics_api_port}: not a port number")
        if max_in_flight < 1:
            raise KubeletError(f"--max-in-flight must be at least 1 (got {max_in_flight})")
        path = kubeconfig.expanduser()
        if not path.is_file():
            raise KubeletError(f"--kubeconfig {path}: no such file (start one with `kubeagora devcluster up`)")
        taints = tuple(parse_taint(t) for t in taint or ())
        plan = make_plan(scenario, nodes, seed, traffic, default_rps, name_prefix, faults)
        with needs_extra("cluster", "mock-kubelet"):
            from kubeagora.kubelet.main import Options, run
            from kubeagora.kubelet.metrics_api import usable_endpoint_address
        if metrics_api_address is not None:
            try:
                metrics_api_address = usable_endpoint_address(metrics_api_address)
            except ValueError as e:
                raise KubeletError(f"--metrics-api-address {e}") from None
        if detach:
            _detach(path, owner_of(name_prefix), log_file or Path("mock-kubelet.log"), detach_timeout)
            return
        run(plan, Options(path, metrics_host, metrics_port, taints, max_in_flight=max_in_flight,
                          delete_nodes_on_exit=delete_nodes, seed=1 if seed is None else seed,
                          metrics_api_port=metrics_api_port, metrics_api_address=metrics_api_address,
                          register_metrics_api=register_metrics_api, owner=owner_of(name_prefix),
                          log_file=str(log_file.resolve()) if log_file else ""))
    except (KubeletError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None


def _server(kubeconfig: Path) -> str:
    from kubeagora.kubeapi.errors import KubeConfigError
    from kubeagora.kubeapi.kubeconfig import server

    try:
        return server(kubeconfig)
    except (KubeConfigError, OSError) as e:
        raise KubeletError(f"--kubeconfig {kubeconfig}: {e}") from None


def _detach(kubeconfig: Path, owner: str, log_file: Path, timeout_s: float) -> None:
    """Start this command again in the background; return once it serves, or fail here with its error."""
    import sys

    from kubeagora.kubelet import detach

    started = detach.start(sys.argv[1:], log_file.resolve(), _server(kubeconfig), owner, timeout_s)
    if started.record is None:
        why = (f"exited with status {started.code}" if started.code is not None
               else f"did not register its nodes within {timeout_s:g} s (stopped)")
        for line in started.log_tail:
            typer.echo(line if line.startswith("error:") else f"  {line}", err=True)
        typer.echo(f"error: the mock kubelet {why}; its log: {log_file}", err=True)
        raise typer.Exit(started.code or 1)
    r = started.record
    typer.echo(f"mock kubelet serving {r.nodes} nodes ({r.source}) on {r.url} (pid {r.pid}, log {log_file}); "
               f"stop it with: kubeagora mock-kubelet --stop")


def _stop(kubeconfig: Path, owner: str) -> None:
    from kubeagora.kubelet import runtime

    server = _server(kubeconfig)
    stopped = [r for r in runtime.records_for(server) if r.owner == owner and runtime.stop(r)]
    for r in stopped:
        typer.echo(f"stopped the mock kubelet {r.owner!r} (pid {r.pid}, {r.nodes} nodes)")
    if not stopped:
        typer.echo(f"no mock kubelet {owner!r} serves {server}")
