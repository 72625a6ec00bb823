"""An intent edited without its tenant's key: the webhook refuses it, and the operator does not act on it.

The attack: someone who may edit OrchestrationIntents in a tenant's namespace (or who edits while the
webhook is down) raises an intent's priority and replica ceiling. On today's main nothing checks who
wrote a spec: the webhook admits it and the operator scales to it. With the policy requiring the
tenant's signature, the webhook refuses the edit naming the annotation, and the operator's loop (a
second enforcement point) leaves the intent unmanaged with condition reason ``SignatureRejected``.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

kopf = pytest.importorskip("kopf")
pytest.importorskip("cryptography")

from tests.unit.operator_objects import checkout_cluster, intent, node_signals, signals  # noqa: E402
from tests.unit.test_operator_control_loop import FakeApi, FakeSignals, loop_over  # noqa: E402

from kubeagora.operator import adapter, admission  # noqa: E402
from kubeagora.trust import intent_signing as signing  # noqa: E402

CHECKOUT = adapter.service_key("default", "checkout")


def tenant_keys() -> tuple[Any, str]:
    private_pem, public_pem = signing.generate_keypair()
    return signing.load_private_key(private_pem, "test"), public_pem.decode()


def policy(public_pem: str) -> dict[str, Any]:
    return {"apiVersion": "kubeagora.io/v1alpha1", "kind": "OrchestrationPolicy", "metadata": {"name": "default"},
            "spec": {"intentSigning": {"tenants": {"retail": {"publicKeys": [public_pem], "required": True}}}}}


def edited_without_the_key(signed: dict[str, Any]) -> dict[str, Any]:
    forged = copy.deepcopy(signed)
    forged["spec"]["priority"] = 1000
    forged["spec"]["replicas"] = {"min": 1, "max": 500}
    return forged


def review(obj: dict[str, Any], pol: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    admission.validate_orchestration_intent(
        body=kopf.Body(obj), old=None if old is None else kopf.Body(old), operation="UPDATE" if old else "CREATE",
        kubeagora_cluster_policies={"default": [pol]}, kubeagora_node_sites={"sites": []})


def test_the_webhook_refuses_an_intent_edited_without_the_key_naming_the_field() -> None:
    key, public = tenant_keys()
    signed = signing.signed(intent("checkout"), key)
    review(signed, policy(public))  # the tenant's own, signed: admitted
    forged = edited_without_the_key(signed)
    with pytest.raises(kopf.AdmissionError) as e:
        review(forged, policy(public), old=signed)
    assert e.value.code == 422
    assert str(e.value).startswith("metadata.annotations[kubeagora.io/signature]: does not verify")


def test_the_webhook_refuses_stripping_the_signature_even_when_the_spec_is_unchanged() -> None:
    key, public = tenant_keys()
    signed = signing.signed(intent("checkout"), key)
    stripped = copy.deepcopy(signed)
    del stripped["metadata"]["annotations"][signing.SIGNATURE_ANNOTATION]
    with pytest.raises(kopf.AdmissionError, match="missing"):
        review(stripped, policy(public), old=signed)


def test_a_signature_replayed_onto_another_intent_is_refused() -> None:
    key, public = tenant_keys()
    signed = signing.signed(intent("checkout"), key)
    other = intent("payments")
    other["metadata"]["annotations"] = dict(signed["metadata"]["annotations"])
    with pytest.raises(kopf.AdmissionError, match="does not verify"):
        review(other, policy(public))


def burst_world() -> tuple[dict[str, Any], FakeSignals]:
    world = checkout_cluster(replicas=2)
    burst = FakeSignals({CHECKOUT: signals(CHECKOUT, offered_rps=2000.0, p95_ms=900.0, p99_ms=2000.0)},
                        {n["metadata"]["name"]: node_signals(n["metadata"]["name"], 0.9) for n in world["nodes"]})
    return world, burst


def run_ticks(intent_obj: dict[str, Any], pol: dict[str, Any], ticks: int = 3) -> FakeApi:
    world, burst = burst_world()
    loop, api = loop_over(world, burst)
    loop.view.apply("intents", None, intent_obj)
    loop.view.apply("policies", None, pol)
    for _ in range(ticks):
        asyncio.run(loop.tick())
    return api


def test_the_operator_acts_on_the_signed_intent() -> None:
    key, public = tenant_keys()
    api = run_ticks(signing.signed(intent("checkout"), key), policy(public))
    assert api.to("PATCH", "/deployments/checkout/scale"), "the signed intent's burst is scaled"


def test_the_operator_does_not_enact_an_intent_edited_without_the_key_and_says_why() -> None:
    """The webhook was down (or bypassed): the forged spec is in the API server. The loop must not act on it."""
    key, public = tenant_keys()
    api = run_ticks(edited_without_the_key(signing.signed(intent("checkout"), key)), policy(public))
    assert not api.to("PATCH", "/deployments/checkout/scale"), "a forged spec was enacted"
    assert not [b for b in api.to("POST", "/agentactions") if b.get("kind") == "AgentAction"]
    status = api.to("PATCH", "/orchestrationintents/checkout/status")[-1]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SignatureRejected")
    assert ready["message"].startswith("metadata.annotations[kubeagora.io/signature]: does not verify")
