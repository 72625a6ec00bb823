"""Residency as a hard rule: an intent's placement becomes its pods' *required* node affinity (pure).

When an OrchestrationIntent restricts regions, tiers or node classes, the pods of its Deployment
must never run elsewhere, whatever the scheduler extender's state (down, not yet synced, a second
scheduler in the cluster). Scoring stays the extender's job; the rule is written where every
scheduler must obey it, the pod's ``spec.affinity.nodeAffinity.requiredDuringScheduling...``:

- ``template_patch``: the operator writes the rule into the Deployment's pod template, so every pod
  its ReplicaSets create carries it, whether or not the operator runs at that moment;
- ``apply_to_pod``: the mutating webhook writes it into a pod being created, which covers the pods
  made before the operator patched the template (an intent and its Deployment applied together, as
  ``examples/intent.yaml`` does);
- ``misplaced``: pods already on a node the rule forbids (placed before the rule, or the node was
  relabelled: the affinity is ``IgnoredDuringExecution``) are evicted so they reschedule under it;
  what cannot be moved is reported as ``ResidencyMet=False`` on the intent, never dropped silently.

The rule's expressions are added to every node-selector term the pod already has (terms are ORed,
expressions within a term ANDed), so a user's own affinity is kept and narrowed, never replaced. The
pod template's annotation ``kubeagora.io/residency`` records which expressions kubeagora added, so a
changed or deleted intent removes exactly those.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeagora.model import NodeClass, Tier
from kubeagora.operator.view import Obj

LABEL_REGION = "topology.kubernetes.io/region"
LABEL_TIER = "kubeagora.io/tier"
LABEL_CLASS = "kubeagora.io/node-class"
ANNOTATION_RULE = "kubeagora.io/residency"
"""On the pod template (and so on its pods): the JSON list of the match expressions kubeagora added."""
CONDITION = "ResidencyMet"
EVICT_SHARE_PER_TICK = 0.25
"""At most this share of a Deployment's replicas (at least one) is evicted per tick, like a rolling
update's default maxUnavailable: a move must not take the whole service down at once."""

Expression = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rule:
    """Where the pods of one Deployment may run; None on a dimension = anywhere on it."""

    regions: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    node_classes: frozenset[str] | None = None
    intents: tuple[str, ...] = ()
    """The intents (names) the rule comes from."""

    def expressions(self) -> list[Expression]:
        """The node-selector expressions of the rule (a dimension that allows everything adds none)."""
        out = []
        dimensions: tuple[tuple[str, frozenset[str] | None, frozenset[str]], ...] = (
            (LABEL_REGION, self.regions, frozenset()),
            (LABEL_TIER, self.tiers, frozenset(t.value for t in Tier)),
            (LABEL_CLASS, self.node_classes, frozenset(c.value for c in NodeClass)))
        for key, allowed, everything in dimensions:
            if allowed is not None and allowed != everything:
                out.append({"key": key, "operator": "In", "values": sorted(allowed)})
        return out

    def allows(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with these labels satisfies the rule (a missing label fails it)."""
        return all(labels.get(e["key"]) in e["values"] for e in self.expressions())

    def describe(self) -> str:
        return "; ".join(f"{_WHAT[e['key']]} {', '.join(e['values'])}" for e in self.expressions()) or "anywhere"


_WHAT = {LABEL_REGION: "regions", LABEL_TIER: "tiers", LABEL_CLASS: "node classes"}


def _names(value: Any) -> frozenset[str] | None:
    return frozenset(str(v) for v in value) if isinstance(value, list) and value else None


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return b if a is None else a if b is None else a & b


def rules_by_deployment(intent_objs: Iterable[Obj]) -> dict[str, Rule]:
    """"namespace/deployment" → the rule of every intent that targets it and restricts placement
    (several intents on one Deployment: all of them hold at once)."""
    rules: dict[str, Rule] = {}
    for obj in intent_objs:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        target = spec.get("targetRef") if isinstance(spec, Mapping) else None
        if not isinstance(target, Mapping) or not target.get("name") \
                or target.get("kind", "Deployment") != "Deployment":
            continue
        raw = spec.get("placement")
        raw = raw if isinstance(raw, Mapping) else {}
        rule = Rule(_names(raw.get("regions")), _names(raw.get("tiers")), _names(raw.get("nodeClasses")),
                    (str(meta.get("name")),))
        if not rule.expressions():
            continue
        key = f"{meta.get('namespace') or 'default'}/{target['name']}"
        before = rules.get(key)
        if before is not None:
            rule = Rule(_meet(before.regions, rule.regions), _meet(before.tiers, rule.tiers),
                        _meet(before.node_classes, rule.node_classes), (*before.intents, *rule.intents))
        rules[key] = rule
    return rules


# ---------------------------------------------------------------------------------------------- the pod spec
def _recorded(annotations: Mapping[str, Any] | None) -> list[Expression]:
    raw = (annotations or {}).get(ANNOTATION_RULE)
    try:
        value = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def required_terms(pod_spec: Mapping[str, Any], annotations: Mapping[str, Any] | None,
                   rule: Rule | None) -> tuple[dict[str, Any] | None, str | None]:
    """(the pod spec's new ``requiredDuringSchedulingIgnoredDuringExecution``, the new annotation
    value); None for either means "absent". Expressions recorded as kubeagora's are taken out first,
    then the rule's are added to every term."""
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = copy.deepcopy(affinity.get("requiredDuringSchedulingIgnoredDuringExecution")) or {}
    ours_before = _recorded(annotations)
    terms = []
    for term in required.get("nodeSelectorTerms") or ():
        kept = [e for e in term.get("matchExpressions") or () if e not in ours_before]
        term = {**term, "matchExpressions": kept} if kept else {k: v for k, v in term.items()
                                                                 if k != "matchExpressions"}
        if term.get("matchExpressions") or term.get("matchFields"):
            terms.append(term)  # a term left empty was kubeagora's own: an empty term would match nothing
    ours = rule.expressions() if rule is not None else []
    if ours:
        terms = [{**t, "matchExpressions": [*(t.get("matchExpressions") or ()), *ours]} for t in terms] or [
            {"matchExpressions": ours}]
    if not terms:
        return None, None
    return {**required, "nodeSelectorTerms": terms}, (json.dumps(ours, sort_keys=True) if ours else None)


def template_patch(deployment: Obj, rule: Rule | None) -> dict[str, Any] | None:
    """The merge patch that puts ``rule`` (None: no rule) into the Deployment's pod template, or
    None when the template says so already."""
    template = (deployment.get("spec") or {}).get("template") or {}
    spec, annotations = template.get("spec") or {}, (template.get("metadata") or {}).get("annotations") or {}
    required, recorded = required_terms(spec, annotations, rule)
    current = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required == current and recorded == annotations.get(ANNOTATION_RULE):
        return None
    return {"spec": {"template": {
        "metadata": {"annotations": {ANNOTATION_RULE: recorded}},
        "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}}}}


def apply_to_pod(pod: MutableMapping[str, Any], rule: Rule) -> None:
    """Write ``rule`` into a pod being admitted (in place; kopf turns the change into a JSON patch)."""
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    required, recorded = required_terms(spec, meta.get("annotations"), rule)
    node_affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    if required is None:
        node_affinity.pop("requiredDuringSchedulingIgnoredDuringExecution", None)
    else:
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    annotations = meta.setdefault("annotations", {})
    if recorded is None:
        annotations.pop(ANNOTATION_RULE, None)
    else:
        annotations[ANNOTATION_RULE] = recorded


def recorded_deployments(deployments: Mapping[str, Obj]) -> list[str]:
    """Keys of the Deployments whose template carries kubeagora's rule (to clear when no intent asks)."""
    return [k for k, d in deployments.items()
            if ANNOTATION_RULE in ((((d.get("spec") or {}).get("template") or {}).get("metadata") or {})
                                   .get("annotations") or {})]


# ---------------------------------------------------------------------------------------------- placed pods
@dataclass(frozen=True, slots=True)
class Misplaced:
    namespace: str
    pod: str
    node: str
    why: str


def _labels(obj: Obj) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def misplaced(pods: Sequence[Obj], nodes: Mapping[str, Obj], rule: Rule) -> list[Misplaced]:
    """The pods (live, bound) on a node the rule forbids, with why."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node_name or meta.get("deletionTimestamp"):
            continue
        node = nodes.get(node_name)
        labels = _labels(node) if node is not None else {}
        if node is not None and rule.allows(labels):
            continue
        broken = next((e for e in rule.expressions() if labels.get(e["key"]) not in e["values"]), None)
        why = (f"node {node_name} is gone" if node is None else
               f"{node_name} has {broken['key']}={labels.get(broken['key'], '(none)')}, "
               f"not one of {', '.join(broken['values'])}" if broken else "")
        out.append(Misplaced(str(meta.get("namespace")), str(meta.get("name")), node_name, why))
    return out


def _node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or ())


def allowed_nodes(nodes: Iterable[Obj], rule: Rule) -> list[str]:
    """Ready, schedulable nodes the rule allows: where an evicted pod can go."""
    return [str((n.get("metadata") or {}).get("name")) for n in nodes
            if rule.allows(_labels(n)) and _node_ready(n) and not (n.get("spec") or {}).get("unschedulable")]


def eviction_budget(replicas: int) -> int:
    return max(1, math.ceil(EVICT_SHARE_PER_TICK * max(replicas, 0)))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a tick found about one intent's residency: ``ResidencyMet`` with its reason and message."""

    met: bool
    reason: str
    message: str


def verdict(rule: Rule, wrong: Sequence[Misplaced], targets: Sequence[str], blocked: Sequence[str]) -> Verdict:
    """``targets``: the nodes the rule allows; ``blocked``: pods whose eviction the API refused."""
    where = rule.describe()
    if not wrong:
        return Verdict(True, "WithinPlacement", f"every pod runs within {where}")
    listed = "; ".join(f"{m.pod} on {m.node} ({m.why})" for m in wrong[:5]) + (
        f"; and {len(wrong) - 5} more" if len(wrong) > 5 else "")
    if not targets:
        return Verdict(False, "NoAllowedNode", f"no Ready node within {where} to move to: {listed}")
    if blocked:
        return Verdict(False, "EvictionRefused", f"eviction refused (a PodDisruptionBudget?) for "
                                                 f"{', '.join(blocked[:5])}: {listed}")
    return Verdict(False, "Moving", f"evicted to reschedule within {where}: {listed}")
