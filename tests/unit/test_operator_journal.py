"""The AgentAction trail's trust boundary, without a cluster: answers only from the records this
run created, records where they belong (with their owner), bounded retention, undo within the
record's own namespace and intent, and the record key in a Secret."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tests.unit.operator_objects import checkout_cluster, intent
from tests.unit.test_operator_control_loop import FakeApi
from tests.unit.test_operator_records import SIGNER, awaiting, canary, shadow, stored

from kubeagora.controllers.mas import MasState
from kubeagora.decision import rollout as ro
from kubeagora.kubeapi.client import ApiError
from kubeagora.model import QuarantineNode
from kubeagora.operator import records
from kubeagora.operator.journal import Answer, Journal, Written
from kubeagora.operator.signing import KEY_FIELD, KEY_SECRET, load_or_create_signer
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView

RUN = "a1b2c3"


def journal(api: FakeApi | None = None, keep: int = 100) -> Journal:
    return Journal(api or FakeApi(), "kubeagora-system", RUN, records.Clock(0.0), Telemetry(), SIGNER,  # type: ignore[arg-type]
                   keep)


def state_of(active: tuple[ro.Rollout, ...] = (), finished: tuple[ro.Rollout, ...] = ()) -> MasState:
    return MasState(0, (), None, None, {}, {}, None, ro.RolloutMemory(), active, finished, {}, ())  # type: ignore[arg-type]


def test_answers_come_only_from_the_object_this_run_created_with_who_answered() -> None:
    j = journal()
    view = ClusterView()
    for rid, approval, approver, uid in (("r1", "Approved", "alice", None), ("r2", "Denied", "bob", None),
                                         ("r3", "Approved", None, None),       # nobody named: not an answer
                                         ("r4", "Approved", "mallory", "uid-forged"),  # recreated under our name
                                         ("r5", "Pending", None, None)):
        obj = stored(awaiting(rid), RUN, approval=approval, **({"approver": approver} if approver else {}))
        j.written[rid] = Written("AwaitingApproval", 2, "default", obj["metadata"]["name"], "checkout",
                                 obj["metadata"]["uid"])
        if uid:
            obj["metadata"]["uid"] = uid
        view.apply("agentactions", None, obj)
    # a look-alike in another namespace, with the same name and labels as r6 of this run
    j.written["r6"] = Written("AwaitingApproval", 2, "shop", f"checkout-{RUN}-r6", "checkout", "uid-r6")
    lookalike = stored(awaiting("r6"), RUN, approval="Approved", approver="mallory")
    lookalike["metadata"]["namespace"] = "attacker"
    view.apply("agentactions", None, lookalike)
    assert j.answers(view) == {"r1": Answer("Approved", "alice"), "r2": Answer("Denied", "bob")}


def test_a_service_record_goes_to_its_intents_namespace_owned_by_it_and_a_node_record_to_the_operators() -> None:
    world = checkout_cluster()
    api = FakeApi()
    j = journal(api)
    cordon = ro.propose("r2", [replace(shadow("r1").proposals[0], action=QuarantineNode("edge-cpu-0", "lying"))],
                        _obs())
    cordon = replace(cordon, stage=ro.Stage.AWAITING_APPROVAL, transitions=(*cordon.transitions, ro.Transition(
        100.0, ro.Stage.PROPOSED, ro.Stage.AWAITING_APPROVAL, "shield: privileged-rate")))
    by_service = {b.service.name: b for b in world["bindings"]}
    owner = intent("checkout")
    asyncio.run(j.record(state_of(active=(shadow("r1"), cordon)), by_service, {"default/checkout": owner}, set()))
    created = {b["metadata"]["name"]: (p, b) for p, b in ((p, b) for m, p, b in api.calls if m == "POST")}
    service_path, service_rec = created[f"checkout-{RUN}-r1"]
    assert service_path == records.path("default")
    assert service_rec["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    node_path, node_rec = created[f"cluster-{RUN}-r2"]
    assert node_path == records.path("kubeagora-system")
    assert "ownerReferences" not in node_rec["metadata"]
    statuses = [b for m, p, b in api.calls if m == "PATCH" and p.endswith("/status")]
    assert all(st["status"]["signature"] for st in statuses)


def _obs() -> Any:
    from tests.unit.operator_objects import observe_checkout
    return observe_checkout(checkout_cluster(), 100.0)


def test_retention_keeps_the_newest_records_per_intent_and_withdraws_old_requests() -> None:
    api = FakeApi()
    j = journal(api, keep=3)
    waiting = tuple(awaiting(f"r{i}") for i in range(5))
    for i, r in enumerate(waiting):
        j.written[r.id] = Written("AwaitingApproval", 2, "kubeagora-system", f"cluster-{RUN}-{r.id}", "cluster",
                                  f"uid-{i}", i)
    delivering = canary("r9")
    j.written["r9"] = Written("Canary", 3, "kubeagora-system", f"cluster-{RUN}-r9", "cluster", "uid-9", -5)
    mas = asyncio.run(j.retain(state_of(active=(*waiting, delivering)), 200.0))
    deleted = [p.rsplit("/", 1)[-1] for m, p, _ in api.calls if m == "DELETE"]
    assert deleted == [f"cluster-{RUN}-r0", f"cluster-{RUN}-r1"]
    assert {r.id for r in mas.active} == {"r2", "r3", "r4", "r9"}
    withdrawn = {r.id: r for r in mas.finished}
    assert set(withdrawn) == {"r0", "r1"}
    assert withdrawn["r0"].stage is ro.Stage.REJECTED
    assert "withdrawn" in withdrawn["r0"].transitions[-1].why


def test_after_a_restart_earlier_runs_records_count_toward_retention() -> None:
    api = FakeApi()
    j = journal(api, keep=2)
    old = [stored(replace(canary(f"r{i}"), stage=ro.Stage.APPLIED), "0ld0ld") for i in range(4)]
    for i, o in enumerate(old):
        o["metadata"]["creationTimestamp"] = f"2025-06-15T15:0{i}:00Z"
    forged = stored(replace(canary("r8"), stage=ro.Stage.APPLIED), "0ld0ld")
    forged["metadata"]["namespace"] = "attacker"  # not signed for this namespace: neither adopted nor deleted

    def plan(rec: records.Recovery) -> tuple[list[Any], list[Any]]:
        return [], []

    async def send(_: Any) -> bool:
        return True

    assert asyncio.run(j.recover([*old, forged], "2025-06-15T16:00:00Z", plan, send, patient=False))
    asyncio.run(j.retain(state_of(), 0.0))
    deleted = [p.rsplit("/", 1)[-1] for m, p, _ in api.calls if m == "DELETE"]
    assert deleted == ["checkout-0ld0ld-r0", "checkout-0ld0ld-r1"]


class SecretApi:
    def __init__(self, existing: Mapping[str, Any] | None = None) -> None:
        self.secret = existing
        self.created = 0

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        if self.secret is None:
            raise ApiError("GET", path, 404, b'{"message": "not found"}')
        return self.secret

    async def create(self, path: str, body: Mapping[str, Any], want: bool = False,
                     ok: tuple[int, ...] = ()) -> tuple[int, Any]:
        assert path == "/api/v1/namespaces/ops/secrets"
        assert body["metadata"]["name"] == KEY_SECRET
        self.created += 1
        self.secret = body
        return 201, None


def test_the_record_key_is_made_once_in_the_operators_namespace_and_read_back_after() -> None:
    api = SecretApi()
    first = asyncio.run(load_or_create_signer(api, "ops"))
    assert api.created == 1
    assert api.secret is not None
    assert len(base64.b64decode(api.secret["data"][KEY_FIELD])) == 32
    second = asyncio.run(load_or_create_signer(api, "ops"))
    assert api.created == 1
    assert second.sign({"a": 1}) == first.sign({"a": 1})
