"""``kubeagora scheduler-extender``: serve the extender's verbs on HTTP(S), fed by its own watch cache.

With ``--tls-cert-file``/``--tls-key-file`` it serves HTTPS (the scheduler's ``enableHTTPS`` and
``tlsConfig.caFile``); with ``--client-ca-file`` as well, filter and prioritize answer only a client
presenting a certificate from that CA (the scheduler's ``tlsConfig.certFile``/``keyFile``).

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
    tls_cert_file: Annotated[
        Path | None, typer.Option("--tls-cert-file", help="Serve HTTPS with this certificate (PEM; with "
                                  "--tls-key-file).", show_default=False)] = None,
    tls_key_file: Annotated[
        Path | None, typer.Option("--tls-key-file", help="The private key of --tls-cert-file (PEM).",
                                  show_default=False)] = None,
    client_ca_file: Annotated[
        Path | None, typer.Option("--client-ca-file", help="Answer filter and prioritize only to clients with a "
                                  "certificate from this CA (PEM), e.g. the scheduler's.", show_default=False)] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Refuse larger request bodies (413). The default fits a "
                          "nodeCacheCapable extender in a 5,000-node cluster; full Node objects need more.")
    ] = 4_491_264,
) -> None:
    """Filter and score nodes for kube-scheduler: intent placement, accelerators, Contract-Net bids."""
    try:
        if not 1 <= port < 65536:
            raise ExtenderError(f"--port {port}: not a port number (1-65535)")
        if not host:
            raise ExtenderError("--host must not be empty")
        if (tls_cert_file is None) != (tls_key_file is None):
            raise ExtenderError("--tls-cert-file and --tls-key-file go together")
        if client_ca_file is not None and tls_cert_file is None:
            raise ExtenderError("--client-ca-file needs HTTPS: give --tls-cert-file and --tls-key-file too")
        if max_body_bytes < 1024:
            raise ExtenderError(f"--max-body-bytes {max_body_bytes}: must be at least 1024")
        with needs_extra("cluster", "scheduler-extender"):
            import ssl

            from kubeagora.kubeapi import KubeConfigError
            from kubeagora.kubeapi.kubeconfig import check
            from kubeagora.scheduler_plugin.run import VerbsWorkerDied, serve, server_tls_context
        tls = None
        if tls_cert_file is not None and tls_key_file is not None:
            try:
                tls = server_tls_context(tls_cert_file, tls_key_file, client_ca_file)
            except (OSError, ssl.SSLError) as e:
                raise ExtenderError(f"--tls-cert-file {tls_cert_file}, --tls-key-file {tls_key_file}"
                                    f"{f', --client-ca-file {client_ca_file}' if client_ca_file else ''}: "
                                    f"cannot load them ({getattr(e, 'strerror', None) or e})") from None
        try:
            check(kubeconfig)
        except KubeConfigError as e:
            raise ExtenderError(str(e)) from None
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format="%(asctime)s scheduler-extender: %(message)s", datefmt="%H:%M:%S")
        try:
            serve(kubeconfig, host, port, tls, max_body_bytes, client_auth=client_ca_file is not None)
        except OSError as e:
            raise ExtenderError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        except KubeConfigError as e:
            raise ExtenderError(str(e)) from None
        except VerbsWorkerDied as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
    except ExtenderError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(USAGE_ERROR) from None
