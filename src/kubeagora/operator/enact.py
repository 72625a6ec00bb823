"""Actions → the Kubernetes API requests that carry them out (pure; the loop sends them).

    Scale           PATCH the Deployment's scale subresource (spec.replicas)
    Place           one more replica: the scale subresource again. The pod is placed by the
                    cluster's scheduler, whose extender scores nodes with the same Contract-Net bids
                    the placement agent used; it usually, not always, lands on the agent's choice
    Migrate         evict one pod of the service from ``from_node`` (policy/v1 Eviction, so
                    PodDisruptionBudgets hold); its ReplicaSet recreates it and the extender places it
    QuarantineNode  taint the node ``kubeagora.io/quarantined:NoExecute`` (out of placement and routing)
    LiftQuarantine  remove that taint
                    Both by JSON patch whose first op tests the node's resourceVersion: the taint list is
                    written whole from the watch cache, so a node changed since (by its kubelet, or
                    another controller's taint) refuses the patch (422) and the next tick plans again
    SetConcurrency, ShedLoad   not enactable on a plain cluster (no ingress or runtime hook): reported

Besides actions, the operator publishes its trust in each node (the sentinel's score, from attestation
and cross-checks) as the annotation ``kubeagora.io/trust`` (``trust_requests``), by merge patch of that
one key, when it moved by ``TRUST_STEP`` or more. Only the operator may write it (the admission policy
``kubeagora-node-trust-operator-only``); the scheduler extender reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeagora.kubeapi import node_reports
from kubeagora.kubeapi.node_reports import ANNOTATION_TRUST
from kubeagora.model import Action, LiftQuarantine, Migrate, Place, QuarantineNode, Scale, SetConcurrency, ShedLoad
from kubeagora.operator.adapter import TAINT_QUARANTINE, Binding, pods_of
from kubeagora.operator.view import Obj

UNENACTABLE = frozenset({"SetConcurrency", "ShedLoad"})
"""What a plain cluster cannot carry out: the operator's controller does not propose these at all (a
person asked to approve a shed that nothing could enact was the only outcome)."""
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    body: Any
    """The JSON body (a list of ops for a JSON patch)."""
    content_type: str = JSON
    what: str = ""
    """One line for logs and Events: what this request does."""
    service: str = ""
    """The managed service ("namespace/deployment") it acts for; "" for a node."""


@dataclass(frozen=True, slots=True)
class NotEnacted:
    action: Action
    why: str
    missing: bool = False
    """What it needs is not in the watch cache (yet): a later try may find it."""


def scale_path(namespace: str, deployment: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale"


def scale_request(binding: Binding, replicas: int, why: str) -> ApiRequest:
    return ApiRequest("PATCH", scale_path(binding.namespace, binding.deployment), {"spec": {"replicas": replicas}},
                      MERGE_PATCH, f"scale {binding.namespace}/{binding.deployment} to {replicas}: {why}",
                      binding.service.name)


def taint_request(node: Obj, action: QuarantineNode | LiftQuarantine) -> ApiRequest | None:
    """The JSON patch that adds (quarantine) or removes (lift) our taint, valid only on the node as
    cached (its resourceVersion); None when there is nothing to change."""
    taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or ()]
    ours = [t for t in taints if t.get("key") == TAINT_QUARANTINE]
    if isinstance(action, QuarantineNode):
        if ours:
            return None
        taints.append({"key": TAINT_QUARANTINE, "value": "true", "effect": "NoExecute"})
        what = f"quarantine node {action.node}: {action.reason}"
    else:
        if not ours:
            return None
        taints = [t for t in taints if t.get("key") != TAINT_QUARANTINE]
        what = f"lift the quarantine of node {action.node}: {action.reason}"
    rv = str((node.get("metadata") or {}).get("resourceVersion", ""))
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "add", "path": "/spec/taints", "value": taints}]
    return ApiRequest("PATCH", f"/api/v1/nodes/{action.node}", ops, JSON_PATCH, what)


TRUST_STEP = 0.1
"""A node's published trust is rewritten when the score moved this much (or reached 1 again): the
quarantine threshold is 0.3 and scores move 0.1-0.5 per finding, so finer steps would only add writes."""


def published_trust(node: Obj) -> float | None:
    """The trust the operator last published on a node; None where it published none (or it is unreadable)."""
    return node_reports.published_trust(((node.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_TRUST))


def trust_requests(trust: Mapping[str, float], nodes: Mapping[str, Obj]) -> list[ApiRequest]:
    """Merge patches publishing each node's trust (1 where the sentinel holds nothing against it) where it
    differs from what is published by ``TRUST_STEP`` or more, or is back at 1; nothing for a node that was
    never distrusted."""
    out = []
    for name, node in sorted(nodes.items()):
        score = round(min(max(float(trust.get(name, 1.0)), 0.0), 1.0), 2)
        published = published_trust(node)
        was = 1.0 if published is None else published
        if abs(score - was) < TRUST_STEP and not (score == 1.0 and was != 1.0):
            continue
        out.append(ApiRequest("PATCH", f"/api/v1/nodes/{name}",
                              {"metadata": {"annotations": {ANNOTATION_TRUST: f"{score:g}"}}}, MERGE_PATCH,
                              f"publish trust {score:g} in node {name} (was {was:g})"))
    return out


def plan(actions: Sequence[Action], bindings: Mapping[str, Binding], deployments: Mapping[str, Obj],
         pods: Sequence[Obj], nodes: Mapping[str, Obj]) -> tuple[list[ApiRequest], list[NotEnacted]]:
    """``bindings`` by service name ("namespace/deployment"), ``deployments`` by "namespace/name",
    ``nodes`` by name."""
    requests: list[ApiRequest] = []
    skipped: list[NotEnacted] = []
    replicas: dict[str, int] = {}
    reasons: dict[str, str] = {}
    evicted: set[str] = set()
    placed: dict[str, list[str]] = {}
    for a in actions:
        if isinstance(a, QuarantineNode | LiftQuarantine):
            node = nodes.get(a.node)
            if node is None:
                skipped.append(NotEnacted(a, f"node {a.node} is gone", missing=True))
                continue
            request = taint_request(node, a)
            if request is not None:
                requests.append(request)
            continue
        binding = bindings.get(a.service)
        if binding is None:
            skipped.append(NotEnacted(a, f"service {a.service} has no intent", missing=True))
            continue
        dep = deployments.get(f"{binding.namespace}/{binding.deployment}")
        if dep is None:
            skipped.append(NotEnacted(a, f"deployment {binding.namespace}/{binding.deployment} is gone",
                                      missing=True))
            continue
        current = replicas.get(a.service, int((dep.get("spec") or {}).get("replicas", 1)))
        if isinstance(a, Scale):
            replicas[a.service], reasons[a.service] = a.replicas, a.reason
        elif isinstance(a, Place):
            placed.setdefault(a.service, []).append(a.node)
            best = placed[a.service]
            replicas[a.service] = current + 1
            reasons[a.service] = f"{len(best)} more replica(s), best bids on {', '.join(best)}: {a.reason}"
        elif isinstance(a, Migrate):
            victim = next((p for p in pods_of(dep, pods) if (p.get("spec") or {}).get("nodeName") == a.from_node
                           and (p.get("metadata") or {}).get("name") not in evicted), None)
            if victim is None:
                skipped.append(NotEnacted(a, f"no pod of {a.service} left on {a.from_node}"))
                continue
            name = str((victim.get("metadata") or {}).get("name"))
            evicted.add(name)
            requests.append(ApiRequest(
                "POST", f"/api/v1/namespaces/{binding.namespace}/pods/{name}/eviction",
                {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name,
                                                                            "namespace": binding.namespace}},
                JSON, f"evict {binding.namespace}/{name} from {a.from_node} (to {a.to_node}): {a.reason}",
                binding.service.name))
        elif isinstance(a, SetConcurrency | ShedLoad):
            skipped.append(NotEnacted(a, f"{type(a).__name__} needs an ingress or runtime hook this cluster lacks"))
    for service, n in replicas.items():
        requests.append(scale_request(bindings[service], max(0, n), reasons[service]))
    return requests, skipped
