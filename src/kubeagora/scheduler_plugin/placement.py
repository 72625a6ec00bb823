"""Which OrchestrationIntents a pod belongs to, and where their placement lets it run (pure).

A pod belongs to an intent when it is in the intent's namespace and its labels match the selector
of the intent's target Deployment (``spec.targetRef``). The intent's ``spec.placement`` lists the
regions (data residency), tiers and node classes its replicas may use; a list that is absent places
no restriction. A pod that several intents claim must satisfy all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeagora.kubeapi.selectors import matches
from kubeagora.scheduler_plugin.workload import PodDemand

ANNOTATION_ORIGIN_REGION = "kubeagora.io/origin-region"
"""Pod annotation: the region the service's users are in (their requests enter at its edge)."""


@dataclass(frozen=True, slots=True)
class Placement:
    regions: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    node_classes: frozenset[str] | None = None
    first_region: str | None = None
    """The first region the intent lists: where its users are assumed to be unless the pod says."""
    min_trust: float = 0.0
    """Only nodes the operator trusts at least this much (``placement.minTrust``; 0: any)."""

    def restricts(self) -> bool:
        return self.regions is not None or self.tiers is not None or self.node_classes is not None


ANYWHERE = Placement()


@dataclass(frozen=True, slots=True)
class Intent:
    namespace: str
    name: str
    target: str
    """The name of the target Deployment, in the intent's namespace."""
    placement: Placement


def _names(value: Any) -> frozenset[str] | None:
    if not isinstance(value, list):
        return None
    return frozenset(str(v) for v in value)


def parse_intent(obj: Mapping[str, Any]) -> Intent | None:
    """The parts of an OrchestrationIntent the extender uses; None when it names no Deployment."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    target = spec.get("targetRef") or {}
    if not isinstance(target, dict) or not target.get("name") or target.get("kind", "Deployment") != "Deployment":
        return None
    raw = spec.get("placement") or {}
    raw = raw if isinstance(raw, dict) else {}
    regions = raw.get("regions")
    first = str(regions[0]) if isinstance(regions, list) and regions else None
    min_trust = raw.get("minTrust")
    trust_floor = float(min_trust) if isinstance(min_trust, int | float) and not isinstance(min_trust, bool) else 0.0
    placement = Placement(_names(regions), _names(raw.get("tiers")), _names(raw.get("nodeClasses")), first,
                          min(max(trust_floor, 0.0), 1.0) if trust_floor == trust_floor else 0.0)
    return Intent(str(meta.get("namespace") or "default"), str(meta.get("name") or ""), str(target["name"]),
                  placement)


def intents_of(demand: PodDemand, intents: Iterable[Intent],
               selectors: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[Intent]:
    """The intents whose target Deployment's selector matches the pod (same namespace)."""
    return [i for i in intents
            if i.namespace == demand.namespace
            and matches(selectors.get((i.namespace, i.target)), demand.labels)]


def combined(placements: Iterable[Placement]) -> Placement:
    """What every placement allows at once (the intersection of each restricted list)."""

    def meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
        return b if a is None else a if b is None else a & b

    out = ANYWHERE
    for p in placements:
        out = Placement(meet(out.regions, p.regions), meet(out.tiers, p.tiers),
                        meet(out.node_classes, p.node_classes), out.first_region or p.first_region,
                        max(out.min_trust, p.min_trust))
    return out
