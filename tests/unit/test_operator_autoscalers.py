"""An HPA or a KEDA ScaledObject created after the intent: the AutoscalerConflict condition names it."""

from __future__ import annotations

from typing import Any

from kubeagora.operator import autoscalers, intent_status

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:01:00Z"


def _obj(name: str, target: str, kind: str | None = "Deployment", namespace: str = "shop") -> dict[str, Any]:
    ref: dict[str, Any] = {"name": target}
    if kind is not None:
        ref["kind"] = kind
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"scaleTargetRef": ref}}


def _found(*pairs: tuple[str, dict[str, Any]]) -> list[autoscalers.Autoscaler]:
    return [a for kind, obj in pairs if (a := autoscalers.from_object(kind, obj)) is not None]


def test_keda_and_its_hpa_both_named_on_the_deployment_they_scale() -> None:
    found = _found(("ScaledObject", _obj("checkout", "checkout", kind=None)),
                   ("HorizontalPodAutoscaler", _obj("keda-hpa-checkout", "checkout")),
                   ("HorizontalPodAutoscaler", _obj("cart", "cart")),
                   ("HorizontalPodAutoscaler", _obj("elsewhere", "checkout", namespace="default")))
    on = autoscalers.on_deployment("shop", "checkout", found)
    assert [a.describe() for a in on] == ["HorizontalPodAutoscaler shop/keda-hpa-checkout",
                                          "ScaledObject shop/checkout"]
    status, reason, message = autoscalers.conflict_condition(on, "shop", "checkout")
    assert (status, reason) == (True, "SeveralAutoscalers")
    assert "keda-hpa-checkout" in message
    assert "shop/checkout" in message


def test_an_autoscaler_without_a_target_is_ignored() -> None:
    assert autoscalers.from_object("HorizontalPodAutoscaler", {"metadata": {"name": "x"}, "spec": {}}) is None


def test_the_condition_turns_true_when_an_hpa_appears_and_keeps_its_transition_time() -> None:
    clear = autoscalers.conflict_condition([], "shop", "checkout")
    first = intent_status.status_patch({}, None, 150, 250, None, [], NOW, True, True, "", clear)["status"]
    (before,) = [c for c in first["conditions"] if c["type"] == autoscalers.CONDITION]
    assert (before["status"], before["reason"]) == ("False", "NoOtherAutoscaler")
    hpa = autoscalers.on_deployment("shop", "checkout", _found(("HorizontalPodAutoscaler", _obj("h", "checkout"))))
    second = intent_status.status_patch(first, None, 150, 250, None, [], LATER, True, True, "",
                                        autoscalers.conflict_condition(hpa, "shop", "checkout"))["status"]
    (after,) = [c for c in second["conditions"] if c["type"] == autoscalers.CONDITION]
    assert (after["status"], after["reason"], after["lastTransitionTime"]) == ("True", "HorizontalPodAutoscaler", LATER)
    assert "HorizontalPodAutoscaler shop/h" in after["message"]
