"""The admission webhooks for OrchestrationIntents, OrchestrationPolicies and AgentActions (kopf handlers, thin).

The CRD schema already refuses malformed objects; the webhook adds what needs the cluster: the
signature the policy's ``intentSigning`` requires (``trust.intent_signing``; a refusal names
``metadata.annotations[kubeagora.io/signature]``), the
OrchestrationPolicy `default` (replica cap, tenants, energy cap) and the nodes' regions, tiers and classes
(an intent whose placement no node satisfies, or a region no node is in), and the autoscalers already on
the intent's Deployment (a HorizontalPodAutoscaler or a KEDA ScaledObject would fight the operator over its
replicas). All come from kopf indices over ClusterPolicies, Nodes, HPAs and ScaledObjects, so a review
costs no API request. The rules are the pure functions of
`kubeagora.model.intent`; a refusal is a 422 whose message names the field.

A person's answer on an AgentAction (``spec.approval`` Pending → Approved | Denied) is admitted only
from someone allowed to give it: a user RBAC lets ``approve`` agentactions in the record's namespace
(a SubjectAccessReview, asked with the request's own user and groups), or whom the OrchestrationPolicy
names an approver there; a record of a node action (it lives in the operator's namespace) only from
someone RBAC lets ``approve`` agentactions cluster-wide — a cluster administrator. The mutating
handler writes who answered into ``spec.approver``; the validating one refuses any other name there,
so the operator, which acts only on answers that name someone, knows who approved.

Importing this module registers the handlers; the operator's startup handler calls
`configure_admission` to serve them over HTTPS. The webhook configurations are static
(`manifests/webhook/webhook.yaml`, or `webhook_configurations` for a local cluster): the operator needs no
right to write them, so a compromised operator cannot register a webhook on other resources. (For a
local run with admin credentials, `--webhook-manage` lets kopf write them as before.) An update that
leaves `spec` alone (labels, finalizers) is always admitted, so tightening the policy never blocks
the operator's own bookkeeping on existing intents.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
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
from kubeagora.operator.metric_presets import PRESETS
from kubeagora.sim.catalog import TEMPLATES
from kubeagora.trust import intent_signing

WEBHOOK_PORT = 9443
MANAGED_CONFIGURATION = "kubeagora.io"
"""Name of the ValidatingWebhookConfiguration kopf creates and keeps current."""
UNPROCESSABLE = 422
CERT_DAYS = 825

_enforced_policy = DEFAULT_POLICY_NAME
"""The OrchestrationPolicy the intent rules come from (configure_admission may name another, e.g. in tests)."""
NODE_ACTIONS = ("QuarantineNode", "LiftQuarantine")
"""AgentActions on nodes: every tenant shares the node, so only a cluster-wide ``approve`` answers them."""
ANSWERS = ("Approved", "Denied")

Authorizer = Callable[[Mapping[str, Any], str, str], Awaitable[bool]]
"""(the request's userInfo, namespace ("" = cluster-wide), record name) → may this user approve?"""
_authorizer: Authorizer | None = None


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
    """An update that changes neither the spec nor its signature (labels, finalizers, other annotations)."""
    def signature(obj: kopf.Body) -> object:
        return ((obj.get("metadata") or {}).get("annotations") or {}).get(intent_signing.SIGNATURE_ANNOTATION)

    return operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec") \
        and signature(old) == signature(body)


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
    policy = _policy(kubeagora_cluster_policies)
    unsigned = intent_signing.check(body, policy)
    if unsigned is not None:  # a spec nobody with the key vouched for is judged on nothing else
        raise kopf.AdmissionError(unsigned, code=UNPROCESSABLE)
    messages = [str(e) for e in validate_intent(intent, policy, _sites(kubeagora_node_sites),
                                                known_templates=TEMPLATES, known_presets=PRESETS)]
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
        policy = parse_orchestration_policy(body)
    except IntentError as e:
        raise kopf.AdmissionError(str(e), code=UNPROCESSABLE) from None
    bad_keys = intent_signing.key_problems(policy)
    if bad_keys:
        raise kopf.AdmissionError("; ".join(bad_keys), code=UNPROCESSABLE)
    if name != _enforced_policy:
        warnings.append(f"the operator enforces only the OrchestrationPolicy named {_enforced_policy!r}; "
                        f"{name!r} has no effect")


# ------------------------------------------------------------------------------------ AgentAction answers
def _spec(obj: kopf.Body | None) -> Mapping[str, Any]:
    return dict((obj.get("spec") if obj is not None else None) or {})


def _answer_changed(old: kopf.Body | None, body: kopf.Body) -> bool:
    before, after = _spec(old), _spec(body)
    return bool(before.get("approval") != after.get("approval") or before.get("approver") != after.get("approver"))


@kopf.on.mutate(GROUP, VERSION, "agentactions", id="agentaction-approver", operations=["UPDATE"])
def record_approver(*, body: kopf.Body, old: kopf.Body | None = None, userinfo: Mapping[str, Any],
                    patch: kopf.Patch, **_: Any) -> None:
    """Who changes ``spec.approval`` is written into ``spec.approver`` (nobody types a name)."""
    if _spec(old).get("approval") != _spec(body).get("approval"):
        patch["spec"] = {"approver": str(userinfo.get("username", ""))}


@kopf.on.validate(GROUP, VERSION, "agentactions", id="agentaction", operations=["UPDATE"])
async def validate_agent_action_answer(
    *, body: kopf.Body, old: kopf.Body | None = None, userinfo: Mapping[str, Any], namespace: str | None,
    name: str | None, kubeagora_cluster_policies: kopf.Index[str, dict[str, Any]] | None = None, **_: Any,
) -> None:
    if not _answer_changed(old, body):
        return
    errors = answer_errors(_spec(old), _spec(body), str(userinfo.get("username", "")))
    if errors:
        raise kopf.AdmissionError(errors, code=UNPROCESSABLE)
    action = str((_spec(body).get("action") or {}).get("type", ""))
    cluster_wide = action in NODE_ACTIONS
    user, groups = str(userinfo.get("username", "")), [str(g) for g in userinfo.get("groups") or ()]
    policy = _policy(kubeagora_cluster_policies)
    if not cluster_wide and policy is not None and policy.may_approve(namespace or "", user, groups):
        return
    allowed = _authorizer is not None and await _authorizer(userinfo, "" if cluster_wide else namespace or "",
                                                            name or "")
    if not allowed:
        where = "cluster-wide (an action on a node)" if cluster_wide else f"in namespace {namespace}"
        raise kopf.AdmissionError(f"spec.approval: {user} may not answer this AgentAction: needs RBAC to approve "
                                  f"agentactions.{GROUP} {where}"
                                  + ("" if cluster_wide else f", or to be named in OrchestrationPolicy "
                                                             f"{_enforced_policy} spec.approvers"), code=403)


def answer_errors(before: Mapping[str, Any], after: Mapping[str, Any], user: str) -> str:
    """What is wrong with an answer (pure); empty when it is well-formed: once, from Pending to
    Approved or Denied, naming the user who sent it."""
    if before.get("approval") == after.get("approval"):
        return "spec.approver: names who answered; it changes only with spec.approval"
    if before.get("approval") != "Pending":
        return f"spec.approval: already answered ({before.get('approval') or 'no request'}); an answer is given once"
    if after.get("approval") not in ANSWERS:
        return f"spec.approval: must become one of {', '.join(ANSWERS)}"
    if after.get("approver") != user:
        return f"spec.approver: must be the user who answers ({user}), got {after.get('approver')!r}"
    return ""


def subject_access_reviewer(api: Any) -> Authorizer:
    """An ``Authorizer`` asking the API server (SubjectAccessReview) whether the user may ``approve``
    ``agentactions.kubeagora.io`` there; ``api`` is a ``kubeapi.client.Api``."""
    async def may_approve(userinfo: Mapping[str, Any], namespace: str, name: str) -> bool:
        attrs: dict[str, Any] = {"verb": "approve", "group": GROUP, "resource": "agentactions", "name": name}
        if namespace:
            attrs["namespace"] = namespace
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": userinfo.get("username", ""), "groups": list(userinfo.get("groups") or ()),
                           "uid": userinfo.get("uid", ""), "extra": dict(userinfo.get("extra") or {}),
                           "resourceAttributes": attrs}}
        _, answer = await api.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review, want=True)
        return bool(((answer or {}).get("status") or {}).get("allowed"))

    return may_approve


# ---------------------------------------------------------------------------------------- configurations
WEBHOOKS: tuple[tuple[str, str, str, str, tuple[str, ...], str, str], ...] = (
    # (handler id, API group, version, resource, operations, kind, failure policy)
    ("intent", GROUP, VERSION, "orchestrationintents", ("CREATE", "UPDATE"), "validating", "Fail"),
    ("orchestration-policy", GROUP, VERSION, "orchestrationpolicies", ("CREATE", "UPDATE"), "validating", "Fail"),
    ("agentaction", GROUP, VERSION, "agentactions", ("UPDATE",), "validating", "Fail"),
    ("agentaction-approver", GROUP, VERSION, "agentactions", ("UPDATE",), "mutating", "Fail"),
    # pods get a residency-restricted Deployment's node affinity (operator.pod_admission); Ignore: the
    # Deployment's template carries the rule too, and pods must not stop being created with the operator away
    ("residency", "", "v1", "pods", ("CREATE",), "mutating", "Ignore"),
)
"""Every handler served, as the API server must call it (kopf serves each at the path ``/<handler id>``)."""


def webhook_configurations(ca_bundle: bytes, *, url: str | None = None, service: tuple[str, str, int] | None = None,
                           name: str = MANAGED_CONFIGURATION, timeout_s: int = 10) -> list[dict[str, Any]]:
    """The ValidatingWebhookConfiguration and MutatingWebhookConfiguration for the handlers above,
    reaching the operator at ``url`` (e.g. ``https://127.0.0.1:9443``) or through ``service``
    (namespace, name, port). Failure policy ``Fail`` but for pods: while no operator answers, intents,
    policies and answers on AgentActions wait (nothing acts on them then anyway)."""
    import base64

    if (url is None) == (service is None):
        raise ValueError("give either url or service")
    configs: dict[str, dict[str, Any]] = {}
    for handler, group, version, resource, operations, kind, failure in WEBHOOKS:
        if url is not None:
            client: dict[str, Any] = {"url": f"{url.rstrip('/')}/{handler}"}
        else:
            assert service is not None
            client = {"service": {"namespace": service[0], "name": service[1], "port": service[2],
                                  "path": f"/{handler}"}}
        client["caBundle"] = base64.b64encode(ca_bundle).decode()
        hook = {"name": f"{handler}.{name}", "clientConfig": client, "failurePolicy": failure,
                "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": timeout_s,
                "matchPolicy": "Equivalent",
                "rules": [{"apiGroups": [group], "apiVersions": [version], "operations": list(operations),
                           "resources": [resource], "scope": "*"}]}
        if kind == "mutating":
            hook["reinvocationPolicy"] = "Never"
        api_kind = "ValidatingWebhookConfiguration" if kind == "validating" else "MutatingWebhookConfiguration"
        configs.setdefault(api_kind, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": api_kind,
                                      "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kubeagora"}},
                                      "webhooks": []})["webhooks"].append(hook)
    return list(configs.values())


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
    authorizer: Authorizer | None = None,
) -> None:
    """Serve the handlers above over HTTPS on `port`, reachable by the API server at `host`.

    `managed_name`: kopf creates and keeps current a ValidatingWebhookConfiguration of this name pointing
    at https://host:port (None: someone else manages it). `addr`: where to listen (default: `host` when it
    is an IP address, else every interface). Without `certfile`/`pkeyfile` a self-signed certificate for
    `host` is made with the `openssl` tool in `cert_dir` (a new temporary directory by default); kopf puts
    it into the configuration's caBundle. `policy_name`: the OrchestrationPolicy whose rules intents must meet.
    `authorizer`: who may answer AgentActions besides the policy's approvers (None: nobody else).
    """
    global _enforced_policy, _authorizer
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
    _authorizer = authorizer


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

