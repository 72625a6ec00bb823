"""``kubeagora scheduler-extender``: serve the extender's verbs on HTTP, fed by its own watch cache.

Mounted by the main CLI. Bad input (options, an unreadable kubeconfig, a port in use) is one line on
stderr and exit status 2. The aiohttp part is imported only when the command runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from kubeagora.extras import needs_extra

USAGE_ERROR = 2


class ExtenderError(Exception):
    """Bad input or an environment the extender cannot run in; the message is the one line shown."""


def scheduler_extender(
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config if "
                     "it exists, else the pod's service account).", show_default=False),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 inside a pod).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of /filter, /prioritize, /healthz and /metrics.")] = 8888,
) -> None:
    """Filter and score nodes for kube-scheduler: intent placement, accelerators, Contract-Net bids."""
    try:
        if not 1 <= port < 65536:
            raise ExtenderError(f"--port {port}: not a port number (1-65535)")
        if not host:
            raise ExtenderError("--host must not be empty")
        with needs_extra("cluster", "scheduler-extender"):
            from kubeagora.kubeapi import KubeConfigError
            from kubeagora.kubeapi.kubeconfig import load_or_in_cluster
            from kubeagora.scheduler_plugin.run import serve
        try:
            endpoint = load_or_in_cluster(kubeconfig)
        except KubeConfigError as e:
            raise ExtenderError(f"--kubeconfig: {e}") from None
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format="%(asctime)s scheduler-extender: %(message)s", datefmt="%H:%M:%S")
        try:
            serve(endpoint, host, port)
        except OSError as e:
            raise ExtenderError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    except ExtenderError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
