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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubeagora.controllers.mas import MasController, MasSettings, MasState
from kubeagora.decision import rollout as ro
from kubeagora.decision.shield import ShieldPolicy, ShieldState
from kubeagora.kubeapi.client import Api, ApiError
from kubeagora.model import Action, Observation
from kubeagora.model.intent import (
    DEFAULT_POLICY_NAME,
    IntentError,
    OrchestrationPolicy,
    parse_orchestration_policy,
    shield_policy,
)
from kubeagora.operator import (
    adapter,
    autoscalers,
    enact,
    intent_status,
    ledger,
    orphans,
    records,
    residency,
    residency_step,
)
from kubeagora.operator.journal import Answer, Journal, describe
from kubeagora.operator.metric_presets import DEFAULT_PRESET, preset
from kubeagora.operator.metrics_source import (
    MetricsUnavailable,
    NodeSignals,
    PrometheusSignals,
    Reading,
    ServiceSignals,
    Source,
    Windows,
    with_utilization,
)
from kubeagora.operator.resource_usage import NodeUsageReader
from kubeagora.operator.scrape_interval import DEFAULT_SCRAPE_INTERVAL_S, scrape_interval_s
from kubeagora.operator.signing import RecordSigner, load_or_create_signer
from kubeagora.operator.telemetry import Telemetry
from kubeagora.operator.view import ClusterView, key_of
from kubeagora.trust import intent_signing

log = logging.getLogger("kubeagora.operator")

INTENTS_PATH = f"/apis/{records.GROUP}/{records.VERSION}/namespaces/{{ns}}/orchestrationintents/{{name}}/status"
RECOVERY_PATIENCE_S = 60.0
"""How long a new run waits for its watches to deliver what an earlier run's undo actions need."""


@dataclass(frozen=True)
class LoopSettings:
    prometheus_url: str = "http://127.0.0.1:9090"
    interval_s: float = 5.0
    namespace: str = "kubeagora-system"
    """The operator's own namespace: AgentActions on nodes (only cluster administrators approve them
    there), and the Secret with the key that signs every AgentAction."""
    shadow_s: float | None = None
    canary_s: float | None = None
    """Override every intent's rollout pacing (tests and demos); None: the intents' own."""
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    """This process's id: AgentActions carry it, so a restart knows what an earlier run left."""
    keep_per_intent: int = 100
    """AgentActions kept per intent (the newest; see ``journal``)."""
    policy_name: str = DEFAULT_POLICY_NAME
    """The OrchestrationPolicy whose guardrails the shield enforces."""
    shield: ShieldPolicy = field(default_factory=ShieldPolicy)
    """The shield's settings where the OrchestrationPolicy says nothing."""
    policy_file: Path | None = None
    """A learned residual for the MPC's set-points (`kubeagora train`'s policy.npz, run with numpy); None: none."""
    metrics_preset: str = DEFAULT_PRESET
    """The standard series read for intents whose ``spec.metrics`` names no preset (``metric_presets``)."""
    namespace_label: str | None = None
    workload_label: str | None = None
    """Rename the default preset's identifying labels (None: the preset's own)."""
    scrape_interval_s: float | None = None
    """How often Prometheus scrapes the workloads: the query windows span four scrapes (None: Prometheus's
    global scrape_interval, read by ``resolved``; 30 s until then or when it cannot be read)."""
    custom_queries: bool = True
    """Honour intents' custom PromQL (``spec.metrics.queries``). Prometheus has no tenants: a query can
    read any series, and its value shows in the intent's status."""

    def resolved(self) -> LoopSettings:
        """These settings with the scrape interval filled in (asking Prometheus when none was given:
        a blocking request)."""
        return replace(self, scrape_interval_s=scrape_interval_s(self.prometheus_url, self.scrape_interval_s))

    def signals(self) -> PrometheusSignals:
        default = preset(self.metrics_preset).with_labels(self.namespace_label, self.workload_label)
        windows = Windows.for_scrape_interval(self.scrape_interval_s or DEFAULT_SCRAPE_INTERVAL_S)
        return PrometheusSignals(self.prometheus_url, windows, preset=default)


def mas_controller(settings: LoopSettings) -> MasController:
    """The controller a run decides with: mas, with the learned residual when a policy file is given."""
    residual = None
    if settings.policy_file is not None:
        from kubeagora.learn.policy import LearnedResidual

        residual = LearnedResidual.from_file(settings.policy_file)
    return MasController(MasSettings(interval_s=settings.interval_s, unenactable=enact.UNENACTABLE), residual)


@dataclass
class LoopState:
    services: tuple[str, ...] = ()
    mas: MasState | None = None
    counters: adapter.Counters = field(default_factory=adapter.Counters)
    recovered: bool = False
    policy: OrchestrationPolicy | None = None
    """The last good OrchestrationPolicy read."""
    ledger: ledger.Ledger | None = None
    """The action ledger as last read or written (None: read it before deciding)."""
    compliance: intent_status.ComplianceWindow = field(default_factory=intent_status.ComplianceWindow)
    residency: dict[str, residency.Verdict] = field(default_factory=dict)
    """Intent key → this tick's ResidencyMet verdict (only intents that restrict placement)."""
    orphaned: list[str] = field(default_factory=list)
    """Nodes no live kubelet plays and no managed pod runs on (``orphans``), as last reported."""
    first_bound_s: dict[str, float] = field(default_factory=dict)
    """Service name → loop time its intent was first bound (``adapter.awaiting_first_load``)."""
    load_seen: set[str] = field(default_factory=set)
    """Services whose request rate Prometheus has answered at least once since then."""


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


def answer(state: MasState, answers: Mapping[str, Answer], now_s: float) -> MasState:
    """People's answers (rollout id → who said Approved | Denied) into the rollouts awaiting them."""
    if not answers:
        return state
    active, finished = [], list(state.finished)
    for r in state.active:
        given = answers.get(r.id)
        if r.stage is ro.Stage.AWAITING_APPROVAL and given is not None and given.verdict == "Approved":
            active.append(ro.approve(r, now_s, given.by))
        elif r.stage is ro.Stage.AWAITING_APPROVAL and given is not None and given.verdict == "Denied":
            finished.append(ro.deny(r, now_s, given.by))
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
                 signals: PrometheusSignals | None = None, signer: RecordSigner | None = None) -> None:
        """``signer``: the key AgentActions are signed with (None: read from, or made in, the Secret
        in the operator's namespace on the first tick)."""
        self.view = view
        self.api = api
        self.settings = settings
        self.telemetry = telemetry
        self.signals = signals or settings.signals()
        self.node_usage = NodeUsageReader(api)
        self.state = LoopState()
        self.t0 = time.monotonic()
        self.clock = records.Clock(time.time())
        self.controller = mas_controller(settings)
        self.signer = signer
        self.journal: Journal | None = None
        self.may_act: Callable[[], bool] = lambda: True
        """Checked before every request that changes the cluster (the leader Lease, when elected)."""

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def run(self, stop: asyncio.Event, leading: Callable[[], bool] | None = None) -> None:
        """Tick every interval until ``stop``. ``leading``: whether this replica holds the leader Lease
        now (None: it always acts). A replica that is not leading only waits; one that stops leading
        starts a new run, so it never resumes rollouts the new leader has finished for it."""
        log.info("control loop: run %s, a tick every %.1f s, Prometheus at %s", self.settings.run,
                 self.settings.interval_s, self.settings.prometheus_url)
        self.may_act = leading or self.may_act
        led = False
        while not stop.is_set():
            started = time.monotonic()
            if leading is not None and not leading():
                if led:
                    self.step_down()
                    led = False
                self.telemetry.standby()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(1.0, self.settings.interval_s))
                continue
            if not led and leading is not None:
                log.info("leading: run %s acts", self.settings.run)
            led = True
            try:
                result = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the operator: logged, counted, next tick
                log.exception("control-loop tick failed")
                result = "failed"
            self.telemetry.ticks.labels(result).inc()
            self.telemetry.decision_seconds.observe(time.monotonic() - started)
            self.telemetry.ticked(failed=result == "failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.1, self.settings.interval_s - (time.monotonic() - started)))

    def step_down(self) -> None:
        """Forget this run (another replica now leads and finishes its rollouts): a new run id, new state."""
        run = secrets.token_hex(3)
        log.warning("lost the leader Lease: run %s ends, run %s waits to lead", self.settings.run, run)
        self.settings = replace(self.settings, run=run)
        self.state = LoopState()
        self.journal = None
        self.controller = mas_controller(self.settings)

    # ------------------------------------------------------------------------------------------ one tick
    async def _journal(self) -> Journal:
        if self.journal is None:
            signer = self.signer or await load_or_create_signer(self.api, self.settings.namespace)
            self.journal = Journal(self.api, self.settings.namespace, self.settings.run, self.clock, self.telemetry,
                                   signer, self.settings.keep_per_intent)
        return self.journal

    async def tick(self) -> str:
        now = self.now()
        now_iso = self.clock.wall(now)
        journal = await self._journal()
        if not self.state.recovered:
            await self.recover(now_iso)
        placed = await residency_step.enforce(self.api, self.view)
        self.state.residency = placed.verdicts
        deployments = self.view.objects["deployments"]
        intents = self.view.objects["intents"]
        node_objs = self.view.all("nodes")
        regions = sorted({str(((n.get("metadata") or {}).get("labels") or {}).get(adapter.LABEL_REGION, ""))
                          for n in node_objs} - {""})
        policy = self._policy()
        # a policy enforcement point: an intent whose spec its tenant's key does not vouch for (edited while the
        # webhook was down, or past it) is not acted on, and its condition says why
        admitted, refused = intent_signing.gate(list(intents.values()), policy)
        bindings, unbound = adapter.bind(admitted, deployments, regions, policy)
        bindings, too_big = adapter.unplaceable(bindings, [adapter.node_from_object(n) for n in node_objs])
        unbound = [*unbound, *too_big, *(adapter.Unbound(r.key, r.why, reason="SignatureRejected") for r in refused)]
        self.telemetry.intents.set(len(bindings))
        pod_objs = [p for p in self.view.all("pods") if key_of(p) not in placed.evicted]
        node_objs, orphaned = orphans.split(node_objs, self._managed_pods(bindings, deployments, pod_objs))
        await self._orphans_changed(bindings, orphaned)
        try:
            reading, nodes = await asyncio.to_thread(self._read_signals, self._sources(bindings))
        except MetricsUnavailable as e:
            log.warning("holding: %s", e)
            await self.report(bindings, unbound, None, {}, now_iso, metrics_error=str(e))
            return "held"
        services = reading.services
        bound = {b.service.name for b in bindings}  # an intent deleted and made again waits again
        self.state.first_bound_s = {name: self.state.first_bound_s.get(name, now) for name in bound}
        self.state.load_seen &= bound
        bindings, waiting = adapter.awaiting_first_load(bindings, services, self.state.first_bound_s,
                                                        self.state.load_seen, now, self._rate_window_s())
        self.state.load_seen |= {b.service.name for b in bindings if (sig := services.get(b.service.name))
                                 and sig.load_read}
        unbound = [*unbound, *waiting]
        errors = {**self._ignored_queries(bindings), **reading.errors}
        nodes = with_utilization(nodes, await self.node_usage.utilization(node_objs))
        counters = adapter.advance_counters(self.state.counters, now, services, [b.service for b in bindings],
                                            adapter.ready_pods_of(bindings, deployments, self.view.all("pods")))
        self.state.counters = counters
        try:
            observation = adapter.observe(now, node_objs, pod_objs, deployments, bindings, services,
                                          nodes, counters, epoch_at_zero_s=self.clock.started_epoch_s)
        except Exception:
            log.exception("observing every intent at once failed: trying each on its own")
            bindings, failed = self._observable(now, node_objs, pod_objs, deployments, bindings, services, nodes)
            unbound = [*unbound, *failed]
            observation = adapter.observe(now, node_objs, pod_objs, deployments, bindings, services,
                                          nodes, counters, epoch_at_zero_s=self.clock.started_epoch_s)
        names = tuple(b.service.name for b in bindings)
        if not bindings:
            await self.report(bindings, unbound, observation, {}, now_iso, signal_errors=errors)
            return "idle"
        undo: list[Action] = []
        if self.state.mas is None or self.state.services != names:
            (self.state.mas, undo), self.state.services = self._restate(observation), names
        self.controller.settings = replace(self.controller.settings, rollout=_policy_for(
            bindings, intents, self.settings, self.controller.settings.rollout),
            shield=self.shield_policy(policy))
        if self.state.ledger is None:
            self.state.ledger = await ledger.read(self.api, self.settings.namespace)
        undecided = self.state.mas
        mas = answer(undecided, journal.answers(self.view), now)
        mas = replace(mas, shield=ShieldState(tuple(replace(e, at_s=e.at_s - self.clock.started_epoch_s)
                                                    for e in self.state.ledger.events)))
        before = mas.next_id
        actions, mas = self.controller.decide(observation, mas)
        if not await self._count_disruptions(mas, now):
            self.state.mas = undecided
            return "held"
        new_ids = {f"r{i}" for i in range(before, mas.next_id)}
        modes = {b.service.name: b.autonomy for b in bindings}
        mas, observed_only, held = hold_for_people(mas, new_ids, modes, now)
        actions = withheld_actions(actions, mas, observed_only | held)
        by_service = {b.service.name: b for b in bindings}
        decisions = await journal.record(mas, by_service, intents, observed_only)
        self._count_rollouts(mas)
        self.state.mas = mas = await journal.retain(mas, now)
        await self.carry_out([*undo, *actions], by_service, deployments)
        for req in enact.trust_requests(mas.trust, self.view.objects["nodes"]):
            await self._send(req)
        await self.report(bindings, unbound, observation, decisions, now_iso, signal_errors=errors)
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

    def _restate(self, observation: Observation) -> tuple[MasState, list[Action]]:
        """The agents' state for a new set of services (their arrays, and the twin's verdicts in the
        rollouts, are indexed by it), and the undo actions to enact now. The rollout ids go on (an id
        used twice in a run would make one rollout's status overwrite another's AgentAction); the
        rollouts in flight end as a restart ends them: a canary rolled back (its undo enacted this
        tick), a shadow or a request for approval dropped."""
        fresh = self.controller.initial_state(observation)
        old = self.state.mas
        if old is None:  # a new run: the trust this operator (or its predecessor) published still holds
            published = {name: enact.published_trust(node) for name, node in self.view.objects["nodes"].items()}
            return self.controller.with_trust(fresh, {k: v for k, v in published.items() if v is not None}), []
        fresh = self.controller.with_trust(fresh, old.trust)
        now, ended, undo = observation.time_s, [], list[Action]()
        for r in old.active:
            if r.stage is ro.Stage.CANARY:
                undo.extend(r.rollback_actions)
                ended.append(_to(r, ro.Stage.ROLLED_BACK, now, "the managed services changed during the canary: "
                                                               "its undo actions are enacted"))
            else:
                ended.append(_to(r, ro.Stage.REJECTED, now, "the managed services changed: dropped, the agents "
                                                           "propose anew"))
        finished = (*old.finished, *ended)[-self.controller.settings.max_records:]
        return replace(fresh, next_id=old.next_id, finished=finished, canaried=old.canaried,
                       rolled_back=old.rolled_back + sum(r.stage is ro.Stage.ROLLED_BACK for r in ended)), undo

    def _policy(self) -> OrchestrationPolicy | None:
        """The OrchestrationPolicy in force: the last good version of the one named in the settings (a
        malformed edit keeps the limits that were in force, never none)."""
        obj = self.view.get("policies", self.settings.policy_name)
        if obj is None:
            self.state.policy = None
            return None
        try:
            self.state.policy = parse_orchestration_policy(obj)
        except IntentError as e:
            log.warning("OrchestrationPolicy %s is malformed (%s): the last good one stays in force",
                        self.settings.policy_name, e)
        return self.state.policy

    def shield_policy(self, policy: OrchestrationPolicy | None) -> ShieldPolicy:
        base = self.settings.shield
        return base if policy is None else shield_policy(policy, base)

    async def _count_disruptions(self, mas: MasState, now: float) -> bool:
        """Record this tick's disruptive and privileged actions in the ledger before any is enacted;
        False when someone else wrote the ledger first (nothing of this tick may be enacted)."""
        assert self.state.ledger is not None
        new = [replace(e, at_s=e.at_s + self.clock.started_epoch_s) for e in mas.shield.events if e.at_s == now]
        if not new:
            return True
        window = max(self.controller.settings.shield.disruption_window_s,
                     self.controller.settings.shield.privileged_window_s)
        try:
            self.state.ledger = await ledger.append(self.api, self.settings.namespace, self.state.ledger, new,
                                                    self.clock.started_epoch_s + now - window)
        except ledger.LedgerConflict as e:
            log.warning("the action ledger changed under this tick (%s): nothing enacted, deciding again", e)
            self.state.ledger = None
            return False
        return True

    def _observable(self, now: float, node_objs: Sequence[Any], pods: Sequence[Any], deployments: Mapping[str, Any],
                    bindings: Sequence[adapter.Binding], services: Mapping[str, ServiceSignals],
                    nodes: Mapping[str, NodeSignals]) -> tuple[list[adapter.Binding], list[adapter.Unbound]]:
        """The bindings the adapter can observe alone, and the others as degraded (called when the
        snapshot of all of them failed: one tenant's odd objects stop only that tenant)."""
        good: list[adapter.Binding] = []
        bad: list[adapter.Unbound] = []
        for b in bindings:
            try:
                adapter.observe(now, node_objs, pods, deployments, [b], services, nodes, adapter.Counters())
            except Exception as e:  # isolate the tenant whose objects break the snapshot
                bad.append(adapter.Unbound(f"{b.namespace}/{b.intent}", f"cannot be observed: {type(e).__name__}: "
                                           f"{str(e)[:300]}", True, degraded=True))
            else:
                good.append(b)
        return good, bad

    def _sources(self, bindings: Sequence[adapter.Binding]) -> dict[str, Source]:
        """Where each managed service's signals come from: its intent's ``spec.metrics``."""
        return {b.service.name: self.signals.source(b.metrics.preset,
                                                    b.metrics.queries if self.settings.custom_queries else None)
                for b in bindings}

    def _ignored_queries(self, bindings: Sequence[adapter.Binding]) -> dict[str, str]:
        if self.settings.custom_queries:
            return {}
        return {b.service.name: "spec.metrics.queries ignored: this operator runs with --no-custom-queries; "
                                "the preset's series are read instead" for b in bindings if b.metrics.queries}

    def _rate_window_s(self) -> float:
        """The request rates' window: a new series has a rate once it has two scrapes in it."""
        return Windows.for_scrape_interval(self.settings.scrape_interval_s or DEFAULT_SCRAPE_INTERVAL_S).rate_s

    def _read_signals(self, sources: Mapping[str, Source]) -> tuple[Reading, dict[str, NodeSignals]]:
        return self.signals.services(sources), self.signals.nodes()

    # ------------------------------------------------------------------------------------------ restarts
    async def recover(self, now_iso: str) -> None:
        """Finish what earlier runs left in flight (``Journal.recover``). An undo that cannot be planned
        yet (the watches have not delivered its intent or Deployment) waits for a later tick, up to
        ``RECOVERY_PATIENCE_S``; after that the AgentAction says which undo could not be enacted."""
        try:
            objs, _ = await self.api.list_all(f"/apis/{records.GROUP}/{records.VERSION}/agentactions", {})
        except ApiError as e:
            log.warning("cannot list AgentActions yet (%s): recovery waits for the next tick", e)
            return
        journal = await self._journal()
        self.state.recovered = await journal.recover(objs, now_iso, self._plan_undo, self._send,
                                                     patient=self.now() < RECOVERY_PATIENCE_S)

    def _plan_undo(self, rec: records.Recovery) -> tuple[list[enact.ApiRequest], list[enact.NotEnacted]]:
        """A recovery's undo, resolved only within its own namespace and on the intent it names."""
        regions: list[str] = []
        bindings, _ = adapter.bind(self.view.all("intents"), self.view.objects["deployments"], regions)
        own = {b.service.name: b for b in bindings if b.namespace == rec.namespace and b.intent == rec.intent}
        return enact.plan(rec.undo, own, self.view.objects["deployments"], self.view.all("pods"),
                          self.view.objects["nodes"])

    def _count_rollouts(self, mas: MasState) -> None:
        counts = Counter(r.stage.value for r in (*mas.active, *mas.finished))
        for stage in ro.Stage:
            self.telemetry.rollouts.labels(stage.value).set(counts.get(stage.value, 0))

    # ------------------------------------------------------------------------------------------ enactment
    async def carry_out(self, actions: Sequence[Action], by_service: Mapping[str, adapter.Binding],
                    deployments: Mapping[str, Any]) -> None:
        requests, skipped = enact.plan(actions, by_service, deployments, self.view.all("pods"),
                                       self.view.objects["nodes"])
        for s in skipped:
            log.info("not enacted: %s (%s)", describe(s.action), s.why)
        for req in requests:
            ok = await self._send(req)
            binding = by_service.get(req.service)
            if binding is not None:
                await self.event(binding, "Enacted" if ok else "EnactFailed", req.what, "Normal" if ok else "Warning")

    async def _send(self, req: enact.ApiRequest) -> bool:
        if not self.may_act():
            log.warning("not enacted, this replica no longer leads: %s", req.what)
            return False
        try:
            if req.method == "PATCH" and req.content_type == enact.JSON_PATCH:
                await self.api.json_patch(req.path, req.body)
            elif req.method == "PATCH":
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
                     now_iso: str, metrics_error: str = "", signal_errors: Mapping[str, str] | None = None) -> None:
        """``signal_errors``: what could not be read for one service (by service name)."""
        self.telemetry.set_slo_targets({(b.namespace, b.intent, b.deployment): (b.service.slo_p95_ms / 1000.0,
                                                                                 b.service.slo_p99_ms / 1000.0)
                                        for b in bindings})
        for i, b in enumerate(bindings):
            key = f"{b.namespace}/{b.intent}"
            error = metrics_error or (signal_errors or {}).get(b.service.name, "")
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
                self.state.compliance.pct(key), decisions.get(key, []), now_iso, True, not error, error,
                self._autoscaler_conflict(b.namespace, b.deployment),
                findings=self._findings(key, managed=True), note=b.policy_note)
            await self._patch_intent_status(b.namespace, b.intent, patch)
        for u in unbound:
            ns, name = u.key.split("/", 1)
            obj = self.view.get("intents", u.key) or {}
            previous = obj.get("status") or {}
            patch = intent_status.status_patch(previous, None, math.nan, math.nan, None, [], now_iso,
                                               False, not metrics_error, metrics_error,
                                               findings=self._findings(u.key),
                                               degraded=u.why if u.degraded else "")
            patch["status"]["conditions"][0].update(reason=u.reason, message=u.why[:1000])
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


