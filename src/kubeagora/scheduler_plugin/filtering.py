"""The filter verb: which of the offered nodes may host a pod, and for the others the rule that failed.

Rules, each failure named in the reason the scheduler records on the pod's events:

- placement: a pod that belongs to an OrchestrationIntent runs only in the regions, tiers and node
  classes its ``spec.placement`` lists (an absent list allows all). No eviction or preemption can
  change a node's labels, so these failures are *unresolvable*.
- trust: a pod of an intent with ``placement.minTrust`` runs only on nodes the operator trusts at least
  that much (its published ``kubeagora.io/trust``; 1 where it published none). Trust recovers, so this
  failure is resolvable.
- accelerators: a pod requesting ``nvidia.com/gpu`` runs only on gpu-class nodes, one requesting
  ``google.com/tpu`` only on tpu-class nodes (unresolvable elsewhere), and only where enough of them
  are free (a resolvable failure: preemption could free some).

A node the cache does not know passes: the extender has nothing to hold against it, and the
scheduler's own plugins still check resources. A pod that belongs to no intent and requests no
accelerator passes everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubeagora.model import NodeClass
from kubeagora.scheduler_plugin.cache import ClusterCache, NodeInfo
from kubeagora.scheduler_plugin.placement import Intent, Placement, combined, intents_of
from kubeagora.scheduler_plugin.workload import GPU_RESOURCE, TPU_RESOURCE, PodDemand


@dataclass(frozen=True, slots=True)
class FilterOutcome:
    passed: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    """Nodes that could host the pod once something changes (e.g. accelerators are freed)."""
    unresolvable: dict[str, str] = field(default_factory=dict)
    """Nodes that cannot host it whatever is evicted (labels, classes)."""


def _listed(values: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(values)) + "]"


def placement_violation(node: NodeInfo, placement: Placement, owner: str) -> str:
    """Why ``placement`` forbids the node ("" if it allows it); ``owner`` names the intent(s)."""
    checks = (("regions", placement.regions, node.region, "region"),
              ("tiers", placement.tiers, node.tier, "tier"),
              ("nodeClasses", placement.node_classes, node.node_class, "node class"))
    for field_name, allowed, value, what in checks:
        if allowed is not None and (value is None or str(value) not in allowed):
            shown = "unlabelled" if value is None else repr(str(value))
            return f"{owner} placement.{field_name}: node {what} {shown} not in {_listed(allowed)}"
    return ""


def accelerator_violation(node: NodeInfo, demand: PodDemand, gpus_allocated: float,
                          tpus_allocated: float) -> tuple[str, bool]:
    """(why the node cannot give the pod its accelerators, whether that is unresolvable); ("", False) if it can."""
    for resource, wanted, node_class, capacity, allocated in (
            (GPU_RESOURCE, demand.gpus, NodeClass.GPU, node.gpus, gpus_allocated),
            (TPU_RESOURCE, demand.tpus, NodeClass.TPU, node.tpus, tpus_allocated)):
        if wanted <= 0:
            continue
        if node.node_class != node_class:
            shown = node.node_class.value if node.node_class else "unlabelled"
            return (f"accelerators: pod requests {wanted:g} {resource}, only {node_class.value} nodes have it "
                    f"(node class {shown})"), True
        free = capacity - allocated
        if free < wanted - 1e-9:
            return (f"accelerators: {max(free, 0.0):g} of {capacity:g} {resource} free, "
                    f"pod requests {wanted:g}"), capacity < wanted - 1e-9
    return "", False


def owner_of(intents: Sequence[Intent]) -> str:
    return "intent " + ", ".join(f"{i.namespace}/{i.name}" for i in intents)


def filter_pod(cache: ClusterCache, demand: PodDemand, names: Sequence[str],
               offered: Mapping[str, NodeInfo] | None = None) -> FilterOutcome:
    """The nodes among ``names`` that may host the pod. ``offered``: nodes as the scheduler sent them
    in full (they take precedence over the cache's copy)."""
    intents = intents_of(demand, cache.intent_snapshot(), cache.selectors)
    placement = combined(i.placement for i in intents)
    restricted = placement.restricts()
    min_trust = placement.min_trust
    if not restricted and demand.accelerators <= 0 and min_trust <= 0:
        return FilterOutcome(list(names))
    owner = owner_of(intents)
    known = cache.nodes if offered is None else {**cache.nodes, **offered}
    out = FilterOutcome([])
    # a placement verdict depends only on (region, tier, class): a few dozen distinct answers per cluster
    verdicts: dict[tuple[str | None, str | None, NodeClass | None], str] = {}
    wants_accelerators = demand.accelerators > 0
    accelerator_classes = {c for c, wanted in ((NodeClass.GPU, demand.gpus), (NodeClass.TPU, demand.tpus))
                           if wanted > 0}
    wrong_class: dict[NodeClass | None, str] = {}
    for name in names:
        node = known.get(name)
        if node is None:
            out.passed.append(name)
            continue
        if restricted:
            key = (node.region, node.tier, node.node_class)
            why = verdicts.get(key)
            if why is None:
                why = verdicts[key] = placement_violation(node, placement, owner)
            if why:
                out.unresolvable[name] = why
                continue
        if min_trust > 0 and node.trust < min_trust:
            out.failed[name] = f"{owner} placement.minTrust: node trusted {node.trust:g} < {min_trust:g}"
            continue
        if wants_accelerators:
            if node.node_class not in accelerator_classes:
                out.unresolvable[name] = wrong_class.get(node.node_class) or wrong_class.setdefault(
                    node.node_class, accelerator_violation(node, demand, 0.0, 0.0)[0])
                continue
            s = cache.slot.get(name)
            gpus_used = float(cache.gpus_allocated[s]) if s is not None else 0.0
            tpus_used = float(cache.tpus_allocated[s]) if s is not None else 0.0
            why, final = accelerator_violation(node, demand, gpus_used, tpus_used)
            if why:
                (out.unresolvable if final else out.failed)[name] = why
                continue
        out.passed.append(name)
    return out
