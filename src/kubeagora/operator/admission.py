"""The validating admission webhook for OrchestrationIntents and ClusterPolicies (kopf handlers, thin).

The CRD schema already refuses malformed objects; the webhook adds what needs the cluster: the
OrchestrationPolicy `default` (replica cap, tenants, energy cap) and the nodes' regions, tiers and classes
(an intent whose placement no node satisfies, or a region no node is in), and the autoscalers already on
the intent's Deployment (a HorizontalPodAutoscaler or a KEDA ScaledObject would fight the operator over its
replicas). All come from kopf indices over ClusterPolicies, Nodes, HPAs and ScaledObjects, so a review
costs no API request. The rules are the pure functions of
`kubeagora.model.intent`; a refusal is a 422 whose message names the field.

Importing this module registers the handlers; the operator's startup handler calls
`configure_admission` to serve them over HTTPS and let kopf keep the ValidatingWebhookConfiguration
up to date. An update that leaves `spec` alone (labels, finalizers) is always admitted, so tightening
the policy never blocks the operator's own bookkeeping on existing intents.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kopf

from kubeagora.model.intent import (
    DEFAULT_POLICY_NAME,
    GROUP,
    VERSION,
    IntentError,
    NodeSite,
    OrchestrationPolicy,
    parse_intent,
    parse_orchestration_policy,
    validate_intent,
)
from kubeagora.operator import autoscalers
from kubeagora.sim.catalog import TEMPLATES

WEBHOOK_PORT = 9443
MANAGED_CONFIGURATION = "kubeagora.io"
"""Name of the ValidatingWebhookConfiguration kopf creates and keeps current."""
UNPROCESSABLE = 422
CERT_DAYS = 825

_enforced_policy = DEFAULT_POLICY_NAME
"""The OrchestrationPolicy the intent rules come from (configure_admission may name another, e.g. in tests)."""


# ------------------------------------------------------------------------------------------ indices
@kopf.index(GROUP, VERSION, "orchestrationpolicies")
def kubeagora_cluster_policies(name: str, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """OrchestrationPolicy objects by name (raw; parsed when used, so a bad one cannot break the index)."""
    return {name: {"metadata": {"name": name}, "spec": dict(body.get("spec") or {})}}


@kopf.index("v1", "nodes")
def kubeagora_node_sites(labels: kopf.Labels, **_: Any) -> dict[str, NodeSite]:
    """Every node's region, tier and class, under one key."""
    return {"sites": NodeSite.from_labels(labels)}


def _by_target(kind: str, body: kopf.Body) -> dict[tuple[str, str], autoscalers.Autoscaler]:
    found = autoscalers.from_object(kind, body)
    return {} if found is None else {(found.namespace, found.target_name): found}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers")
def kubeagora_hpas(body: kopf.Body, **_: Any) -> dict[tuple[str, str], autoscalers.Autoscaler]:
    """HorizontalPodAutoscalers by (namespace, target name)."""
    return _by_target(autoscalers.HPA_KIND, body)


@kopf.index("keda.sh", "v1alpha1", "scaledobjects")
def kubeagora_scaled_objects(body: kopf.Body, **_: Any) -> dict[tuple[str, str], autoscalers.Autoscaler]:
    """KEDA ScaledObjects by (namespace, target name); empty where KEDA is not installed."""
    return _by_target(autoscalers.SCALED_OBJECT_KIND, body)


AutoscalerIndex = kopf.Index[tuple[str, str], autoscalers.Autoscaler]


def _autoscalers_of(namespace: str, deployment: str, *indices: AutoscalerIndex | None) -> list[autoscalers.Autoscaler]:
    found = [a for index in indices if index is not None for a in index.get((namespace, deployment), ())]
    return autoscalers.on_deployment(namespace, deployment, found)


def _policy(index: kopf.Index[str, dict[str, Any]] | None) -> OrchestrationPolicy | None:
    if index is None:
        return None
    for obj in index.get(_enforced_policy, ()):
        try:
            return parse_orchestration_policy(obj)
        except IntentError:
            return None  # the webhook refuses bad policies; one that got in anyway enforces nothing
    return None


def _sites(index: kopf.Index[str, NodeSite] | None) -> Iterable[NodeSite]:
    return () if index is None else index.get("sites", ())


def _spec_unchanged(operation: str | None, old: kopf.Body | None, body: kopf.Body) -> bool:
    return operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec")


# ----------------------------------------------------------------------------------------- handlers
@kopf.on.validate(GROUP, VERSION, "orchestrationintents", id="intent", operations=["CREATE", "UPDATE"])
def validate_orchestration_intent(
    *,
    body: kopf.Body,
    kubeagora_cluster_policies: kopf.Index[str, dict[str, Any]] | None = None,
    kubeagora_node_sites: kopf.Index[str, NodeSite] | None = None,
    kubeagora_hpas: AutoscalerIndex | None = None,
    kubeagora_scaled_objects: AutoscalerIndex | None = None,
    old: kopf.Body | None = None,
    operation: str | None = None,
    **_: Any,
) -> None:
    if _spec_unchanged(operation, old, body):
        return
    try:
        intent = parse_intent(body)
    except IntentError as e:
        raise kopf.AdmissionError(str(e), code=UNPROCESSABLE) from None
    messages = [str(e) for e in validate_intent(intent, _policy(kubeagora_cluster_policies),
                                                _sites(kubeagora_node_sites), known_templates=TEMPLATES)]
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    others = _autoscalers_of(namespace, intent.target.name, kubeagora_hpas, kubeagora_scaled_objects)
    if others:
        messages.append(autoscalers.conflict_message(namespace, intent.target.name, others))
    if messages:
        raise kopf.AdmissionError("; ".join(messages), code=UNPROCESSABLE)


@kopf.on.validate(GROUP, VERSION, "orchestrationpolicies", id="orchestration-policy", operations=["CREATE", "UPDATE"])
def validate_orchestration_policy(
    *, body: kopf.Body, name: str, warnings: list[str], old: kopf.Body | None = None, operation: str | None = None,
    **_: Any,
) -> None:
    if _spec_unchanged(operation, old, body):
        return
    try:
        parse_orchestration_policy(body)
    except IntentError as e:
        raise kopf.AdmissionError(str(e), code=UNPROCESSABLE) from None
    if name != _enforced_policy:
        warnings.append(f"the operator enforces only the OrchestrationPolicy named {_enforced_policy!r}; "
                        f"{name!r} has no effect")


# ---------------------------------------------------------------------------------------- serving
def configure_admission(
    settings: kopf.OperatorSettings,
    host: str,
    port: int = WEBHOOK_PORT,
    managed_name: str | None = MANAGED_CONFIGURATION,
    *,
    addr: str | None = None,
    certfile: Path | None = None,
    pkeyfile: Path | None = None,
    cert_dir: Path | None = None,
    policy_name: str = DEFAULT_POLICY_NAME,
) -> None:
    """Serve the handlers above over HTTPS on `port`, reachable by the API server at `host`.

    `managed_name`: kopf creates and keeps current a ValidatingWebhookConfiguration of this name pointing
    at https://host:port (None: someone else manages it). `addr`: where to listen (default: `host` when it
    is an IP address, else every interface). Without `certfile`/`pkeyfile` a self-signed certificate for
    `host` is made with the `openssl` tool in `cert_dir` (a new temporary directory by default); kopf puts
    it into the configuration's caBundle. `policy_name`: the OrchestrationPolicy whose rules intents must meet.
    """
    global _enforced_policy
    if (certfile is None) != (pkeyfile is None):
        raise ValueError("certfile and pkeyfile go together")
    if managed_name is not None and "." not in managed_name.strip("."):
        # kopf names each webhook <handler id>.<managed_name>; the API server wants three dotted segments
        raise ValueError(f"managed webhook configuration name {managed_name!r} must be a dotted domain like "
                         f"{MANAGED_CONFIGURATION!r}")
    if certfile is None and shutil.which("openssl") is not None:
        certfile, pkeyfile = self_signed_certificate(cert_dir or Path(tempfile.mkdtemp(prefix="kubeagora-webhook-")),
                                                     host)
    listen = addr if addr is not None else (host if _is_ip(host) else None)
    settings.admission.server = kopf.WebhookServer(addr=listen, port=port, host=host, certfile=certfile,
                                                   pkeyfile=pkeyfile)
    settings.admission.managed = managed_name
    _enforced_policy = policy_name


def self_signed_certificate(directory: Path, host: str, days: int = CERT_DAYS) -> tuple[Path, Path]:
    """A P-256 key and a self-signed serving certificate for `host` (an IP or DNS name); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "webhook.crt", directory / "webhook.key"
    san = f"IP:{host}" if _is_ip(host) else f"DNS:{host}"
    proc = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", str(days), "-subj", f"/CN={host}",
         "-addext", f"subjectAltName={san}", "-addext", "extendedKeyUsage=serverAuth"],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl could not make the webhook certificate: {proc.stderr.strip()[-500:]}")
    key.chmod(0o600)
    return cert, key


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

