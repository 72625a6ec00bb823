"""The mutating admission webhook for Pods: a pod of a residency-restricted Deployment gets the rule as
its required node affinity before any scheduler sees it (kopf handler, thin; the rule is ``residency``).

This covers the pods created before the operator wrote the rule into the Deployment's template — an
intent and its Deployment applied together (``examples/intent.yaml``), or a Deployment created while
the operator was busy. The template patch (``residency_step``) is the durable half: it holds while
the operator, and so this webhook, is down. Hence the failure policy ``Ignore``: a cluster's pods do
not stop being created because the operator is away.

The intents are read live from the API server on each pod creation (one list in the pod's namespace,
and one read of the pod's ReplicaSet when an intent there restricts placement), not from a watch
cache, so an intent created a moment before its Deployment is already seen.

Importing this module registers the handler; like ``admission``, only when the operator serves webhooks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from kubeagora.kubeapi.client import Api, ApiError
from kubeagora.operator import residency
from kubeagora.operator.records import GROUP, VERSION

log = logging.getLogger("kubeagora.operator")


def controller_of(obj: Mapping[str, Any], kind: str) -> str | None:
    """The name of the object's controlling owner of this kind (None: not controlled by one)."""
    return next((str(r.get("name")) for r in (obj.get("metadata") or {}).get("ownerReferences") or ()
                 if r.get("kind") == kind and r.get("controller")), None)


async def rule_for_pod(api: Api, namespace: str, pod: Mapping[str, Any]) -> residency.Rule | None:
    """The residency rule the pod must carry (None: no intent restricts it)."""
    replicaset = controller_of(pod, "ReplicaSet")
    if replicaset is None:
        return None  # not made by a Deployment's ReplicaSet: no intent targets it
    intents, _ = await api.list_all(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/orchestrationintents", {})
    rules = residency.rules_by_deployment(intents)
    if not rules:
        return None
    rs = await api.get(f"/apis/apps/v1/namespaces/{namespace}/replicasets/{replicaset}")
    deployment = controller_of(rs, "Deployment")
    return rules.get(f"{namespace}/{deployment}") if deployment else None


WEBHOOK_ID = "residency"
REGISTERED_POLL_S = 1.0


async def wait_until_registered(api: Api, configuration: str) -> None:
    """Return once the API server's MutatingWebhookConfiguration ``configuration`` holds this webhook
    (kopf writes it once its webhook server listens; it empties the list when it stops)."""
    path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{configuration}"
    while True:
        try:
            obj = await api.get(path)
        except ApiError:
            obj = {}
        if any(str(w.get("name", "")).startswith(f"{WEBHOOK_ID}.") for w in obj.get("webhooks") or ()):
            return
        await asyncio.sleep(REGISTERED_POLL_S)


@kopf.on.mutate("v1", "pods", id=WEBHOOK_ID, operations=["CREATE"], ignore_failures=True)
async def pod_residency(*, body: kopf.Body, patch: kopf.Patch, memo: Any, **_: Any) -> None:
    api: Api | None = memo.get("api")
    namespace = str((body.get("metadata") or {}).get("namespace") or "")
    if api is None or not namespace:
        return
    try:
        rule = await rule_for_pod(api, namespace, body)
    except ApiError as e:
        log.warning("residency webhook: cannot read the intents of a pod in %s (admitted unchanged): %s", namespace, e)
        return
    if rule is not None:
        patch.fns.append(lambda pod: residency.apply_to_pod(cast(dict[str, Any], pod), rule))
