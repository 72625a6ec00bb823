"""The operator's residency step, run first on every tick, Prometheus or not (thin: the rules are in
``residency``).

1. every Deployment an intent restricts gets the rule in its pod template (a merge patch, only when
   the template does not say so already); a Deployment whose intent went away or stopped restricting
   gets kubeagora's expressions taken out again;
2. pods on a node the rule forbids are evicted (policy/v1 Eviction, so PodDisruptionBudgets hold; at
   most ``residency.eviction_budget`` per Deployment and tick) and reschedule under the affinity;
   when no Ready node within the rule exists, nothing is evicted;
3. each restricting intent gets a ``ResidencyMet`` verdict for its status (``loop.report``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubeagora.kubeapi.client import Api, ApiError
from kubeagora.operator import residency
from kubeagora.operator.adapter import pods_of
from kubeagora.operator.view import ClusterView

log = logging.getLogger("kubeagora.operator")


@dataclass
class ResidencyOutcome:
    verdicts: dict[str, residency.Verdict] = field(default_factory=dict)
    """Intent key ("namespace/name") → its verdict this tick."""
    evicted: set[str] = field(default_factory=set)
    """Pods ("namespace/name") evicted this tick: the agents must not move them again."""


def deployment_path(key: str) -> str:
    namespace, name = key.split("/", 1)
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


async def enforce(api: Api, view: ClusterView) -> ResidencyOutcome:
    outcome = ResidencyOutcome()
    deployments = view.objects["deployments"]
    rules = residency.rules_by_deployment(view.all("intents"))
    for key in sorted({*rules, *residency.recorded_deployments(deployments)}):
        dep = deployments.get(key)
        patch = residency.template_patch(dep, rules.get(key)) if dep is not None else None
        if patch is None:
            continue
        rule = rules.get(key)
        try:
            await api.merge_patch(deployment_path(key), patch)
        except ApiError as e:
            log.warning("cannot write the residency rule into deployment %s: %s", key, e)
            continue
        log.info("deployment %s: pods %s", key,
                 f"required to run within {rule.describe()}" if rule else "no longer restricted by kubeagora")
    nodes = view.objects["nodes"]
    for key, rule in rules.items():
        dep = deployments.get(key)
        if dep is None:
            continue
        namespace = key.split("/", 1)[0]
        wrong = residency.misplaced(pods_of(dep, view.all("pods")), nodes, rule)
        targets = residency.allowed_nodes(nodes.values(), rule)
        blocked: list[str] = []
        if targets:
            budget = residency.eviction_budget(int((dep.get("spec") or {}).get("replicas", 1)))
            for m in wrong[:budget]:
                if await _evict(api, m):
                    outcome.evicted.add(f"{m.namespace}/{m.pod}")
                else:
                    blocked.append(m.pod)
        verdict = residency.verdict(rule, wrong, targets, blocked)
        if not verdict.met:
            log.warning("residency of %s: %s", key, verdict.message)
        for intent in rule.intents:
            outcome.verdicts[f"{namespace}/{intent}"] = verdict
    return outcome


async def _evict(api: Api, m: residency.Misplaced) -> bool:
    """True once the API server accepted the eviction; False when it refused (429: a disruption budget)."""
    body: Mapping[str, object] = {"apiVersion": "policy/v1", "kind": "Eviction",
                                  "metadata": {"name": m.pod, "namespace": m.namespace}}
    try:
        status, _ = await api.create(f"/api/v1/namespaces/{m.namespace}/pods/{m.pod}/eviction", body,
                                     ok=(404, 429))
    except ApiError as e:
        log.warning("cannot evict %s/%s from %s: %s", m.namespace, m.pod, m.node, e)
        return False
    if status == 429:
        return False
    log.info("evicted %s/%s from %s to reschedule within its residency rule: %s", m.namespace, m.pod, m.node, m.why)
    return True
