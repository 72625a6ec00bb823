"""A decision's rollout ↔ its AgentAction object; what a restarted operator finishes; people's answers."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson
import pytest
from tests.unit.operator_objects import checkout_cluster, observe_checkout

from kubeagora.agents.base import Proposal
from kubeagora.decision import rollout as ro
from kubeagora.decision.shield import Rejection, Violation
from kubeagora.decision.twin import ArmOutcome, TwinVerdict
from kubeagora.model import (
    Action,
    LiftQuarantine,
    Migrate,
    Observation,
    Place,
    QuarantineNode,
    Scale,
    SetConcurrency,
    ShedLoad,
)
from kubeagora.operator import adapter, enact, records
from kubeagora.operator.signing import RecordSigner

CHECKOUT = adapter.service_key("default", "checkout")

RUN, OTHER_RUN = "a1b2c3", "9f8e7d"
CLOCK = records.Clock(1_750_000_000.0)  # 2025-06-15T15:06:40Z
SIGNER = RecordSigner(b"k" * 32)
NOW = "2025-06-15T16:00:00Z"
POLICY = ro.RolloutPolicy(shadow_s=30.0, canary_s=60.0)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LONG_INTENT = ("checkout." + ".".join(["storefront-eu-west"] * 14))[:250]
"""A valid intent name (a DNS subdomain of 250 characters)."""


def twin(accepted: bool = True, p99_ms: float = 110.0) -> TwinVerdict:
    arm = ArmOutcome((p99_ms,), p99_ms / 250.0, 0.0, 0.0, 12_000.0)
    return TwinVerdict(accepted, () if accepted else ("checkout: predicted p99 rises past 250 ms",), arm, arm,
                       0.5, 120.0, (0, 1))


def scale_down(replicas: int = 1) -> Proposal:
    return Proposal("cost_energy", Scale(CHECKOUT, replicas, "idle for 300 s"), "checkout: 20 % of Ready capacity",
                    inputs={"load_ratio": 0.2}, predicted_effect={"p99_ms": 140.0, "replicas": -1.0}, risk=0.2)


def world_at(t: float, **figures: Any) -> Observation:
    return observe_checkout(checkout_cluster(replicas=2), t, **figures)


def shadow(rid: str = "r7", t: float = 100.0) -> ro.Rollout:
    obs = world_at(t)
    r = ro.screen(ro.propose(rid, [scale_down()], obs), t, [], twin(), POLICY)
    assert r.stage is ro.Stage.SHADOW
    return r


def canary(rid: str = "r7") -> ro.Rollout:
    r = shadow(rid)
    for t in (110.0, 120.0, 130.0):
        r, _ = ro.advance(r, world_at(t), POLICY)
    assert r.stage is ro.Stage.CANARY
    return r


def awaiting(rid: str = "r9") -> ro.Rollout:
    obs = world_at(100.0)
    risky = replace(scale_down(), risk=0.9)
    r = ro.screen(ro.propose(rid, [risky], obs), 100.0, [], twin(), POLICY)
    assert r.stage is ro.Stage.AWAITING_APPROVAL
    return r


def stored(r: ro.Rollout, run: str, intent: str = "checkout", **spec: Any) -> dict[str, Any]:
    """The AgentAction as the API server keeps it: manifest, then its signed status subresource."""
    obj = records.manifest(r, "default", intent, run, CLOCK)
    obj["spec"].update(spec)
    obj["metadata"]["uid"] = f"uid-{obj['metadata']['name']}"
    obj.update(records.sign_status(records.status(r, CLOCK), r, "default", obj["metadata"]["name"], intent, SIGNER))
    return obj


# ---------------------------------------------------------------------------------------------- the object
def test_the_manifest_is_a_valid_agentaction_of_this_run() -> None:
    r = shadow()
    obj = records.manifest(r, "default", "checkout", RUN, CLOCK)
    assert (obj["apiVersion"], obj["kind"]) == ("kubeagora.io/v1alpha1", "AgentAction")
    meta = obj["metadata"]
    assert DNS_SUBDOMAIN.match(meta["name"])
    assert meta["name"] == f"checkout-{RUN}-r7"
    assert meta["namespace"] == "default"
    assert meta["labels"] == {records.LABEL_INTENT: "checkout", records.LABEL_RUN: RUN}
    spec = obj["spec"]
    assert spec["intentRef"] == {"name": "checkout"}
    assert spec["agent"] == "cost_energy"
    assert spec["action"] == {"type": "Scale", "service": CHECKOUT, "replicas": 1}
    assert spec["reason"] == "checkout: 20 % of Ready capacity"
    assert spec["risk"] == 0.2
    assert spec["predicted"] == {"p99Ms": 140.0, "replicas": -1}
    assert spec["twin"] == {"verdict": "accepted", "reason": "predicted within the risk threshold", "p99Ms": 110.0}
    assert "approval" not in spec
    orjson.dumps(obj)


def test_names_stay_valid_subdomains_that_end_in_the_rollout_id_and_labels_stay_valid() -> None:
    long_intent = LONG_INTENT
    assert DNS_SUBDOMAIN.match(long_intent)
    names = set()
    for rid in ("r7", "r8", "r123"):
        obj = records.manifest(shadow(rid), "default", long_intent, RUN, CLOCK)
        name = obj["metadata"]["name"]
        assert DNS_SUBDOMAIN.match(name), name
        assert len(name) <= 253
        assert name.endswith(f"-{rid}")
        names.add(name)
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63
            assert LABEL_VALUE.match(value), value
        assert obj["metadata"]["labels"][records.LABEL_RUN] == RUN
        assert obj["spec"]["intentRef"] == {"name": long_intent}
    assert len(names) == 3


def test_an_intent_name_with_dots_or_capitals_still_makes_a_valid_name() -> None:
    name = records.object_name("Shop.Checkout", RUN, "r1")
    assert DNS_SUBDOMAIN.match(name)
    assert name.endswith("-r1")


def test_a_rollout_awaiting_a_person_asks_for_approval() -> None:
    obj = records.manifest(awaiting(), "default", "checkout", RUN, CLOCK)
    assert obj["spec"]["approval"] == "Pending"


def test_a_twin_rejection_is_recorded_with_its_reason() -> None:
    obs = world_at(100.0)
    r = ro.screen(ro.propose("r3", [scale_down()], obs), 100.0, [], twin(False, 400.0), POLICY)
    spec = records.manifest(r, "default", "checkout", RUN, CLOCK)["spec"]
    assert spec["twin"] == {"verdict": "rejected", "reason": "checkout: predicted p99 rises past 250 ms",
                            "p99Ms": 400.0}
    assert records.status(r, CLOCK)["status"]["state"] == "Rejected"


def test_the_status_has_the_stage_every_transition_and_the_canarys_undo() -> None:
    r = canary()
    body = records.status(r, CLOCK)["status"]
    assert body["state"] == "Canary"
    assert body["since"] == "2025-06-15T15:08:50Z"  # the clock's start + 130 s
    assert [(t["from"], t["to"]) for t in body["transitions"]] == [("Proposed", "Shadow"), ("Shadow", "Canary")]
    assert body["transitions"][0]["at"] == "2025-06-15T15:08:20Z"
    assert body["message"] == r.transitions[-1].why
    # the canary took one replica away: what undoes it is the Deployment back at 2
    assert body["rollback"] == [{"type": "Scale", "service": CHECKOUT, "replicas": 2}]
    assert "rollback" not in records.status(shadow(), CLOCK)["status"]
    assert records.status(r, CLOCK, "autonomy observe")["status"]["message"] == "autonomy observe"


@pytest.mark.parametrize("action", [
    Scale(CHECKOUT, 4, "x"), Place(CHECKOUT, "edge-cpu-0", "x"),
    Migrate(CHECKOUT, "edge-cpu-0", "fog-cpu-0", "x"), SetConcurrency(CHECKOUT, 8, "x"),
    ShedLoad(CHECKOUT, 0.25, "x"), QuarantineNode("edge-cpu-0", "x"), LiftQuarantine("edge-cpu-0", "x"),
])
def test_every_action_type_round_trips_through_its_spec(action: Action) -> None:
    spec = records.action_spec(action)
    assert spec["type"] == type(action).__name__
    back = records.action_from_spec(orjson.loads(orjson.dumps(spec)))
    assert back == replace(action, reason="recorded rollback")


def test_an_unknown_action_type_is_refused() -> None:
    with pytest.raises(ValueError, match="Reboot"):
        records.action_from_spec({"type": "Reboot", "node": "edge-cpu-0"})


def test_what_is_worth_an_agentaction() -> None:
    obs = world_at(100.0)
    assert records.worth_recording(shadow())
    assert records.worth_recording(canary())
    assert records.worth_recording(awaiting())
    hard = Rejection(scale_down(), Violation("replica-bounds", "below min 1", {"replicas": 0}))
    refused = ro.screen(ro.propose("r4", [scale_down()], obs), 100.0, [hard], None, POLICY)
    assert refused.stage is ro.Stage.REJECTED
    assert records.worth_recording(refused)
    twin_said_no = ro.screen(ro.propose("r5", [scale_down()], obs), 100.0, [], twin(False), POLICY)
    assert records.worth_recording(twin_said_no)
    # dropped before delivery (a conflict, hysteresis): no verdict, no object
    proposed = ro.propose("r6", [scale_down()], obs)
    dropped = replace(proposed, stage=ro.Stage.REJECTED, transitions=(*proposed.transitions, ro.Transition(
        100.0, ro.Stage.PROPOSED, ro.Stage.REJECTED, "scale reverses one within 300 s")))
    assert not records.worth_recording(dropped)


# ---------------------------------------------------------------------------------------------- restarts
def test_a_canary_left_by_an_earlier_run_is_rolled_back_with_its_recorded_undo() -> None:
    obj = stored(canary(), OTHER_RUN)
    (rec,), foreign = records.recoveries([obj], RUN, NOW, SIGNER)
    assert not foreign
    assert (rec.namespace, rec.name, rec.intent) == ("default", f"checkout-{OTHER_RUN}-r7", "checkout")
    assert rec.undo == (Scale(CHECKOUT, 2, "recorded rollback"),)
    st = rec.status_patch["status"]
    assert st["state"] == "RolledBack"
    assert st["since"] == "2025-06-15T16:00:00Z"
    assert st["transitions"][-1] == {"at": "2025-06-15T16:00:00Z", "from": "Canary", "to": "RolledBack",
                                     "reason": st["message"]}
    assert len(st["transitions"]) == 3
    # the undo is enactable: the Deployment goes back to 2 replicas
    world = checkout_cluster(replicas=1)
    (req,), _ = enact.plan(rec.undo, {b.service.name: b for b in world["bindings"]}, world["deployments"],
                           world["pods"], {})
    assert req.body == {"spec": {"replicas": 2}}


def test_shadows_and_unanswered_approvals_of_an_earlier_run_are_rejected_without_undo() -> None:
    objs = [stored(shadow("r1"), OTHER_RUN), stored(awaiting("r2"), OTHER_RUN)]
    recs, _ = records.recoveries(objs, RUN, NOW, SIGNER)
    assert [(r.name.rsplit("-", 1)[-1], r.undo, r.status_patch["status"]["state"]) for r in recs] == [
        ("r1", (), "Rejected"), ("r2", (), "Rejected")]
    assert "shadow" in recs[0].status_patch["status"]["message"]
    assert "before a person answered" in recs[1].status_patch["status"]["message"]
    assert recs[1].status_patch["status"]["transitions"][-1]["from"] == "AwaitingApproval"


def test_this_runs_objects_and_finished_ones_are_left_alone() -> None:
    applied = replace(canary("r3"), stage=ro.Stage.APPLIED)
    objs = [stored(canary("r1"), RUN), stored(shadow("r2"), RUN), stored(applied, OTHER_RUN)]
    proposed = stored(shadow("r4"), OTHER_RUN)
    proposed["status"]["state"] = records.STATE_PROPOSED  # autonomy observe: recorded, never enacted
    no_status = records.manifest(shadow("r5"), "default", "checkout", OTHER_RUN, CLOCK)  # created, status not yet
    assert records.recoveries([*objs, proposed, no_status], RUN, NOW, SIGNER) == ([], [])


# ---------------------------------------------------------------------------------------------- signatures
def test_a_record_whose_undo_or_target_was_edited_or_that_was_never_signed_is_not_recovered() -> None:
    """What a tenant with write access to AgentActions might try (finding 1 of the security review)."""
    edited_undo = stored(canary("r1"), OTHER_RUN)
    edited_undo["status"]["rollback"] = [{"type": "Scale", "service": "checkout", "replicas": 0}]
    moved = stored(canary("r2"), OTHER_RUN)
    moved["metadata"]["namespace"] = "attacker"
    other_key = stored(canary("r3"), OTHER_RUN)
    other_key["status"]["signature"] = RecordSigner(b"x" * 32).sign(records.payload_of(other_key))
    unsigned = stored(canary("r4"), OTHER_RUN)
    del unsigned["status"]["signature"]
    node_undo = stored(canary("r5"), OTHER_RUN)
    node_undo["status"]["rollback"] = [{"type": "QuarantineNode", "node": "control-plane"}]
    node_undo["status"]["signature"] = SIGNER.sign(records.payload_of(node_undo))  # even when signed
    recs, foreign = records.recoveries([edited_undo, moved, other_key, unsigned, node_undo], RUN, NOW, SIGNER)
    assert recs == []
    assert [f.rsplit("-", 1)[-1] for f in foreign] == ["r1", "r2", "r3", "r4", "r5"]
    assert records.signed_by(stored(canary("r6"), OTHER_RUN), SIGNER)


def test_a_service_record_is_owned_by_its_intent_and_a_node_record_by_none() -> None:
    owner = {"metadata": {"name": "checkout", "namespace": "default", "uid": "uid-intent"}}
    obj = records.manifest(shadow(), "default", "checkout", RUN, CLOCK, owner)
    assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "kubeagora.io/v1alpha1",
                                                   "kind": "OrchestrationIntent", "name": "checkout",
                                                   "uid": "uid-intent", "blockOwnerDeletion": False}]
    assert "ownerReferences" not in records.manifest(shadow(), "ops", "cluster", RUN, CLOCK)["metadata"]
    assert records.is_node_action(QuarantineNode("n1"))
    assert not records.is_node_action(Scale("checkout", 2))


def test_the_path_of_agentactions_and_their_status() -> None:
    assert records.path("shop") == "/apis/kubeagora.io/v1alpha1/namespaces/shop/agentactions"
    assert records.path("shop", "a") == "/apis/kubeagora.io/v1alpha1/namespaces/shop/agentactions/a"
    assert records.path("shop", "a", status=True) == "/apis/kubeagora.io/v1alpha1/namespaces/shop/agentactions/a/status"
    assert records.iso(0.0) == "1970-01-01T00:00:00Z"


def test_a_record_verifies_as_the_api_server_stores_it_whole_floats_as_integers() -> None:
    """An integer field written as 4.0 comes back as 4; the signature must not depend on it."""
    obj = stored(canary("r1"), OTHER_RUN)
    obj["status"]["rollback"] = [{"type": "Scale", "service": "checkout", "replicas": 2.0}]
    obj["status"]["signature"] = SIGNER.sign(records.payload_of(obj))
    obj["status"]["rollback"] = [{"type": "Scale", "service": "checkout", "replicas": 2}]
    assert records.signed_by(obj, SIGNER)
    assert records.action_spec(Scale("checkout", 4.0, "mpc"))["replicas"] == 4  # type: ignore[arg-type]
