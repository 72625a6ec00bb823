"""Who may answer an AgentAction, judged by the webhook's handlers called directly (no API server):
the answer names its sender, is given once, and comes from someone RBAC (here a stand-in
authorizer) or the policy allows; node actions need a cluster-wide grant."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

kopf = pytest.importorskip("kopf")

from kubeagora.operator import admission  # noqa: E402

POLICY = {"default": [{"metadata": {"name": "default"},
                       "spec": {"approvers": [{"namespaces": ["shop"], "users": ["olivia"],
                                               "groups": ["shop-oncall"]}]}}]}


def record(approval: str = "Pending", approver: str | None = None, action: str = "Scale") -> Any:
    spec: dict[str, Any] = {"intentRef": {"name": "checkout"}, "agent": "scaling",
                            "action": {"type": action, **({"node": "n1"} if action == "QuarantineNode"
                                                          else {"service": "checkout", "replicas": 4})},
                            "approval": approval}
    if approver is not None:
        spec["approver"] = approver
    return kopf.Body({"metadata": {"name": "checkout-abc-r1", "namespace": "shop"}, "spec": spec})


class Grants:
    """A stand-in for RBAC: (user, namespace) pairs that may approve; "" = cluster-wide."""

    def __init__(self, *grants: tuple[str, str]) -> None:
        self.grants = set(grants)
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, userinfo: Mapping[str, Any], namespace: str, name: str) -> bool:
        self.asked.append((userinfo["username"], namespace))
        return (userinfo["username"], namespace) in self.grants


def answer(new: Any, user: str, groups: tuple[str, ...] = (), grants: Grants | None = None,
           old: Any = None) -> None:
    admission.configure_admission(kopf.OperatorSettings(), "127.0.0.1", managed_name=None, certfile=None,
                                  authorizer=grants or Grants())
    asyncio.run(admission.validate_agent_action_answer(
        body=new, old=old if old is not None else record(), userinfo={"username": user, "groups": list(groups)},
        namespace="shop", name="checkout-abc-r1", kubeagora_cluster_policies=POLICY))


def refused(*args: Any, **kw: Any) -> str:
    with pytest.raises(kopf.AdmissionError) as e:
        answer(*args, **kw)
    return str(e.value)


def test_the_mutating_handler_writes_who_changed_the_approval() -> None:
    patch = kopf.Patch()
    admission.record_approver(body=record("Approved"), old=record(), userinfo={"username": "alice"}, patch=patch)
    assert dict(patch) == {"spec": {"approver": "alice"}}
    untouched = kopf.Patch()
    admission.record_approver(body=record(), old=record(), userinfo={"username": "alice"}, patch=untouched)
    assert not untouched


def test_a_user_rbac_lets_approve_in_the_namespace_may_answer() -> None:
    grants = Grants(("alice", "shop"))
    answer(record("Approved", "alice"), "alice", grants=grants)
    answer(record("Denied", "alice"), "alice", grants=grants)
    assert grants.asked == [("alice", "shop"), ("alice", "shop")]


def test_the_policy_names_approvers_by_user_or_group() -> None:
    answer(record("Approved", "olivia"), "olivia")
    answer(record("Approved", "sam"), "sam", ("system:authenticated", "shop-oncall"))


@pytest.mark.parametrize(("new", "user", "message"), [
    (record("Approved", "mallory"), "mallory", "mallory may not answer this AgentAction"),
    (record("Approved", "alice"), "mallory", "spec.approver: must be the user who answers (mallory)"),
    (record("Approved"), "alice", "spec.approver: must be the user who answers"),
    (record("Pending", "alice"), "alice", "spec.approver: names who answered"),
    (record("Approved", "olivia", action="QuarantineNode"), "olivia", "needs RBAC to approve agentactions"),
])
def test_an_answer_from_the_wrong_user_or_naming_someone_else_is_refused(new: Any, user: str, message: str) -> None:
    assert message in refused(new, user, grants=Grants(("alice", "shop")))


def test_an_answer_is_given_once() -> None:
    text = refused(record("Denied", "alice"), "alice", grants=Grants(("alice", "shop")),
                   old=record("Approved", "bob"))
    assert "already answered (Approved)" in text


def test_a_node_action_needs_a_cluster_wide_grant_even_for_a_namespace_approver() -> None:
    """A quarantine touches every tenant on the node: a grant in one namespace is not enough."""
    node_record = record("Approved", "alice", action="QuarantineNode")
    assert "cluster-wide" in refused(node_record, "alice", grants=Grants(("alice", "shop")))
    grants = Grants(("root", ""))
    answer(record("Approved", "root", action="QuarantineNode"), "root", grants=grants)
    assert grants.asked == [("root", "")]


def test_an_update_that_leaves_the_answer_alone_is_admitted_without_asking() -> None:
    grants = Grants()
    answer(record(), "anyone", grants=grants, old=record())
    assert grants.asked == []
