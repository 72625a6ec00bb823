"""``kubeagora operator run``: the operator in the foreground (kopf, standalone, cluster-wide).

Mounted by the main CLI. Bad options are one line on stderr and exit status 2; so is a missing
'operator' extra (kopf), which is imported only when the command runs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated

import typer

from kubeagora.extras import needs_extra

USAGE_ERROR = 2
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

operator_app = typer.Typer(name="operator", help="The kubeagora operator (kopf).", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE_ERROR)


@operator_app.command("run")
def run(
    kubeconfig: Annotated[
        Path | None, typer.Option("--kubeconfig", help="Kubeconfig (default: $KUBECONFIG, ~/.kube/config, or the "
                                                      "pod's service account).", show_default=False)] = None,
    prometheus_url: Annotated[str, typer.Option("--prometheus-url", help="Prometheus that scrapes the workloads.")
                              ] = "http://127.0.0.1:9090",
    interval: Annotated[float, typer.Option("--interval", help="Seconds between control-loop ticks.")] = 5.0,
    metrics_host: Annotated[str, typer.Option("--metrics-host", help="Address of /metrics and /healthz.")] = "0.0.0.0",
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Port of /metrics and /healthz.")] = 8080,
    webhook_host: Annotated[
        str | None, typer.Option("--webhook-host", help="Name or IP the API server reaches the admission webhook at "
                                                        "(omit to run without the webhook).", show_default=False)
    ] = None,
    webhook_port: Annotated[int, typer.Option("--webhook-port", help="Port of the admission webhook (HTTPS).")
                            ] = 9443,
    webhook_listen: Annotated[
        str | None, typer.Option("--webhook-listen", help="Address the webhook listens on (default: the host when "
                                                          "it is an IP, else every interface).", show_default=False)
    ] = None,
    webhook_cert: Annotated[
        Path | None, typer.Option("--webhook-cert", help="The webhook's serving certificate (PEM), e.g. from "
                                                         "cert-manager's Secret.", show_default=False)] = None,
    webhook_key: Annotated[
        Path | None, typer.Option("--webhook-key", help="Its private key (PEM).", show_default=False)] = None,
    webhook_manage: Annotated[
        bool, typer.Option("--webhook-manage/--no-webhook-manage",
                           help="Let the operator write its own webhook configurations with a self-signed "
                                "certificate (a local run with admin credentials; in a cluster the "
                                "configurations are static and the operator may not write them).")] = False,
    shadow_seconds: Annotated[
        float | None, typer.Option("--shadow-seconds", help="Override every intent's shadow duration.",
                                   show_default=False)] = None,
    canary_seconds: Annotated[
        float | None, typer.Option("--canary-seconds", help="Override every intent's canary duration.",
                                   show_default=False)] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", envvar="POD_NAMESPACE",
                          help="The operator's own namespace: AgentActions on nodes and the key that signs "
                               "every AgentAction.")] = "kubeagora-system",
    leader_election: Annotated[
        bool, typer.Option("--leader-election/--no-leader-election",
                           help="Act only while holding the Lease kubeagora-operator in --namespace (run two "
                                "replicas: one acts, the other takes over).")] = True,
    identity: Annotated[
        str, typer.Option("--identity", envvar="POD_NAME", help="This replica's name in the Lease (default: host "
                                                                 "name and process id).", show_default=False)] = "",
    metrics_preset: Annotated[
        str, typer.Option("--metrics-preset", help="Standard series to read load and latency from, for intents "
                                                   "whose spec.metrics names none: otel (OpenTelemetry HTTP "
                                                   "semantic conventions), istio, linkerd or ingress-nginx.")
    ] = "otel",
    namespace_label: Annotated[
        str | None, typer.Option("--namespace-label", help="Label carrying the namespace in that preset's series "
                                                           "(default: the preset's own).", show_default=False)
    ] = None,
    workload_label: Annotated[
        str | None, typer.Option("--workload-label", help="Label carrying the Deployment's name in that preset's "
                                                          "series (default: the preset's own).", show_default=False)
    ] = None,
    scrape_interval: Annotated[
        float | None, typer.Option("--scrape-interval", help="Seconds between Prometheus's scrapes of the "
                                                             "workloads; the query windows span four (default: "
                                                             "Prometheus's global scrape_interval, read at start; "
                                                             "30 when it cannot be read).", show_default=False)
    ] = None,
    custom_queries: Annotated[
        bool, typer.Option("--custom-queries/--no-custom-queries", help="Honour intents' custom PromQL "
                                                                        "(spec.metrics.queries).")] = True,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="A learned residual for the MPC's set-points (policy.npz from "
                                  "`kubeagora train`; run with numpy, no torch).", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Watch intents, Deployments, Pods and Nodes; decide with the agents; act; report."""
    with needs_extra("operator", "operator run"):
        import kopf

        from kubeagora.kubeapi import KubeConfigError
        from kubeagora.kubeapi.kubeconfig import check
        from kubeagora.operator import handlers  # noqa: F401  (registers the handlers)
        from kubeagora.operator.handlers import OperatorConfig
        from kubeagora.operator.loop import LoopSettings
        from kubeagora.operator.metric_presets import PRESETS

    if interval <= 0:
        raise _fail(f"--interval must be positive (got {interval:g})")
    for name, port in (("--metrics-port", metrics_port), ("--webhook-port", webhook_port)):
        if not 0 < port < 65536:
            raise _fail(f"{name} {port}: not a port number")
    for name, seconds in (("--shadow-seconds", shadow_seconds), ("--canary-seconds", canary_seconds)):
        if seconds is not None and seconds < 0:
            raise _fail(f"{name} must be ≥ 0 (got {seconds:g})")
    if scrape_interval is not None and not scrape_interval > 0:
        raise _fail(f"--scrape-interval must be positive (got {scrape_interval:g})")
    if metrics_preset not in PRESETS:
        raise _fail(f"--metrics-preset {metrics_preset!r}: not a preset (known: {', '.join(PRESETS)})")
    for name, label in (("--namespace-label", namespace_label), ("--workload-label", workload_label)):
        if label is not None and not LABEL_NAME.fullmatch(label):
            raise _fail(f"{name} {label!r}: not a Prometheus label name")
    if not prometheus_url.startswith(("http://", "https://")):
        raise _fail(f"--prometheus-url {prometheus_url!r}: not an http(s) URL")
    if webhook_host is not None and not webhook_manage and (webhook_cert is None or webhook_key is None):
        raise _fail("--webhook-host needs --webhook-cert and --webhook-key (the certificate the webhook "
                    "configuration's caBundle trusts), or --webhook-manage")
    for name, pem in (("--webhook-cert", webhook_cert), ("--webhook-key", webhook_key)):
        if pem is not None and not pem.expanduser().is_file():
            raise _fail(f"{name} {pem}: no such file")
    if kubeconfig is not None:
        kubeconfig = kubeconfig.expanduser()
    if not _DNS_LABEL.fullmatch(namespace):
        raise _fail(f"--namespace {namespace!r}: not a namespace name (lower-case letters, digits and '-')")
    if policy is not None:
        from kubeagora.learn.policy import PolicyFileError, load_actor

        try:
            load_actor(policy.expanduser())
        except PolicyFileError as e:
            raise _fail(f"--policy {e}") from None
    try:  # once here, so that missing or unusable credentials are one line and exit 2, not kopf's retries
        check(kubeconfig)
    except KubeConfigError as e:
        raise _fail(str(e)) from None
    loop = LoopSettings(prometheus_url, interval, namespace, shadow_seconds, canary_seconds,
                        metrics_preset=metrics_preset, namespace_label=namespace_label, workload_label=workload_label,
                        scrape_interval_s=scrape_interval, custom_queries=custom_queries,
                        policy_file=None if policy is None else policy.expanduser())
    config = OperatorConfig(kubeconfig, loop, metrics_host, metrics_port, webhook_host, webhook_port, webhook_listen,
                            leader_election, identity, webhook_cert, webhook_key, webhook_manage)
    if webhook_host is not None:
        from kubeagora.operator import admission, pod_admission  # noqa: F401  (registers the webhooks' handlers)
    kopf.configure(verbose=verbose)
    if not verbose:  # one line per watch event would drown what the agents decide
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(standalone=True, clusterwide=True, memo=kopf.Memo(config=config))
