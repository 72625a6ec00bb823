"""Other autoscalers on an intent's Deployment: HorizontalPodAutoscalers and KEDA ScaledObjects (pure).

An intent and an autoscaler on the same Deployment would fight over its replicas (each undoing the
other's scale every few seconds). The validating webhook refuses an intent whose Deployment already has
one (`conflict_message`); one created afterwards is reported on the intent as the condition
``AutoscalerConflict`` (`conflict_condition`). KEDA drives a Deployment through an HPA it names
``keda-hpa-<scaledobject>``, so a ScaledObject is usually found twice; both are named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CONDITION = "AutoscalerConflict"
HPA_KIND = "HorizontalPodAutoscaler"
SCALED_OBJECT_KIND = "ScaledObject"


@dataclass(frozen=True, slots=True)
class Autoscaler:
    kind: str
    namespace: str
    name: str
    target_kind: str
    target_name: str

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def from_object(kind: str, obj: Mapping[str, Any]) -> Autoscaler | None:
    """An HPA (autoscaling/v1 or v2) or a ScaledObject as an `Autoscaler`; None when it targets nothing."""
    meta = obj.get("metadata") or {}
    ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        return None
    # A ScaledObject's target kind defaults to Deployment; an HPA's is required.
    target_kind = str(ref.get("kind") or ("Deployment" if kind == SCALED_OBJECT_KIND else ""))
    return Autoscaler(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""), target_kind, name)


def on_deployment(namespace: str, deployment: str, autoscalers: Iterable[Autoscaler]) -> list[Autoscaler]:
    """The autoscalers that scale Deployment `namespace`/`deployment`, in a stable order."""
    hits = {a for a in autoscalers
            if a.namespace == namespace and a.target_kind == "Deployment" and a.target_name == deployment}
    return sorted(hits, key=lambda a: (a.kind, a.name))


def conflict_message(namespace: str, deployment: str, found: Sequence[Autoscaler]) -> str:
    """Why the webhook refuses the intent (empty when nothing conflicts)."""
    if not found:
        return ""
    names = ", ".join(a.describe() for a in found)
    return (f"spec.targetRef.name: Deployment {namespace}/{deployment} is already scaled by {names}; an intent and "
            f"an autoscaler would fight over its replicas: delete the autoscaler first, or leave this Deployment "
            f"to it")


def conflict_condition(found: Sequence[Autoscaler], namespace: str, deployment: str) -> tuple[bool, str, str]:
    """(status, reason, message) of the ``AutoscalerConflict`` condition."""
    if not found:
        return False, "NoOtherAutoscaler", f"no HorizontalPodAutoscaler or ScaledObject scales {deployment}"
    kinds = sorted({a.kind for a in found})
    return (True, kinds[0] if len(kinds) == 1 else "SeveralAutoscalers",
            f"{', '.join(a.describe() for a in found)} also scales Deployment {namespace}/{deployment}: the two "
            f"would fight over its replicas; delete one of them")
