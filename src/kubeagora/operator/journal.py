"""The AgentAction trail as the loop keeps it: write, sign, answer, retain, recover.

The trust boundary around records (see ``docs/security.md``):

- the operator acts only on records it wrote: a person's answer is read from the record this run
  created (its namespace, name and uid), never matched by a label or a name; after a restart, only
  records whose signature holds are finished (``records.recoveries``), and their undo actions are
  resolved within the record's namespace, on the intent it names;
- a service's record lives in its intent's namespace and is owned by the intent; a node's record
  (a quarantine) lives in the operator's namespace, where only cluster administrators approve;
- per intent at most ``keep_per_intent`` records are kept, the newest; an older one still awaiting
  a person is withdrawn first (its rollout Rejected), so a flood of requests cannot pile up objects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubeagora.controllers.mas import MasState
from kubeagora.decision import rollout as ro
from kubeagora.kubeapi.client import Api, ApiError
from kubeagora.model import NodeAction
from kubeagora.operator import adapter, records
from kubeagora.operator.signing import RecordSigner
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView, Obj

log = logging.getLogger("kubeagora.operator")

NODE_INTENT = "cluster"
"""The intent name node actions' records carry (they belong to no tenant)."""
FINISHED = ("Applied", "RolledBack", "Rejected", "Proposed")


@dataclass
class Written:
    """What this run's record of one rollout says now, and where it is."""

    stage: str
    transitions: int
    namespace: str
    name: str
    intent: str
    uid: str = ""
    order: int = 0
    """Written order (earlier runs' records below 0): the oldest go first."""


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: str
    """Approved | Denied."""
    by: str
    """Who answered (``spec.approver``, set and checked by the admission webhook)."""


@dataclass
class Journal:
    api: Api
    namespace: str
    """The operator's own namespace: node actions' records."""
    run: str
    clock: records.Clock
    telemetry: Telemetry
    signer: RecordSigner
    keep_per_intent: int = 100
    written: dict[str, Written] = field(default_factory=dict)
    """Rollout id (or "run/name" for an earlier run's record) → its record."""
    sequence: int = 0

    # ------------------------------------------------------------------------------------------ answers
    def answers(self, view: ClusterView) -> dict[str, Answer]:
        """Rollout id → a person's answer, for this run's records awaiting one (the object must be the
        one this run created: same namespace, name and uid)."""
        out: dict[str, Answer] = {}
        for rid, w in self.written.items():
            if w.stage != ro.Stage.AWAITING_APPROVAL.value:
                continue
            obj = view.get("agentactions", f"{w.namespace}/{w.name}")
            if obj is None or (obj.get("metadata") or {}).get("uid") != w.uid:
                continue
            spec = obj.get("spec") or {}
            verdict, by = spec.get("approval"), spec.get("approver")
            if verdict in ("Approved", "Denied") and isinstance(by, str) and by:
                out[rid] = Answer(str(verdict), by)
        return out

    # ------------------------------------------------------------------------------------------ writing
    def where(self, r: ro.Rollout, by_service: Mapping[str, adapter.Binding]) -> tuple[str, str]:
        """(namespace, intent) of a rollout's record."""
        if any(records.is_node_action(a) for a in r.actions):
            return self.namespace, NODE_INTENT
        binding = next((by_service[s] for s in r.services if s in by_service), None)
        if binding is None:
            return self.namespace, NODE_INTENT
        return binding.namespace, binding.intent

    async def record(self, mas: MasState, by_service: Mapping[str, adapter.Binding], intents: Mapping[str, Obj],
                     observed_only: set[str]) -> dict[str, list[dict[str, Any]]]:
        """Create or update the AgentAction of every rollout worth a record; returns the new
        decisions per intent key ("namespace/name") for the intents' status."""
        decisions: dict[str, list[dict[str, Any]]] = {}
        for r in (*mas.active, *mas.finished):
            if not records.worth_recording(r):
                continue
            stage = records.STATE_PROPOSED if r.id in observed_only else r.stage.value
            done = self.written.get(r.id)
            if done is not None and done.stage == stage and done.transitions == len(r.transitions):
                continue
            message = "autonomy observe: recorded, not enacted" if r.id in observed_only else None
            status = records.status(r, self.clock, message)
            status["status"]["state"] = stage
            if done is None:
                namespace, intent = self.where(r, by_service)
                owner = intents.get(f"{namespace}/{intent}") if intent != NODE_INTENT else None
                body = records.manifest(r, namespace, intent, self.run, self.clock, owner)
                name = body["metadata"]["name"]
                try:
                    _, created = await self.api.create(records.path(namespace), body, want=True)
                except ApiError as e:
                    log.warning("cannot record %s: %s", name, e)
                    continue
                uid = str(((created or {}).get("metadata") or {}).get("uid", ""))
                self.sequence += 1
                done = Written(stage, 0, namespace, name, intent, uid, self.sequence)
                p = r.proposals[0]
                self.telemetry.actions.labels(", ".join(r.agents), type(p.action).__name__, stage).inc()
                decisions.setdefault(f"{namespace}/{intent}", []).append({
                    "time": self.clock.wall(r.transitions[-1].at_s), "agent": ", ".join(r.agents),
                    "action": describe(p.action), "reason": p.reason[:300], "state": stage})
            elif done.stage != stage:
                self.telemetry.actions.labels(", ".join(r.agents), type(r.actions[0]).__name__, stage).inc()
            records.sign_status(status, r, done.namespace, done.name, done.intent, self.signer)
            await self.api.merge_patch(records.path(done.namespace, done.name, status=True), status, ok=(404,))
            self.written[r.id] = replace(done, stage=stage, transitions=len(r.transitions))
        return decisions

    # ------------------------------------------------------------------------------------------ retention
    async def retain(self, mas: MasState, now_s: float) -> MasState:
        """At most ``keep_per_intent`` records per intent, the newest; rollouts in Shadow or Canary are
        never touched; older ones awaiting a person are withdrawn (Rejected) and deleted."""
        delivering = {r.id for r in mas.active if r.stage in (ro.Stage.SHADOW, ro.Stage.CANARY)}
        per_intent: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for rid, w in self.written.items():
            if rid in delivering or w.stage not in (*FINISHED, ro.Stage.AWAITING_APPROVAL.value):
                continue
            per_intent.setdefault((w.namespace, w.intent), []).append((w.order, rid))
        withdrawn: set[str] = set()
        for ids in per_intent.values():
            for _, rid in sorted(ids)[:-self.keep_per_intent] if self.keep_per_intent else sorted(ids):
                w = self.written.pop(rid)
                if w.stage == ro.Stage.AWAITING_APPROVAL.value:
                    withdrawn.add(rid)
                await self.api.delete(records.path(w.namespace, w.name))
        if not withdrawn:
            return mas
        why = f"withdrawn: newer requests replace it (at most {self.keep_per_intent} records per intent)"
        active = [r for r in mas.active if r.id not in withdrawn]
        gone = [replace(r, stage=ro.Stage.REJECTED, transitions=(*r.transitions, ro.Transition(
            now_s, r.stage, ro.Stage.REJECTED, why))) for r in mas.active if r.id in withdrawn]
        return replace(mas, active=tuple(active), finished=(*mas.finished, *gone))

    # ------------------------------------------------------------------------------------------ restarts
    async def recover(self, objects: Sequence[Obj], now_iso: str,
                      plan: Callable[[records.Recovery], tuple[list[Any], list[Any]]],
                      send: Callable[[Any], Awaitable[bool]], patient: bool) -> bool:
        """Finish what earlier runs left in flight (see ``records.recoveries``); adopt their finished
        records into retention. ``plan``: the requests of a recovery's undo and what cannot be planned;
        while ``patient``, an undo whose intent, Deployment or node the watches have not delivered yet
        waits for a later tick (one with nothing left to undo, a pod gone from a node, does not).
        Returns whether all is done."""
        todo, foreign = records.recoveries(objects, self.run, now_iso, self.signer)
        by_name = {f"{(o.get('metadata') or {}).get('namespace')}/{(o.get('metadata') or {}).get('name')}": o
                   for o in objects}
        for name in foreign:
            what = json.dumps(records.payload_of(by_name[name]), sort_keys=True)[:400] if name in by_name else ""
            log.warning("AgentAction %s is in flight but not signed by this operator: left alone (%s)", name, what)
        waiting = False
        for rec in todo:
            requests, skipped = plan(rec)
            if patient and any(getattr(x, "missing", False) for x in skipped):
                waiting = True
                continue
            for req in requests:
                await send(req)
            patch = rec.status_patch
            if skipped:
                status = patch["status"]
                status["message"] = f"{status['message']}; not undone: {'; '.join(x.why for x in skipped)}"
                status["transitions"][-1]["reason"] = status["message"]
            await self.api.merge_patch(records.path(rec.namespace, rec.name, status=True), patch, ok=(404,))
            log.info("recovered %s/%s: %s", rec.namespace, rec.name, patch["status"]["message"])
        if not waiting:
            self._adopt(objects)
        return not waiting

    def _adopt(self, objects: Sequence[Obj]) -> None:
        """Earlier runs' signed records count toward retention (oldest first, before this run's)."""
        mine = [o for o in objects if ((o.get("metadata") or {}).get("labels") or {}).get(records.LABEL_RUN)
                != self.run and records.signed_by(o, self.signer)]
        mine.sort(key=lambda o: str((o.get("metadata") or {}).get("creationTimestamp", "")))
        for i, o in enumerate(mine):
            meta = o.get("metadata") or {}
            state = str((o.get("status") or {}).get("state", ""))
            if state in records.IN_FLIGHT:
                state = ro.Stage.REJECTED.value  # just recovered
            key = f"{(meta.get('labels') or {}).get(records.LABEL_RUN)}/{meta.get('name')}"
            self.written[key] = Written(state, 0, str(meta.get("namespace")), str(meta.get("name")),
                                        str(((o.get("spec") or {}).get("intentRef") or {}).get("name")),
                                        str(meta.get("uid", "")), i - len(mine))


def describe(action: Any) -> str:
    if isinstance(action, NodeAction):
        return f"{type(action).__name__} {action.node}"
    detail = {k: v for k, v in records.action_spec(action).items() if k not in ("type", "service")}
    return f"{type(action).__name__} {action.service} " + " ".join(f"{k}={v}" for k, v in detail.items())


__all__ = ["Answer", "Journal", "Written", "describe"]
