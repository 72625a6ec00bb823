"""The operator's control loop: every tick, observe → decide → record → enact → report.

One ``MasController`` decides for every managed service at once (the market and the placement
ledger span services), exactly as in the simulator; the operator only adapts:

1. the watch cache (``ClusterView``) and Prometheus (``metrics_source``) become an ``Observation``;
   without Prometheus the loop holds (no decision on a blind cluster) and says so in each intent's
   ``Degraded`` condition;
2. people's answers on AgentActions (``spec.approval``) go into the rollouts awaiting them;
3. the agents decide; an intent's autonomy is applied: ``observe`` enacts nothing (its decisions are
   recorded as Proposed), ``approve`` holds every new decision for a person (AwaitingApproval);
4. every decision worth a record is written as an AgentAction (created, then its status kept);
5. the actions are enacted (``enact``), each with an Event on its intent;
6. intents get their status; the operator's metrics are updated.

On its first tick the loop finishes what an earlier operator process left in flight
(``records.recoveries``): the API server is its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kubeagora.controllers.mas import MasController, MasSettings, MasState
from kubeagora.decision import rollout as ro
from kubeagora.kubeapi.client import Api, ApiError
from kubeagora.model import Action, Observation, QuarantineNode
from kubeagora.operator import (
    adapter,
    autoscalers,
    enact,
    intent_status,
    orphans,
    records,
    residency,
    residency_step,
)
from kubeagora.operator.metrics_source import MetricsUnavailable, NodeSignals, PrometheusSignals, ServiceSignals
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView, key_of

log = logging.getLogger("kubeagora.operator")

INTENTS_PATH = f"/apis/{records.GROUP}/{records.VERSION}/namespaces/{{ns}}/orchestrationintents/{{name}}/status"
KEEP_FINISHED_PER_INTENT = 100
RECOVERY_PATIENCE_S = 60.0
"""How long a new run waits for its watches to deliver what an earlier run's undo actions need."""


@dataclass(frozen=True)
class LoopSettings:
    prometheus_url: str = "http://127.0.0.1:9090"
    interval_s: float = 5.0
    node_action_namespace: str = "default"
    """Where AgentActions on nodes (quarantines) live when no managed service runs on the node."""
    shadow_s: float | None = None
    canary_s: float | None = None
    """Override every intent's rollout pacing (tests and demos); None: the intents' own."""
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    """This process's id: AgentActions carry it, so a restart knows what an earlier run left."""


@dataclass
class Written:
    stage: str
    transitions: int
    namespace: str
    name: str
    intent: str


@dataclass
class LoopState:
    services: tuple[str, ...] = ()
    mas: MasState | None = None
    counters: adapter.Counters = field(default_factory=adapter.Counters)
    written: dict[str, Written] = field(default_factory=dict)
    """Rollout id → what its AgentAction says now."""
    recovered: bool = False
    compliance: intent_status.ComplianceWindow = field(default_factory=intent_status.ComplianceWindow)
    residency: dict[str, residency.Verdict] = field(default_factory=dict)
    """Intent key → this tick's ResidencyMet verdict (only intents that restrict placement)."""
    orphaned: list[str] = field(default_factory=list)
    """Nodes no live kubelet plays and no managed pod runs on (``orphans``), as last reported."""


def _policy_for(bindings: Sequence[adapter.Binding], intents: Mapping[str, Any],
                settings: LoopSettings, base: ro.RolloutPolicy) -> ro.RolloutPolicy:
    """One rollout pacing for the whole controller: the most careful among the intents."""
    from kubeagora.model.intent import IntentError, parse_intent

    shadow, canary, fraction = base.shadow_s, base.canary_s, base.canary_fraction
    first = True
    for b in bindings:
        obj = intents.get(f"{b.namespace}/{b.intent}")
        if obj is None:
            continue
        try:
            r = parse_intent(obj).rollout
        except IntentError:
            continue
        if first:
            shadow, canary, fraction, first = r.shadow_s, r.canary_s, r.canary_fraction, False
        else:
            shadow, canary, fraction = max(shadow, r.shadow_s), max(canary, r.canary_s), min(fraction,
                                                                                             r.canary_fraction)
    return replace(base, shadow_s=settings.shadow_s if settings.shadow_s is not None else shadow,
                   canary_s=settings.canary_s if settings.canary_s is not None else canary,
                   canary_fraction=fraction)


OBSERVED = "autonomy observe: recorded, not enacted"


def hold_for_people(state: MasState, new_ids: set[str], services: Mapping[str, str], now_s: float,
                    ) -> tuple[MasState, set[str], set[str]]:
    """Apply autonomy to this tick's new rollouts. ``services``: service name → autonomy.

    Returns the state, the ids recorded but not enacted (observe: their stage becomes Proposed, so
    their AgentAction keeps saying so), and the ids whose actions wait for a person (approve:
    AwaitingApproval; an approval sends them through shadow and canary). The controller proposes
    the same moves every tick while the world stands still, so a new move that repeats one already
    awaiting a person is dropped (Rejected, withheld): a person is asked once per move."""
    observed: set[str] = set()
    held: set[str] = set()
    asked = Counter(ro.request_key(a) for r in state.active
                    if r.stage is ro.Stage.AWAITING_APPROVAL and r.id not in new_ids for a in r.actions)
    active = list(state.active)
    finished: list[ro.Rollout] = []

    def ask(r: ro.Rollout) -> ro.Rollout:
        nonlocal asked
        held.add(r.id)
        keys = Counter(ro.request_key(a) for a in r.actions)
        if keys and keys <= asked:
            asked -= keys
            return _to(r, ro.Stage.REJECTED, now_s, "autonomy approve: the same move already awaits a person")
        return _to(r, ro.Stage.AWAITING_APPROVAL, now_s, "autonomy approve: a person decides")

    for r in state.finished:
        mode = _mode(r, services)
        if r.id in new_ids and r.stage is ro.Stage.APPLIED and mode == "approve":
            r = ask(r)
            (active if r.stage is ro.Stage.AWAITING_APPROVAL else finished).append(r)
            continue
        if r.id in new_ids and mode == "observe" and r.stage is ro.Stage.APPLIED:
            observed.add(r.id)
            r = _to(r, ro.Stage.PROPOSED, now_s, OBSERVED)
        finished.append(r)
    kept = []
    for r in active:
        mode = _mode(r, services)
        if r.id in new_ids and r.stage is ro.Stage.SHADOW and mode == "approve":
            r = ask(r)
            if r.stage is ro.Stage.REJECTED:
                finished.append(r)
                continue
        if mode == "observe" and r.stage in (ro.Stage.SHADOW, ro.Stage.CANARY):
            observed.add(r.id)
            finished.append(_to(r, ro.Stage.PROPOSED, now_s, OBSERVED))
            continue
        kept.append(r)
    return replace(state, active=tuple(kept), finished=tuple(finished)), observed, held


def _mode(r: ro.Rollout, services: Mapping[str, str]) -> str:
    modes = {services.get(s, "auto") for s in r.services}
    return "observe" if "observe" in modes else ("approve" if "approve" in modes else "auto")


def _to(r: ro.Rollout, stage: ro.Stage, now_s: float, why: str) -> ro.Rollout:
    return replace(r, stage=stage, transitions=(*r.transitions, ro.Transition(now_s, r.stage, stage, why)))


def answer(state: MasState, answers: Mapping[str, str], now_s: float) -> MasState:
    """People's answers (rollout id → Approved | Denied) into the rollouts awaiting them."""
    if not answers:
        return state
    active, finished = [], list(state.finished)
    for r in state.active:
        verdict = answers.get(r.id)
        if r.stage is ro.Stage.AWAITING_APPROVAL and verdict == "Approved":
            active.append(ro.approve(r, now_s, "a person (kubectl)"))
        elif r.stage is ro.Stage.AWAITING_APPROVAL and verdict == "Denied":
            finished.append(ro.deny(r, now_s, "a person (kubectl)"))
        else:
            active.append(r)
    return replace(state, active=tuple(active), finished=tuple(finished))


def withheld_actions(actions: Sequence[Action], state: MasState, ids: set[str]) -> list[Action]:
    """The actions of this tick minus those of rollouts recorded-only or held (by action equality)."""
    if not ids:
        return list(actions)
    drop = [a for r in (*state.active, *state.finished) if r.id in ids
            for a in (*r.actions, *r.canary_actions)]
    out = []
    for a in actions:
        if a in drop:
            drop.remove(a)
        else:
            out.append(a)
    return out


class ControlLoop:
    def __init__(self, view: ClusterView, api: Api, settings: LoopSettings, telemetry: Telemetry,
                 signals: PrometheusSignals | None = None) -> None:
        self.view = view
        self.api = api
        self.settings = settings
        self.telemetry = telemetry
        self.signals = signals or PrometheusSignals(settings.prometheus_url)
        self.state = LoopState()
        self.t0 = time.monotonic()
        self.clock = records.Clock(time.time())
        self.controller = MasController(MasSettings(interval_s=settings.interval_s, unenactable=enact.UNENACTABLE))

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def run(self, stop: asyncio.Event) -> None:
        log.info("control loop: run %s, a tick every %.1f s, Prometheus at %s", self.settings.run,
                 self.settings.interval_s, self.settings.prometheus_url)
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the operator: logged, counted, next tick
                log.exception("control-loop tick failed")
                result = "failed"
            self.telemetry.ticks.labels(result).inc()
            self.telemetry.decision_seconds.observe(time.monotonic() - started)
            self.telemetry.ticked()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.1, self.settings.interval_s - (time.monotonic() - started)))

    # ------------------------------------------------------------------------------------------ one tick
    async def tick(self) -> str:
        now = self.now()
        now_iso = self.clock.wall(now)
        if not self.state.recovered:
            await self.recover(now_iso)
        placed = await residency_step.enforce(self.api, self.view)
        self.state.residency = placed.verdicts
        deployments = self.view.objects["deployments"]
        intents = self.view.objects["intents"]
        node_objs = self.view.all("nodes")
        regions = sorted({str(((n.get("metadata") or {}).get("labels") or {}).get(adapter.LABEL_REGION, ""))
                          for n in node_objs} - {""})
        bindings, unbound = adapter.bind(list(intents.values()), deployments, regions)
        self.telemetry.intents.set(len(bindings))
        pod_objs = [p for p in self.view.all("pods") if key_of(p) not in placed.evicted]
        node_objs, orphaned = orphans.split(node_objs, self._managed_pods(bindings, deployments, pod_objs))
        await self._orphans_changed(bindings, orphaned)
        try:
            services, nodes = await asyncio.to_thread(self._read_signals)
        except MetricsUnavailable as e:
            log.warning("holding: %s", e)
            await self.report(bindings, unbound, None, {}, now_iso, metrics_error=str(e))
            return "held"
        names = tuple(b.service.name for b in bindings)
        counters = adapter.advance_counters(self.state.counters, now, services, [b.service for b in bindings])
        self.state.counters = counters
        observation = adapter.observe(now, node_objs, pod_objs, deployments, bindings, services, nodes,
                                      counters, epoch_at_zero_s=self.clock.started_epoch_s)
        if not bindings:
            await self.report(bindings, unbound, observation, {}, now_iso)
            return "idle"
        if self.state.mas is None or self.state.services != names:
            self.state.mas, self.state.services = self.controller.initial_state(observation), names
        self.controller.settings = replace(self.controller.settings, rollout=_policy_for(
            bindings, intents, self.settings, self.controller.settings.rollout))
        mas = answer(self.state.mas, records.approvals(self.view.all("agentactions"), self.settings.run), now)
        before = mas.next_id
        actions, mas = self.controller.decide(observation, mas)
        new_ids = {f"r{i}" for i in range(before, mas.next_id)}
        modes = {b.service.name: b.autonomy for b in bindings}
        mas, observed_only, held = hold_for_people(mas, new_ids, modes, now)
        actions = withheld_actions(actions, mas, observed_only | held)
        self.state.mas = mas
        by_service = {b.service.name: b for b in bindings}
        decisions = await self.record(mas, observation, by_service, observed_only)
        await self.carry_out(actions, by_service, deployments)
        await self.report(bindings, unbound, observation, decisions, now_iso)
        return "decided"

    @staticmethod
    def _managed_pods(bindings: Sequence[adapter.Binding], deployments: Mapping[str, Any],
                      pod_objs: Sequence[Any]) -> list[Any]:
        return [p for b in bindings if (dep := deployments.get(f"{b.namespace}/{b.deployment}")) is not None
                for p in adapter.pods_of(dep, pod_objs)]

    async def _orphans_changed(self, bindings: Sequence[adapter.Binding], orphaned: list[str]) -> None:
        """One log line and one Warning Event per intent when the set of orphaned nodes changes."""
        if orphaned == self.state.orphaned:
            return
        self.state.orphaned = orphaned
        found = orphans.finding(orphaned)
        if not found.present:
            return
        log.warning("%s", found.message)
        for b in bindings:
            await self.event(b, "OrphanedNodes", found.message, "Warning")

    def _read_signals(self) -> tuple[dict[str, ServiceSignals], dict[str, NodeSignals]]:
        return self.signals.services(), self.signals.nodes()

    # ------------------------------------------------------------------------------------------ restarts
    async def recover(self, now_iso: str) -> None:
        """Finish what earlier runs left in flight. An undo that cannot be planned yet (the watches
        have not delivered its intent or Deployment) waits for a later tick, up to
        ``RECOVERY_PATIENCE_S``; after that the AgentAction says which undo could not be enacted."""
        try:
            objs, _ = await self.api.list_all(f"/apis/{records.GROUP}/{records.VERSION}/agentactions", {})
        except ApiError as e:
            log.warning("cannot list AgentActions yet (%s): recovery waits for the next tick", e)
            return
        waiting = False
        for rec in records.recoveries(objs, self.settings.run, now_iso):
            requests, skipped = enact.plan(rec.undo, self._bindings_now(), self.view.objects["deployments"],
                                           self.view.all("pods"), self.view.objects["nodes"])
            if skipped and self.now() < RECOVERY_PATIENCE_S:
                waiting = True
                continue
            for req in requests:
                await self._send(req)
            patch = rec.status_patch
            if skipped:
                status = patch["status"]
                status["message"] = f"{status['message']}; not undone: {'; '.join(x.why for x in skipped)}"
                status["transitions"][-1]["reason"] = status["message"]
            await self.api.merge_patch(records.path(rec.namespace, rec.name, status=True), patch, ok=(404,))
            log.info("recovered %s/%s: %s", rec.namespace, rec.name, patch["status"]["message"])
        self.state.recovered = not waiting

    def _bindings_now(self) -> dict[str, adapter.Binding]:
        regions: list[str] = []
        bindings, _ = adapter.bind(self.view.all("intents"), self.view.objects["deployments"], regions)
        return {b.service.name: b for b in bindings}

    # ------------------------------------------------------------------------------------------ records
    async def record(self, mas: MasState, observation: Observation, by_service: Mapping[str, adapter.Binding],
                     observed_only: set[str]) -> dict[str, list[dict[str, Any]]]:
        """Create or update the AgentAction of every rollout worth a record; returns the new
        decisions per intent key for the intents' status."""
        decisions: dict[str, list[dict[str, Any]]] = {}
        counts: dict[str, int] = {}
        for r in (*mas.active, *mas.finished):
            counts[r.stage.value] = counts.get(r.stage.value, 0) + 1
            if not records.worth_recording(r):
                continue
            stage = records.STATE_PROPOSED if r.id in observed_only else r.stage.value
            done = self.state.written.get(r.id)
            if done is not None and done.stage == stage and done.transitions == len(r.transitions):
                continue
            binding = next((by_service[s] for s in r.services if s in by_service), None)
            namespace = binding.namespace if binding else self.settings.node_action_namespace
            intent = binding.intent if binding else "cluster"
            message = "autonomy observe: recorded, not enacted" if r.id in observed_only else None
            status = records.status(r, self.clock, message)
            status["status"]["state"] = stage
            if done is None:
                body = records.manifest(r, namespace, intent, self.settings.run, self.clock)
                name = body["metadata"]["name"]
                try:
                    await self.api.create(records.path(namespace), body, ok=(409,))
                except ApiError as e:
                    log.warning("cannot record %s: %s", name, e)
                    continue
                p = r.proposals[0]
                self.telemetry.actions.labels(", ".join(r.agents), type(p.action).__name__, stage).inc()
                decisions.setdefault(f"{namespace}/{intent}", []).append({
                    "time": self.clock.wall(r.transitions[-1].at_s), "agent": ", ".join(r.agents),
                    "action": _describe(p.action), "reason": p.reason[:300], "state": stage})
            else:
                name = done.name
                if done.stage != stage:
                    self.telemetry.actions.labels(", ".join(r.agents), type(r.actions[0]).__name__, stage).inc()
            await self.api.merge_patch(records.path(namespace, name, status=True), status, ok=(404,))
            self.state.written[r.id] = Written(stage, len(r.transitions), namespace, name, intent)
        for state_name in [s.value for s in ro.Stage]:
            self.telemetry.rollouts.labels(state_name).set(counts.get(state_name, 0))
        await self._forget_old(mas)
        return decisions

    async def _forget_old(self, mas: MasState) -> None:
        """Keep the newest finished AgentActions per intent; delete the rest (and forget them here)."""
        live = {r.id for r in mas.active}
        per_intent: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for rid, w in self.state.written.items():
            if rid in live or w.stage not in ("Applied", "RolledBack", "Rejected", "Proposed"):
                continue
            per_intent.setdefault((w.namespace, w.intent), []).append((int(rid[1:]), rid))
        for ids in per_intent.values():
            for _, rid in sorted(ids)[:-KEEP_FINISHED_PER_INTENT]:
                w = self.state.written.pop(rid)
                await self.api.delete(records.path(w.namespace, w.name))

    # ------------------------------------------------------------------------------------------ enactment
    async def carry_out(self, actions: Sequence[Action], by_service: Mapping[str, adapter.Binding],
                    deployments: Mapping[str, Any]) -> None:
        requests, skipped = enact.plan(actions, by_service, deployments, self.view.all("pods"),
                                       self.view.objects["nodes"])
        for s in skipped:
            log.info("not enacted: %s (%s)", _describe(s.action), s.why)
        for req in requests:
            ok = await self._send(req)
            binding = by_service.get(req.service)
            if binding is not None:
                await self.event(binding, "Enacted" if ok else "EnactFailed", req.what, "Normal" if ok else "Warning")

    async def _send(self, req: enact.ApiRequest) -> bool:
        try:
            if req.method == "PATCH":
                await self.api.merge_patch(req.path, req.body)
            elif req.method == "POST":
                await self.api.create(req.path, req.body, ok=(429,))  # 429: a PodDisruptionBudget said not now
            else:
                raise ValueError(f"unexpected method {req.method}")
        except ApiError as e:
            log.warning("%s failed: %s", req.what, e)
            return False
        log.info("%s", req.what)
        return True

    async def event(self, b: adapter.Binding, reason: str, message: str, kind: str = "Normal") -> None:
        obj = self.view.get("intents", f"{b.namespace}/{b.intent}") or {}
        now = self.clock.wall(self.now())
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{b.intent}.{uuid.uuid4().hex[:12]}", "namespace": b.namespace},
                "involvedObject": {"apiVersion": records.API_VERSION, "kind": "OrchestrationIntent",
                                   "name": b.intent, "namespace": b.namespace,
                                   "uid": (obj.get("metadata") or {}).get("uid", "")},
                "reason": reason, "message": message[:1000], "type": kind, "count": 1,
                "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "kubeagora-operator"},
                "reportingComponent": "kubeagora-operator", "reportingInstance": self.settings.run}
        try:
            await self.api.create(f"/api/v1/namespaces/{b.namespace}/events", body)
        except ApiError as e:
            log.debug("event not posted: %s", e)

    # ------------------------------------------------------------------------------------------ status
    async def report(self, bindings: Sequence[adapter.Binding], unbound: Sequence[adapter.Unbound],
                     observation: Observation | None, decisions: Mapping[str, list[dict[str, Any]]],
                     now_iso: str, metrics_error: str = "") -> None:
        for i, b in enumerate(bindings):
            key = f"{b.namespace}/{b.intent}"
            obj = self.view.get("intents", key) or {}
            observed = None
            if observation is not None:
                observed = intent_status.Observed(
                    float(observation.p95_ms[i]), float(observation.p99_ms[i]), float(observation.arrival_rps[i]),
                    int(observation.desired_replicas[i]), int(observation.ready_replicas[i]))
                met = intent_status.within_slo(observed.p95_ms, observed.p99_ms, b.service.slo_p95_ms,
                                               b.service.slo_p99_ms)
                self.state.compliance.add(key, met)
                if met is not None:
                    self.telemetry.slo_met.labels(b.namespace, b.intent).set(1.0 if met else 0.0)
            patch = intent_status.status_patch(
                obj.get("status") or {}, observed, b.service.slo_p95_ms, b.service.slo_p99_ms,
                self.state.compliance.pct(key), decisions.get(key, []), now_iso, True, not metrics_error,
                metrics_error, self._autoscaler_conflict(b.namespace, b.deployment),
                findings=self._findings(key, managed=True))
            await self._patch_intent_status(b.namespace, b.intent, patch)
        for u in unbound:
            ns, name = u.key.split("/", 1)
            obj = self.view.get("intents", u.key) or {}
            previous = obj.get("status") or {}
            patch = intent_status.status_patch(previous, None, math.nan, math.nan, None, [], now_iso,
                                               False, not metrics_error, metrics_error,
                                               findings=self._findings(u.key))
            patch["status"]["conditions"][0].update(reason="NotManaged", message=u.why[:1000])
            await self._patch_intent_status(ns, name, patch)

    def _autoscaler_conflict(self, namespace: str, deployment: str) -> tuple[bool, str, str]:
        found = [a for kind, name in (("hpas", autoscalers.HPA_KIND), ("scaledobjects", autoscalers.SCALED_OBJECT_KIND))
                 for obj in self.view.all(kind) if (a := autoscalers.from_object(name, obj)) is not None]
        return autoscalers.conflict_condition(autoscalers.on_deployment(namespace, deployment, found), namespace,
                                              deployment)

    def _findings(self, key: str, managed: bool = False) -> list[intent_status.Finding]:
        """The conditions beyond the SLO's: residency (intents that restrict placement) and, on managed
        intents, the orphaned nodes."""
        out = []
        verdict = self.state.residency.get(key)
        if verdict is not None:
            out.append(intent_status.Finding(residency.CONDITION, verdict.met, verdict.reason, verdict.message))
        if managed:
            found = orphans.finding(self.state.orphaned)
            out.append(intent_status.Finding(orphans.CONDITION, found.present, found.reason, found.message))
        return out

    async def _patch_intent_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        try:
            await self.api.merge_patch(INTENTS_PATH.format(ns=namespace, name=name), patch, ok=(404,))
        except ApiError as e:
            log.warning("cannot update the status of intent %s/%s: %s", namespace, name, e)


def _describe(action: Action) -> str:
    if isinstance(action, QuarantineNode):
        return f"QuarantineNode {action.node}"
    detail = {k: v for k, v in records.action_spec(action).items() if k not in ("type", "service")}
    return f"{type(action).__name__} {action.service} " + " ".join(f"{k}={v}" for k, v in detail.items())

