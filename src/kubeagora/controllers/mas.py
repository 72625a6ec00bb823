"""The multi-agent controller: nine agents, the market, the MPC, the shield, the twin and the canary.

One tick (every `interval_s`):

1. prices: the capacity market clears CPU and accelerator pools among the services' demands;
2. the MPC (every `mpc_every_ticks`) calibrates its model of the world from what it observed
   (`decision.calibration`) and turns the forecast into replica set-points; from then on the tick reads
   the calibrated capacity, and the twin runs the calibrated parameters;
3. the agents propose, in a fixed order with hand-offs (`agents.handoff`): sentinel → scaling →
   placement → reliability, data steward, scheduler, cost/energy, observability → triage;
4. proposals go through the bus by lane (incidents first) and conflicts are resolved per target;
5. every proposal is scored for risk (the less the calibration knows a service, the less slack it
   counts on), vetted for residency and filtered by the shield;
6. delivery is proportional to risk: capacity-adding moves and pre-approved playbooks (quarantining a
   silent node) are enacted at once; capacity-removing moves (scale-downs, migrations, shedding) are
   tested in the twin, then shadowed and canaried with automatic rollback; what is too risky, or what
   triage escalates, waits for a person (AwaitingApproval).

Every decision is kept as a rollout record (agent, inputs, predicted effect, shield and twin
verdicts, stage transitions); `decision_log(state)` returns them for `kubeagora explain`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from kubeagora.agents import handoff
from kubeagora.agents.base import AgentContext, Proposal
from kubeagora.agents.cost_energy import CostEnergyAgent
from kubeagora.agents.data_steward import DataStewardAgent, veto_residency
from kubeagora.agents.observability import ObservabilityAgent, publish_events
from kubeagora.agents.placement import PlacementAgent
from kubeagora.agents.reliability import ReliabilityAgent
from kubeagora.agents.scaling import ScalingAgent
from kubeagora.agents.scheduler import SchedulerAgent
from kubeagora.agents.sentinel import SentinelAgent, SentinelSettings, bidder, contained, trust_scores
from kubeagora.agents.triage import TriageAgent, is_escalation
from kubeagora.controllers.mpc import MpcController, MpcControllerState, ResidualPolicy
from kubeagora.coordination.bus import Bus
from kubeagora.coordination.events import Incident, ProposalPublished
from kubeagora.coordination.market import clear_market, demands_from_observation, pools_from_observation
from kubeagora.decision import calibration as cal
from kubeagora.decision import forecast as fc
from kubeagora.decision import rollout as ro
from kubeagora.decision.risk import with_risk
from kubeagora.decision.shield import ShieldPolicy, ShieldState, filter_proposals, release
from kubeagora.decision.twin import SharedBaseline, TwinPolicy, evaluate
from kubeagora.model import (
    Action,
    LiftQuarantine,
    Migrate,
    NodeAction,
    Observation,
    Place,
    QuarantineNode,
    Scale,
    SetConcurrency,
    ShedLoad,
)


@dataclass(frozen=True, slots=True)
class MasSettings:
    interval_s: float = 5.0
    """The agents' tick: reliability and the sentinel must react within seconds, not the 50 s node grace."""
    mpc_every_ticks: int = 3
    """The MPC re-plans every third tick (15 s, its forecast step); set-points hold in between."""
    approval_timeout_s: float = 600.0
    """An AwaitingApproval rollout nobody answered within this long is dropped (Rejected): in the
    simulator nobody answers, and on a cluster a stale approval request must not fire much later."""
    twin_horizon_s: float = 120.0
    """How far the twin looks ahead for a capacity-removing move."""
    max_twin_runs_per_tick: int = 2
    """Bounds the twin's CPU per tick (each run simulates both arms over a few seeds)."""
    shield: ShieldPolicy = field(default_factory=ShieldPolicy)
    rollout: ro.RolloutPolicy = field(default_factory=lambda: ro.RolloutPolicy(max_shadow_error_slo_share=3.0))
    """The twin is judged in shadow; only a gross misprediction (off by 3× the target) asks a person,
    since the twin's horizon mean and a 10-second window's p99 differ by nature under changing load."""
    twin: TwinPolicy = field(default_factory=TwinPolicy)
    max_records: int = 2000
    """Finished rollout records kept for `explain` (the oldest are dropped first)."""
    zero_trust: bool = True
    """The sentinel checks attestation and cross-checks nodes' and bidders' claims, and what the MPC and the
    market read of a service's demand is contained to what outcomes account for (off: the MAS as it was
    before; the benchmarks' undefended arm)."""
    unenactable: frozenset[str] = frozenset()
    """Action types the world cannot carry out (e.g. ``ShedLoad`` on a cluster without an ingress
    hook): proposals of these types are dropped with a record, never screened nor put to a person."""


@dataclass(frozen=True, slots=True)
class MasState:
    tick: int
    agent_states: tuple[Any, ...]
    mpc: MpcControllerState
    setpoints: Any
    """The MPC's last replica set-points [service] (held between re-plans)."""
    prices: dict[str, float]
    trust: dict[str, float]
    shield: ShieldState
    memory: ro.RolloutMemory
    active: tuple[ro.Rollout, ...]
    """Rollouts in Shadow or Canary (or AwaitingApproval: no person answers in the simulator)."""
    finished: tuple[ro.Rollout, ...]
    rolled_back_by_agent: dict[str, int]
    incidents: tuple[Incident, ...]
    next_id: int = 0
    canaried: int = 0
    rolled_back: int = 0
    last_prices: Any = None


def _capacity_adding(observation: Observation, action: Action) -> bool:
    if isinstance(action, LiftQuarantine):
        return True
    if isinstance(action, Scale | ShedLoad):
        return ro.scale_direction(observation, action) > 0
    if isinstance(action, SetConcurrency):
        s = observation.service_index(action.service)
        return action.concurrency >= int(observation.concurrency[s])
    return isinstance(action, Place)


def _target(action: Action) -> str:
    if isinstance(action, QuarantineNode | LiftQuarantine):
        return f"node:{action.node}"
    kind = "scale" if isinstance(action, Scale | Place) else type(action).__name__
    return f"{kind}:{action.service}"


def resolve_conflicts(observation: Observation, proposals: Sequence[Proposal]) -> tuple[list[Proposal],
                                                                                       list[tuple[Proposal, str]]]:
    """One proposal per target. Proposals arrive in bus order (incidents first); for a service's replica
    count the largest capacity wins among the first lane that speaks, and a `Place` (a placed scale-up)
    replaces a plain `Scale` up of the same service."""
    kept: dict[str, list[Proposal]] = {}
    dropped: list[tuple[Proposal, str]] = []
    for p in proposals:
        key = _target(p.action)
        group = kept.setdefault(key, [])
        if not group:
            group.append(p)
            continue
        first = group[0]
        if isinstance(p.action, Place) and all(isinstance(q.action, Place) for q in group):
            group.append(p)  # several replicas placed for one service
        elif isinstance(p.action, Place) and isinstance(first.action, Scale) and p.lane >= first.lane \
                and ro.scale_direction(observation, first.action) > 0:
            dropped.extend((q, f"replaced by {p.agent}'s placed replicas") for q in group)
            kept[key] = [p]
        elif isinstance(p.action, Scale) and isinstance(first.action, Scale) and p.lane == first.lane \
                and p.action.replicas > first.action.replicas:
            dropped.append((first, f"{p.agent} asked for more ({p.action.replicas})"))
            kept[key] = [p]
        else:
            dropped.append((p, f"{first.agent} already decided {key} ({type(first.action).__name__})"))
    return [p for group in kept.values() for p in group], dropped


class MasController:
    name = "mas"

    def __init__(self, settings: MasSettings | None = None, residual: ResidualPolicy | None = None) -> None:
        self.settings = settings or MasSettings()
        self.planner = MpcController(residual=residual)
        self.agents: tuple[Any, ...] = (
            SentinelAgent(SentinelSettings(zero_trust=self.settings.zero_trust)), ScalingAgent(), PlacementAgent(),
            ReliabilityAgent(), DataStewardAgent(),
            SchedulerAgent(), CostEnergyAgent(), ObservabilityAgent(), TriageAgent())

    @property
    def interval_s(self) -> float:
        return self.settings.interval_s

    def initial_state(self, observation: Observation) -> MasState:
        return MasState(0, tuple(a.initial_state(observation) for a in self.agents),
                        self.planner.initial_state(observation), None, {}, {}, ShieldState(), ro.RolloutMemory(),
                        (), (), {}, ())

    @staticmethod
    def with_trust(state: MasState, trust: Mapping[str, float]) -> MasState:
        """The state with the sentinel's scores seeded (a restarted operator reads back the trust it published,
        so a distrusted node is not trusted again by a restart)."""
        scores = {k: float(v) for k, v in trust.items() if v < 1.0}
        sentinel = replace(state.agent_states[0], trust=scores)
        return replace(state, agent_states=(sentinel, *state.agent_states[1:]), trust=dict(scores))

    # ------------------------------------------------------------------ one tick
    def replans(self, state: MasState) -> bool:
        """Whether the tick `state` is at re-plans with the MPC (every `mpc_every_ticks`)."""
        return state.tick % self.settings.mpc_every_ticks == 0 or state.setpoints is None

    def planning_observation(self, observation: Observation, state: MasState) -> Observation:
        """What the MPC and the market read: with zero trust, no bidder's reporter may inflate its demand."""
        if self.settings.zero_trust:
            return contained(observation, state.agent_states[0], self.agents[0].settings)
        return observation

    def decide(self, observation: Observation, state: MasState,
               mpc_step: tuple[Sequence[Action], MpcControllerState] | None = None,
               ) -> tuple[Sequence[Action], MasState]:
        """One tick. `mpc_step`: the MPC's step on a re-planning tick when the caller has taken it already
        (the learning environment drafts the plan, lets its agents choose the residual and commits it)."""
        cfg = self.settings
        now = observation.time_s
        claimed = observation
        observation = self.planning_observation(observation, state)
        mpc_state, setpoints = state.mpc, state.setpoints
        if self.replans(state):
            mpc_actions, mpc_state = mpc_step or self.planner.decide(observation, state.mpc)
            setpoints = observation.desired_replicas.copy()
            for a in mpc_actions:
                if isinstance(a, Scale):
                    setpoints[observation.service_index(a.service)] = a.replicas
        forecast = fc.predict(mpc_state.forecaster, self.planner.settings.horizon_steps)
        # from here on the agents, the shield, the risk score and the twin read the world as calibrated:
        # capacity from the estimated service times, a pessimistic slack where the estimate is uncertain,
        # and a twin that runs the estimated parameters instead of the declared ones
        uncertainty, twin_world, measured = None, None, observation
        if mpc_state.calibration is not None:
            uncertainty = cal.relative_uncertainty(mpc_state.calibration, observation)
            twin_world = cal.world(mpc_state.calibration, self.planner.settings.calibration)
            observation = cal.calibrated_observation(observation, mpc_state.calibration)
        setpoints, prices, last_prices = self._clear(observation, setpoints, state, cfg.zero_trust)

        # the sentinel judges the claims as made: the demand as reported and each node's speed as the node
        # reports it (not the calibration's estimate, which has already absorbed a lying node's slowness)
        as_claimed = replace(observation, arrived_total=claimed.arrived_total, arrival_rps=claimed.arrival_rps,
                             node_speed=claimed.node_speed)
        proposals, agent_states, incidents = self._run_agents(observation, state, setpoints, forecast, prices,
                                                              as_claimed)
        ordered, unenactable = self._enactable_only(self._through_the_bus(proposals))
        # a target with a rollout in flight (shadow or canary) is not proposed again,
        # except that a capacity-adding move supersedes a capacity-removing one still in flight: a
        # scale-down in its canary must not hold back the scale-up a burst needs
        active, superseded = self._supersede(observation, state.active, ordered)
        # only a rollout being delivered holds its target; one awaiting a person does not stop the agents
        held = {_target(a) for r in active if r.stage in (ro.Stage.SHADOW, ro.Stage.CANARY) for a in r.actions}
        escalations = [p for p in ordered if is_escalation(p) and _target(p.action) not in held]
        resolved, dropped = resolve_conflicts(
            observation, [p for p in ordered if not is_escalation(p) and _target(p.action) not in held])
        scored = [with_risk(observation, p, uncertainty=uncertainty) for p in resolved]
        kept, vetoed = veto_residency(observation, scored)
        # hysteresis damps what removes capacity (no scale-down right after a scale-up, no retry of a
        # rolled-back move); a scale-up the SLO needs is never held back by a recent scale-down
        adding = [p for p in kept if self._fast_path(observation, p)]
        damped, suppressed = ro.damp(state.memory, [p for p in kept if not self._fast_path(observation, p)],
                                     observation, cfg.rollout)
        kept_damped = [*adding, *damped]
        allowed, rejections, shield_state = filter_proposals(observation, kept_damped, cfg.shield, state.shield)
        twin_forecast = np.repeat(forecast.upper_rps, max(1, round(self.planner.settings.interval_s
                                                                     / cfg.twin.step_s)), axis=1)

        actions: list[Action] = []
        records: list[ro.Rollout] = []
        next_id = state.next_id
        twin_runs = 0
        undelivered: list[Proposal] = []
        baseline = SharedBaseline()  # the tick's twin and do-nothing arm, shared by the moves it screens
        for p in escalations:
            records.append(ro.screen(ro.propose(f"r{next_id}", [p], observation), now, (), None, cfg.rollout,
                                     risk=1.0))
            next_id += 1
        for p in allowed:
            rollout = ro.propose(f"r{next_id}", [p], observation)
            next_id += 1
            if self._fast_path(observation, p):
                rollout = _fast_track(rollout, now, "capacity-adding or pre-approved playbook: enacted at once")
                actions.append(p.action)
            elif twin_runs < cfg.max_twin_runs_per_tick:
                twin_runs += 1
                # the twin corrects the reported speeds itself: it runs from what was measured
                verdict = evaluate(measured, [p.action], twin_forecast, cfg.twin_horizon_s, cfg.twin,
                                   world=twin_world, shared=baseline)
                rollout = ro.screen(rollout, now, (), verdict, cfg.rollout)
                if rollout.stage is not ro.Stage.SHADOW:
                    undelivered.append(p)
            else:
                undelivered.append(p)
                continue  # proposed again next tick, when the twin has time for it
            records.append(rollout)
        shield_state = release(shield_state, now, undelivered)
        records.extend(_rejected_record(f"r{next_id + i}", r.proposal, r, observation)
                       for i, r in enumerate(rejections))
        next_id += len(rejections)
        records, repeated = one_request_per_target(records, state.active, now)

        in_flight = active
        active, finished, memory = [], [*state.finished, *superseded], state.memory
        rolled_back_by_agent: dict[str, int] = {}
        canaried, rolled_back = state.canaried, state.rolled_back
        for rollout in (*in_flight, *records):
            if rollout.stage in (ro.Stage.SHADOW, ro.Stage.CANARY) and rollout not in records:
                before = rollout.stage
                rollout, to_enact = ro.advance(rollout, observation, cfg.rollout)
                actions.extend(to_enact)
                if before is ro.Stage.SHADOW and rollout.stage is ro.Stage.CANARY:
                    canaried += 1
                if rollout.stage is ro.Stage.ROLLED_BACK:
                    rolled_back += 1
                    for agent in rollout.agents:
                        rolled_back_by_agent[agent] = rolled_back_by_agent.get(agent, 0) + 1
            if rollout.stage is ro.Stage.AWAITING_APPROVAL and now - rollout.since_s > cfg.approval_timeout_s:
                rollout = _expire(rollout, now, f"no approval within {cfg.approval_timeout_s:g} s")
            if rollout.stage in (ro.Stage.SHADOW, ro.Stage.CANARY, ro.Stage.AWAITING_APPROVAL):
                active.append(rollout)
            else:
                if rollout.stage in (ro.Stage.APPLIED, ro.Stage.ROLLED_BACK):
                    memory = ro.remember(memory, rollout, observation, cfg.rollout)
                finished.append(rollout)
        # a proposal dropped before delivery leaves a record too, so `explain` shows every "no"
        for p, why in (*unenactable, *dropped, *vetoed, *suppressed):
            finished.append(_dropped_record(f"r{next_id}", p, why, observation))
            next_id += 1
        finished.extend(repeated)
        finished = finished[-cfg.max_records:]
        # an awaiting rollout holds its targets: the same move is not proposed again meanwhile
        new_state = MasState(state.tick + 1, agent_states, mpc_state, setpoints, prices, state.trust, shield_state,
                             memory, tuple(active), tuple(finished), rolled_back_by_agent, incidents, next_id,
                             canaried, rolled_back)
        new_state = replace(new_state, trust=trust_scores(agent_states[0]), last_prices=last_prices)
        return _enactable(actions), new_state

    @staticmethod
    def _clear(observation: Observation, setpoints: Any, state: MasState, weigh_by_trust: bool = True,
               ) -> tuple[Any, dict[str, float], Any]:
        """The market for shared pools: where the set-points ask for more cores or accelerators than a
        region has, the prices rise until demand fits and each service gets what its priority earns (times
        its bidder's trust: a bidder whose claims outcomes contradicted counts for less)."""
        pools = pools_from_observation(observation)
        weights = [state.trust.get(bidder(s.name), 1.0) for s in observation.services] if weigh_by_trust else None
        demands = demands_from_observation(observation, np.maximum(setpoints, 0).astype(float), pools,
                                           bidder_trust=weights)
        clearing = clear_market(demands, pools, initial_prices=state.last_prices)
        capped = np.where(clearing.price_per_unit @ demands.usage_per_replica.T > 0,
                          np.minimum(setpoints, np.ceil(clearing.replicas - 1e-6)), setpoints).astype(np.int64)
        return capped, clearing.prices(), clearing.price_per_unit

    @staticmethod
    def _supersede(observation: Observation, active: Sequence[ro.Rollout], proposals: Sequence[Proposal],
                   ) -> tuple[list[ro.Rollout], list[ro.Rollout]]:
        """(still in flight, superseded): rollouts that a capacity-adding proposal for the same target
        replaces; the canary's undo actions are not needed, the new move sets the target anyway."""
        adding = {_target(p.action): p for p in proposals if not is_escalation(p)
                  and MasController._fast_path(observation, p) and not isinstance(p.action, NodeAction)}
        kept: list[ro.Rollout] = []
        gone: list[ro.Rollout] = []
        for r in active:
            by = next((adding[_target(a)] for a in r.actions if _target(a) in adding), None)
            if by is None or all(_capacity_adding(observation, a) for a in r.actions):
                kept.append(r)
            else:
                gone.append(_expire(r, observation.time_s, f"superseded by {by.agent}: {by.reason}"))
        return kept, gone

    @staticmethod
    def _fast_path(observation: Observation, proposal: Proposal) -> bool:
        """Capacity-adding moves (the shield's budgets bound their cost; a scale-up that waits for a canary
        lands after the SLO broke), the node-loss playbook (quarantine a silent node) and the data
        steward's moves back into a service's regions go at once. A residency move is a hard rule, not
        an experiment: its canary could only "roll back" into the region the data must not be in."""
        action = proposal.action
        if isinstance(action, QuarantineNode):
            return proposal.agent == "reliability"
        if isinstance(action, Migrate) and proposal.agent == "data_steward":
            return True
        return _capacity_adding(observation, action)

    def _run_agents(self, observation: Observation, state: MasState, setpoints: Any, forecast: fc.Forecast,
                    prices: dict[str, float], as_claimed: Observation | None = None,
                    ) -> tuple[list[Proposal], tuple[Any, ...], tuple[Incident, ...]]:
        (sentinel, scaling, placement, reliability, steward, scheduler, cost, observability, triage) = self.agents
        states = list(state.agent_states)
        extras: dict[str, Any] = {
            handoff.REPLICA_SETPOINTS: setpoints,
            handoff.ROLLED_BACK_BY_AGENT: state.rolled_back_by_agent,
            handoff.INCIDENTS: state.incidents,
        }
        upper = forecast.upper_rps * 1.0

        def context() -> AgentContext:
            return AgentContext(forecast_rps=upper, prices=prices, trust=state.trust, extras=dict(extras))

        proposals: list[Proposal] = []
        order = (sentinel, scaling, placement, reliability, steward, scheduler, cost, observability)
        for i, agent in enumerate(order):
            if agent is placement:
                extras[handoff.SCALE_TARGETS] = handoff.scale_targets_from(
                    [p for p in proposals if p.agent == scaling.name])
            seen = as_claimed if agent is sentinel and as_claimed is not None else observation
            out, states[i] = agent.decide(seen, states[i], context())
            proposals.extend(out)
            if agent is placement:
                extras[handoff.BIDS] = getattr(states[i], "last_bids", ())
        bus = Bus()
        publish_events(bus, states[7])
        incidents: list[Incident] = []
        bus.subscribe(Incident, incidents.append)
        bus.drain()
        extras[handoff.PROPOSALS] = tuple(proposals)
        extras[handoff.INCIDENTS] = (*state.incidents, *incidents)
        out, states[8] = triage.decide(observation, states[8], context())
        proposals.extend(out)
        return proposals, tuple(states), tuple(incidents)

    def _enactable_only(self, proposals: Sequence[Proposal]) -> tuple[list[Proposal], list[tuple[Proposal, str]]]:
        """(kept, dropped with the reason): what the world can enact, and the rest."""
        kept: list[Proposal] = []
        dropped: list[tuple[Proposal, str]] = []
        for p in proposals:
            kind = type(p.action).__name__
            if kind in self.settings.unenactable:
                dropped.append((p, f"{kind} cannot be enacted here (no ingress or runtime hook): not proposed"))
            else:
                kept.append(p)
        return kept, dropped

    @staticmethod
    def _through_the_bus(proposals: Sequence[Proposal]) -> list[Proposal]:
        bus = Bus()
        delivered: list[Proposal] = []
        bus.subscribe(ProposalPublished, lambda e: delivered.append(e.proposal))
        for p in proposals:
            bus.publish(ProposalPublished(p))
        bus.drain()
        return delivered

    # ------------------------------------------------------------------ what the run reports
    @staticmethod
    def rollback_pct(state: MasState) -> float | None:
        """Rolled back / canaried, in per cent (None when nothing went through a canary)."""
        return 100.0 * state.rolled_back / state.canaried if state.canaried else None

    @staticmethod
    def decision_log(state: MasState) -> list[dict[str, Any]]:
        log = [ro.as_json(r) for r in (*state.finished, *state.active)]
        return sorted(log, key=lambda r: r["transitions"][0]["at_s"] if r["transitions"] else 0.0)


def one_request_per_target(records: Sequence[ro.Rollout], active: Sequence[ro.Rollout], now_s: float,
                           ) -> tuple[list[ro.Rollout], list[ro.Rollout]]:
    """(kept, repeats): a new rollout that would wait for a person while a request for the same
    (action, target) already waits is not filed again (it becomes a Rejected repeat with no shield
    verdict, which is not recorded as an AgentAction): the agents propose the same move every tick
    while the world stands still, and a person is asked once."""
    waiting = {ro.request_key(a): r.id for r in active if r.stage is ro.Stage.AWAITING_APPROVAL for a in r.actions}
    kept: list[ro.Rollout] = []
    repeats: list[ro.Rollout] = []
    for r in records:
        if r.stage is not ro.Stage.AWAITING_APPROVAL:
            kept.append(r)
            continue
        keys = [ro.request_key(a) for a in r.actions]
        if keys and all(k in waiting for k in keys):
            why = f"the same request already awaits a person ({waiting[keys[0]]})"
            repeats.append(replace(_expire(r, now_s, why), shield=(ro.ShieldVerdict(True),), twin=None))
            continue
        waiting.update(dict.fromkeys(keys, r.id))
        kept.append(r)
    return kept, repeats


def _enactable(actions: Sequence[Action]) -> list[Action]:
    """Drop exact repeats (a rollout and a fast-path move can name the same thing in one tick)."""
    seen: set[Action] = set()
    out: list[Action] = []
    for a in actions:
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out


def _fast_track(rollout: ro.Rollout, now_s: float, why: str) -> ro.Rollout:
    transition = ro.Transition(now_s, rollout.stage, ro.Stage.APPLIED, why)
    return replace(rollout, stage=ro.Stage.APPLIED, transitions=(*rollout.transitions, transition),
                   shield=(ro.ShieldVerdict(True),))


def _expire(rollout: ro.Rollout, now_s: float, why: str) -> ro.Rollout:
    transition = ro.Transition(now_s, rollout.stage, ro.Stage.REJECTED, why)
    return replace(rollout, stage=ro.Stage.REJECTED, transitions=(*rollout.transitions, transition))


def _rejected_record(rollout_id: str, proposal: Proposal, rejection: Any, observation: Observation) -> ro.Rollout:
    rollout = ro.propose(rollout_id, [proposal], observation)
    return ro.screen(rollout, observation.time_s, (rejection,), None)


def _dropped_record(rollout_id: str, proposal: Proposal, why: str, observation: Observation) -> ro.Rollout:
    return _expire(ro.propose(rollout_id, [proposal], observation), observation.time_s, why)


__all__ = ["MasController", "MasSettings", "MasState", "one_request_per_target", "resolve_conflicts"]
