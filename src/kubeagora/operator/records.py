"""A decision's rollout ↔ its AgentAction object (pure).

Every delivered or screened decision becomes an AgentAction: the action, the agent and its reason,
the predicted effect, the shield's and the twin's verdicts, the stage and every transition. A
service's record lives in its intent's namespace and is owned by the intent (garbage collected with
it); a node's record (a quarantine) lives in the operator's own namespace, where tenants cannot
write. Every record carries the operator's signature (``signing``) over what it would act on.

The API server is the operator's memory: what a rollout would need after a restart is in the object
(the stage, and in ``status.rollback`` the actions that undo a canary), so a new operator process
finishes what the old one left — for records whose signature holds, and only on the intent the
record belongs to, in the record's own namespace:

- a rollout left in Canary is rolled back: its recorded undo actions are enacted and the state
  becomes RolledBack (the canary's health can no longer be judged against its shadow baseline);
- a rollout left in Shadow had enacted nothing: it becomes Rejected, and the agents propose again
  from what they then observe;
- a rollout left AwaitingApproval becomes Rejected (the situation it answered has moved on): the
  agents propose anew, and a person approves the new AgentAction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeagora.decision import rollout as ro
from kubeagora.model import (
    Action,
    LiftQuarantine,
    Migrate,
    NodeAction,
    Place,
    QuarantineNode,
    Scale,
    SetConcurrency,
    ShedLoad,
)
from kubeagora.operator.signing import RecordSigner
from kubeagora.operator.view import Obj

GROUP, VERSION = "kubeagora.io", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
LABEL_INTENT = "kubeagora.io/intent"
LABEL_RUN = "kubeagora.io/operator-run"
STATE_PROPOSED = "Proposed"
IN_FLIGHT = (ro.Stage.SHADOW.value, ro.Stage.CANARY.value, ro.Stage.AWAITING_APPROVAL.value)


def path(namespace: str, name: str | None = None, status: bool = False) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/agentactions"
    if name is None:
        return base
    return f"{base}/{name}/status" if status else f"{base}/{name}"


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_name(intent: str, run: str, rollout_id: str) -> str:
    """``<intent>-<run>-<rollout id>``, a DNS subdomain; a long intent name is cut, never the ids
    (``approvals`` reads the rollout id back from the name's end)."""
    suffix = re.sub(r"[^a-z0-9-]", "-", f"-{run}-{rollout_id}".lower())
    head = re.sub(r"[^a-z0-9-]", "-", intent.lower())[: 253 - len(suffix)].strip("-")
    return (head + suffix).strip("-")


def label_value(text: str) -> str:
    """``text`` as a label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", text)[:63].strip("-._")


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(float(x)) else None


def action_spec(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(action).__name__}
    if isinstance(action, QuarantineNode | LiftQuarantine):
        out["node"] = action.node
        return out
    out["service"] = action.service
    if isinstance(action, Scale):
        out["replicas"] = int(action.replicas)
    elif isinstance(action, Place):
        out["node"] = action.node
    elif isinstance(action, Migrate):
        out["fromNode"], out["toNode"] = action.from_node, action.to_node
    elif isinstance(action, SetConcurrency):
        out["concurrency"] = int(action.concurrency)
    elif isinstance(action, ShedLoad):
        out["fraction"] = action.fraction
    return out


def action_from_spec(spec: Mapping[str, Any]) -> Action:
    """The inverse of ``action_spec`` (for a rollout's recorded undo actions after a restart)."""
    kind, service = spec.get("type"), str(spec.get("service", ""))
    why = "recorded rollback"
    if kind == "Scale":
        return Scale(service, int(spec["replicas"]), why)
    if kind == "Place":
        return Place(service, str(spec["node"]), why)
    if kind == "Migrate":
        return Migrate(service, str(spec["fromNode"]), str(spec["toNode"]), why)
    if kind == "SetConcurrency":
        return SetConcurrency(service, int(spec["concurrency"]), why)
    if kind == "ShedLoad":
        return ShedLoad(service, float(spec["fraction"]), why)
    if kind == "QuarantineNode":
        return QuarantineNode(str(spec["node"]), why)
    if kind == "LiftQuarantine":
        return LiftQuarantine(str(spec["node"]), why)
    raise ValueError(f"unknown action type {kind!r}")


def worth_recording(rollout: ro.Rollout) -> bool:
    """Everything delivered, held for a person or refused by the shield or twin; not the proposals
    dropped before delivery (conflicts, hysteresis): those stay in the in-memory log for ``explain``."""
    if rollout.stage is not ro.Stage.REJECTED:
        return True
    return any(not v.allowed for v in rollout.shield) or (rollout.twin is not None and not rollout.twin.accepted)


@dataclass(frozen=True, slots=True)
class Clock:
    """Loop time (seconds since the operator started) → wall clock."""

    started_epoch_s: float

    def wall(self, t: float) -> str:
        return iso(self.started_epoch_s + t)


def is_node_action(action: Action) -> bool:
    """Actions on a node (shared by every tenant): recorded in the operator's namespace."""
    return isinstance(action, NodeAction)


def owner_reference(intent: Obj) -> dict[str, Any]:
    """The intent as the owner of its AgentActions (deleted with it by the garbage collector)."""
    meta = intent.get("metadata") or {}
    return {"apiVersion": API_VERSION, "kind": "OrchestrationIntent", "name": str(meta.get("name")),
            "uid": str(meta.get("uid")), "blockOwnerDeletion": False}


def manifest(rollout: ro.Rollout, namespace: str, intent: str, run: str, clock: Clock,
             owner: Obj | None = None) -> dict[str, Any]:
    """``owner``: the intent object (its uid), for service actions; None for node actions."""
    p = rollout.proposals[0]
    spec: dict[str, Any] = {
        "intentRef": {"name": intent},
        "agent": ", ".join(rollout.agents),
        "action": action_spec(p.action),
        "reason": p.reason,
        "risk": round(float(rollout.risk), 3),
        "predicted": {},
    }
    p99, replicas = _num(p.predicted_effect.get("p99_ms")), _num(p.predicted_effect.get("replicas"))
    if p99 is not None:
        spec["predicted"]["p99Ms"] = round(p99, 1)
    if replicas is not None:
        spec["predicted"]["replicas"] = round(replicas)
    if rollout.twin is not None:
        t = rollout.twin
        worst = [x for x in t.candidate.p99_ms if math.isfinite(x)]
        spec["twin"] = {"verdict": "accepted" if t.accepted else "rejected",
                        "reason": "; ".join(t.reasons) or "predicted within the risk threshold",
                        **({"p99Ms": round(max(worst), 1)} if worst else {})}
    if rollout.stage is ro.Stage.AWAITING_APPROVAL:
        spec["approval"] = "Pending"
    metadata: dict[str, Any] = {"name": object_name(intent, run, rollout.id), "namespace": namespace,
                                "labels": {LABEL_INTENT: label_value(intent), LABEL_RUN: run}}
    if owner is not None and (owner.get("metadata") or {}).get("uid"):
        metadata["ownerReferences"] = [owner_reference(owner)]
    return {"apiVersion": API_VERSION, "kind": "AgentAction", "metadata": metadata, "spec": spec}


def status(rollout: ro.Rollout, clock: Clock, message: str | None = None) -> dict[str, Any]:
    last = rollout.transitions[-1]
    body: dict[str, Any] = {
        "state": rollout.stage.value,
        "message": message or last.why,
        "since": clock.wall(last.at_s),
        "transitions": [{"at": clock.wall(t.at_s), "from": t.from_stage.value, "to": t.to_stage.value,
                         "reason": t.why} for t in rollout.transitions[1:]][-20:],
    }
    if rollout.rollback_actions:
        body["rollback"] = [action_spec(a) for a in rollout.rollback_actions]
    answered = answered_by(rollout)
    if answered:
        body["answeredBy"] = answered
    return {"status": body}


def answered_by(rollout: ro.Rollout) -> str | None:
    """Who approved or denied the rollout (``ro.approve``/``ro.deny`` name them in the transition)."""
    for t in reversed(rollout.transitions):
        if t.from_stage is ro.Stage.AWAITING_APPROVAL:
            for prefix in ("approved by ", "denied by "):
                if t.why.startswith(prefix):
                    return t.why[len(prefix):]
    return None


# ---------------------------------------------------------------------------------------------- signatures
def payload(namespace: str, name: str, intent: str, action: Mapping[str, Any],
            rollback: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the operator signs: everything a later run would act on, and where."""
    return {"namespace": namespace, "name": name, "intent": intent, "action": dict(action),
            "rollback": [dict(a) for a in rollback]}


def sign_status(patch: dict[str, Any], rollout: ro.Rollout, namespace: str, name: str, intent: str,
                signer: RecordSigner) -> dict[str, Any]:
    """``patch`` (from ``status``) with the signature over the record as it will then stand."""
    body = patch["status"]
    body["signature"] = signer.sign(payload(namespace, name, intent, action_spec(rollout.proposals[0].action),
                                            body.get("rollback") or ()))
    return patch


def payload_of(obj: Obj) -> dict[str, Any]:
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    rollback = st.get("rollback") or ()
    return payload(str(meta.get("namespace")), str(meta.get("name")), str((spec.get("intentRef") or {}).get("name")),
                   spec.get("action") or {}, [a for a in rollback if isinstance(a, Mapping)])


def signed_by(obj: Obj, signer: RecordSigner) -> bool:
    """Whether the operator wrote this record (as it now stands: nothing it would act on was edited)."""
    try:
        return signer.verify(payload_of(obj), (obj.get("status") or {}).get("signature"))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------- restarts
@dataclass(frozen=True, slots=True)
class Recovery:
    """What a fresh operator does with one AgentAction an earlier process left in flight."""

    namespace: str
    name: str
    intent: str
    undo: tuple[Action, ...]
    status_patch: dict[str, Any]


def undo_actions(specs: Sequence[Mapping[str, Any]]) -> tuple[Action, ...]:
    """A record's undo actions; a node action is never one (a quarantine is lifted by the sentinel)."""
    actions = tuple(action_from_spec(a) for a in specs)
    if any(is_node_action(a) for a in actions):
        raise ValueError("a node action is not an undo action")
    return actions


def recoveries(objects: Sequence[Obj], run: str, now_iso: str, signer: RecordSigner) -> tuple[list[Recovery],
                                                                                               list[str]]:
    """AgentActions of other runs left in flight and signed by this operator → roll back or reject
    (see the module doc); and the names ("namespace/name") of in-flight records it did not write,
    which are left alone."""
    out: list[Recovery] = []
    foreign: list[str] = []
    for obj in objects:
        meta, st = obj.get("metadata") or {}, obj.get("status") or {}
        state = st.get("state")
        if state not in IN_FLIGHT or (meta.get("labels") or {}).get(LABEL_RUN) == run:
            continue
        if not signed_by(obj, signer):
            foreign.append(f"{meta.get('namespace')}/{meta.get('name')}")
            continue
        transitions = list(st.get("transitions") or ())
        if state == ro.Stage.CANARY.value:
            try:
                undo = undo_actions(st.get("rollback") or ())
            except (KeyError, TypeError, ValueError):
                foreign.append(f"{meta.get('namespace')}/{meta.get('name')}")
                continue
            to = ro.Stage.ROLLED_BACK.value
            why = "the operator restarted during the canary: its undo actions are enacted"
        elif state == ro.Stage.SHADOW.value:
            undo, to = (), ro.Stage.REJECTED.value
            why = "the operator restarted during the shadow (nothing was enacted): dropped, the agents propose anew"
        else:
            undo, to = (), ro.Stage.REJECTED.value
            why = "the operator restarted before a person answered: dropped, the agents propose anew"
        transitions.append({"at": now_iso, "from": state, "to": to, "reason": why})
        intent = str(((obj.get("spec") or {}).get("intentRef") or {}).get("name"))
        out.append(Recovery(str(meta.get("namespace")), str(meta.get("name")), intent, undo,
                            {"status": {**st, "state": to, "message": why, "since": now_iso,
                                        "transitions": transitions[-20:]}}))
    return out, foreign
