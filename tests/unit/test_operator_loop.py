"""The control loop's pure steps: autonomy (approve, observe), people's answers, withheld actions, rollout pacing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from tests.unit.operator_objects import by_key, checkout_cluster, deployment, intent, observe_checkout, signals

from kubeagora.agents.base import Proposal
from kubeagora.controllers.mas import MasController, MasState
from kubeagora.decision import rollout as ro
from kubeagora.model import Observation, Place, QuarantineNode, Scale
from kubeagora.operator import adapter, records
from kubeagora.operator.journal import Answer
from kubeagora.operator.loop import LoopSettings, _policy_for, answer, hold_for_people, withheld_actions

CHECKOUT = adapter.service_key("default", "checkout")
CART = adapter.service_key("default", "cart")

RUN = "c0ffee"
POLICY = ro.RolloutPolicy(shadow_s=30.0, canary_s=60.0)


def checkout_at(t: float = 100.0) -> Observation:
    return observe_checkout(checkout_cluster(replicas=2), t)


def proposal(action: Any, agent: str = "scaling", risk: float = 0.1) -> Proposal:
    return Proposal(agent, action, f"{agent}: {action}", predicted_effect={"replicas": 1.0}, risk=risk)


def fast_tracked(rid: str, action: Any, obs: Observation) -> ro.Rollout:
    """A capacity-adding move as the controller delivers it: Applied at once, its action enacted this tick."""
    r = ro.propose(rid, [proposal(action)], obs)
    return replace(r, stage=ro.Stage.APPLIED, shield=(ro.ShieldVerdict(True),), transitions=(
        *r.transitions, ro.Transition(obs.time_s, ro.Stage.PROPOSED, ro.Stage.APPLIED, "capacity-adding: at once")))


def in_shadow(rid: str, action: Any, obs: Observation) -> ro.Rollout:
    r = ro.screen(ro.propose(rid, [proposal(action)], obs), obs.time_s, [], None, POLICY)
    assert r.stage is ro.Stage.SHADOW
    return r


def awaiting(rid: str, action: Any, obs: Observation) -> ro.Rollout:
    r = ro.screen(ro.propose(rid, [proposal(action, risk=0.9)], obs), obs.time_s, [], None, POLICY)
    assert r.stage is ro.Stage.AWAITING_APPROVAL
    return r


def state_with(obs: Observation, active: tuple[ro.Rollout, ...] = (), finished: tuple[ro.Rollout, ...] = (),
               ) -> MasState:
    return replace(MasController().initial_state(obs), active=active, finished=finished,
                   next_id=1 + max((int(r.id[1:]) for r in (*active, *finished)), default=0))


def find(state: MasState, rid: str) -> ro.Rollout:
    return next(r for r in (*state.active, *state.finished) if r.id == rid)


# ---------------------------------------------------------------------------------------------- approve
def test_approve_holds_a_fast_tracked_rollout_for_a_person_and_withholds_its_action() -> None:
    obs = checkout_at()
    up, cart_up = Scale(CHECKOUT, 4, "burst"), Scale(CART, 3, "burst")
    state = state_with(obs, finished=(fast_tracked("r3", up, obs), fast_tracked("r4", cart_up, obs)))
    state, observed, held = hold_for_people(state, {"r3", "r4"}, {CHECKOUT: "approve", CART: "auto"}, 105.0)
    assert (observed, held) == (set(), {"r3"})
    r3 = find(state, "r3")
    assert r3 in state.active
    assert r3.stage is ro.Stage.AWAITING_APPROVAL
    assert r3.transitions[-1] == ro.Transition(105.0, ro.Stage.APPLIED, ro.Stage.AWAITING_APPROVAL,
                                               "autonomy approve: a person decides")
    assert find(state, "r4").stage is ro.Stage.APPLIED  # the auto service's move stands
    assert withheld_actions([up, cart_up], state, observed | held) == [cart_up]
    # its AgentAction asks a person
    assert records.manifest(r3, "default", "checkout", RUN, records.Clock(0.0))["spec"]["approval"] == "Pending"


def test_approve_holds_a_new_shadow_but_not_what_was_decided_before() -> None:
    obs = checkout_at()
    new = in_shadow("r5", Scale(CHECKOUT, 1, "idle"), obs)
    old_shadow = in_shadow("r2", Scale(CHECKOUT, 1, "idle"), obs)
    old_applied = fast_tracked("r1", Scale(CHECKOUT, 3, "burst"), obs)
    state = state_with(obs, active=(old_shadow, new), finished=(old_applied,))
    state, observed, held = hold_for_people(state, {"r5"}, {CHECKOUT: "approve"}, 105.0)
    assert (observed, held) == (set(), {"r5"})
    assert find(state, "r5").stage is ro.Stage.AWAITING_APPROVAL
    assert find(state, "r2").stage is ro.Stage.SHADOW
    assert find(state, "r1").stage is ro.Stage.APPLIED


def test_approve_on_the_real_controller_enacts_nothing_and_asks_once_per_move() -> None:
    world = checkout_cluster(replicas=2, autonomy="approve")
    services = [b.service for b in world["bindings"]]
    controller = MasController()
    counters = adapter.Counters()
    state: MasState | None = None
    modes = {b.service.name: b.autonomy for b in world["bindings"]}
    awaiting_counts = []
    for t in (0.0, 5.0, 10.0):
        # 1000 req/s offered to two replicas that serve 320: the agents add capacity on the fast path
        counters = adapter.advance_counters(counters, t, {CHECKOUT: signals(CHECKOUT, 1000.0, 320.0, 680.0,
                                                                             300.0, 400.0)}, services)
        obs = observe_checkout(world, t, offered_rps=1000.0, p99_ms=400.0, counters=counters)
        state = state or controller.initial_state(obs)
        before = state.next_id
        actions, state = controller.decide(obs, state)
        new_ids = {f"r{i}" for i in range(before, state.next_id)}
        if t == 0.0:
            assert any(find(state, i).stage is ro.Stage.APPLIED for i in new_ids), "a fast-tracked move"
            assert actions, "which the controller would enact"
        state, observed, held = hold_for_people(state, new_ids, modes, t)
        assert observed == set()
        assert withheld_actions(actions, state, observed | held) == []
        awaiting_counts.append(sum(r.stage is ro.Stage.AWAITING_APPROVAL for r in state.active))
    # the same moves are proposed every tick while the world stands still: a person is asked once
    assert awaiting_counts[0] > 0
    assert awaiting_counts == [awaiting_counts[0]] * 3
    repeats = [r for r in state.finished if r.stage is ro.Stage.REJECTED and "already awaits" in r.transitions[-1].why]
    assert len(repeats) == 2 * awaiting_counts[0]
    assert not any(records.worth_recording(r) for r in repeats)  # no AgentAction for a repeat


def test_approve_asks_once_per_move_and_again_for_a_further_one() -> None:
    obs = checkout_at()
    edge, fog = Place(CHECKOUT, "edge-cpu-0", "bid"), Place(CHECKOUT, "fog-cpu-0", "bid")
    older = replace(fast_tracked("r1", edge, obs), stage=ro.Stage.AWAITING_APPROVAL)
    new = (fast_tracked("r2", edge, obs), fast_tracked("r3", edge, obs), fast_tracked("r4", fog, obs))
    state = state_with(obs, active=(older,), finished=new)
    state, _, held = hold_for_people(state, {"r2", "r3", "r4"}, {CHECKOUT: "approve"}, 105.0)
    assert held == {"r2", "r3", "r4"}
    # r2 repeats r1; r3 is a second replica on edge-cpu-0 and r4 another node: a person decides those
    assert [(r.id, r.stage) for r in state.active] == [("r1", ro.Stage.AWAITING_APPROVAL),
                                                       ("r3", ro.Stage.AWAITING_APPROVAL),
                                                       ("r4", ro.Stage.AWAITING_APPROVAL)]
    assert find(state, "r2").stage is ro.Stage.REJECTED
    assert withheld_actions([edge, edge, fog], state, held) == []


# ---------------------------------------------------------------------------------------------- observe
def test_observe_records_a_fast_tracked_move_but_withholds_it() -> None:
    obs = checkout_at()
    up = Scale(CHECKOUT, 4, "burst")
    state = state_with(obs, finished=(fast_tracked("r3", up, obs),))
    state, observed, held = hold_for_people(state, {"r3"}, {CHECKOUT: "observe"}, 105.0)
    assert (observed, held) == ({"r3"}, set())
    assert find(state, "r3") in state.finished
    assert withheld_actions([up], state, observed | held) == []


def test_observe_takes_shadows_out_of_delivery_and_leaves_waiting_ones_for_a_person() -> None:
    obs = checkout_at()
    shadow = in_shadow("r5", Scale(CHECKOUT, 1, "idle"), obs)
    waiting = awaiting("r6", Scale(CHECKOUT, 9, "burst"), obs)
    state = state_with(obs, active=(shadow, waiting))
    state, observed, held = hold_for_people(state, {"r5", "r6"}, {CHECKOUT: "observe"}, 105.0)
    assert (observed, held) == ({"r5"}, set())
    assert [r.id for r in state.active] == ["r6"]
    assert find(state, "r5") in state.finished


def test_an_observed_rollout_still_reads_proposed_on_the_next_tick() -> None:
    # the loop writes an AgentAction's state as the rollout's stage, except in the tick that recorded
    # it as Proposed: the stage itself must say Proposed from then on, not Applied or Shadow
    obs = checkout_at()
    state = state_with(obs, active=(in_shadow("r5", Scale(CHECKOUT, 1, "idle"), obs),),
                       finished=(fast_tracked("r3", Scale(CHECKOUT, 4, "burst"), obs),))
    modes = {CHECKOUT: "observe"}
    state, observed, _ = hold_for_people(state, {"r3", "r5"}, modes, 105.0)
    assert observed == {"r3", "r5"}
    state, observed, _ = hold_for_people(state, set(), modes, 110.0)
    assert observed == set()
    for rid in ("r3", "r5"):
        r = find(state, rid)
        assert r.stage.value == records.STATE_PROPOSED
        assert records.status(r, records.Clock(0.0))["status"]["state"] == "Proposed"


def test_auto_changes_nothing() -> None:
    obs = checkout_at()
    state = state_with(obs, active=(in_shadow("r5", Scale(CHECKOUT, 1), obs),),
                       finished=(fast_tracked("r3", Scale(CHECKOUT, 4), obs),))
    after, observed, held = hold_for_people(state, {"r3", "r5"}, {CHECKOUT: "auto"}, 105.0)
    assert (observed, held) == (set(), set())
    assert (after.active, after.finished) == (state.active, state.finished)
    assert withheld_actions([Scale(CHECKOUT, 4)], after, set()) == [Scale(CHECKOUT, 4)]


def test_a_rollout_on_several_services_takes_the_most_careful_autonomy() -> None:
    obs = checkout_at()
    cordon = replace(fast_tracked("r3", QuarantineNode("edge-cpu-0", "silent"), obs), services=(CHECKOUT, CART))
    state = state_with(obs, finished=(cordon,))
    _, observed, held = hold_for_people(state, {"r3"}, {CHECKOUT: "approve", CART: "observe"}, 105.0)
    assert (observed, held) == ({"r3"}, set())
    _, observed, held = hold_for_people(state, {"r3"}, {CHECKOUT: "approve", CART: "auto"}, 105.0)
    assert (observed, held) == (set(), {"r3"})


# ---------------------------------------------------------------------------------------------- answers
def test_a_persons_answers_send_rollouts_on_or_reject_them() -> None:
    obs = checkout_at()
    yes, no, silent = (awaiting("r2", Scale(CHECKOUT, 6), obs), awaiting("r3", Scale(CHECKOUT, 1), obs),
                       awaiting("r4", Scale(CHECKOUT, 8), obs))
    shadow = in_shadow("r5", Scale(CHECKOUT, 2), obs)
    state = state_with(obs, active=(yes, no, silent, shadow))
    answers = {"r2": Answer("Approved", "alice"), "r3": Answer("Denied", "bob"), "r5": Answer("Denied", "carol")}
    after = answer(state, answers, 120.0)
    assert find(after, "r2").stage is ro.Stage.SHADOW
    assert find(after, "r2") in after.active
    assert find(after, "r2").transitions[-1].why == "approved by alice"
    assert find(after, "r3").transitions[-1].why == "denied by bob"
    assert find(after, "r3").stage is ro.Stage.REJECTED
    assert find(after, "r3") in after.finished
    assert find(after, "r4").stage is ro.Stage.AWAITING_APPROVAL
    assert find(after, "r5").stage is ro.Stage.SHADOW  # not waiting: an answer changes nothing
    assert answer(state, {}, 120.0) is state


def test_an_approved_move_goes_through_shadow_and_canary() -> None:
    obs = checkout_at(100.0)
    state = state_with(obs, active=(awaiting("r2", Scale(CHECKOUT, 4, "burst"), obs),))
    state = answer(state, {"r2": Answer("Approved", "alice")}, 100.0)
    r = find(state, "r2")
    enacted = []
    for t in (110.0, 120.0, 130.0):
        r, now = ro.advance(r, checkout_at(t), POLICY)
        enacted.extend(now)
    assert r.stage is ro.Stage.CANARY
    assert enacted == [Scale(CHECKOUT, 3, "canary of 4")]


# ---------------------------------------------------------------------------------------------- withheld
def test_withheld_actions_drop_by_equality_and_count() -> None:
    obs = checkout_at()
    place = Place(CHECKOUT, "edge-cpu-0", "bid")
    held = fast_tracked("r3", place, obs)
    other = fast_tracked("r4", place, obs)
    canaried = replace(in_shadow("r5", Scale(CHECKOUT, 1), obs),
                       canary_actions=(Scale(CHECKOUT, 1, "canary of 1"),))
    state = state_with(obs, active=(canaried,), finished=(held, other))
    actions = [place, place, Scale(CHECKOUT, 1, "canary of 1")]
    assert withheld_actions(actions, state, {"r3"}) == [place, Scale(CHECKOUT, 1, "canary of 1")]
    assert withheld_actions(actions, state, {"r3", "r5"}) == [place]
    assert withheld_actions(actions, state, set()) == actions


# ---------------------------------------------------------------------------------------------- pacing
def two_intents(**second: Any) -> tuple[list[adapter.Binding], dict[str, Any]]:
    intents = [intent("checkout"), intent("cart", **second)]
    deps = by_key([deployment("checkout"), deployment("cart")])
    bindings, unbound = adapter.bind(intents, deps, ["region-0"])
    assert not unbound
    return bindings, by_key(intents)


def test_the_rollout_pacing_is_the_most_careful_among_the_intents() -> None:
    bindings, intents = two_intents(rollout={"shadowSeconds": 90, "canarySeconds": 45, "canaryFraction": 0.1})
    base = ro.RolloutPolicy(approval_risk=0.4)
    policy = _policy_for(bindings, intents, LoopSettings(run=RUN), base)
    assert (policy.shadow_s, policy.canary_s, policy.canary_fraction) == (90.0, 60.0, pytest.approx(0.1))
    assert policy.approval_risk == 0.4  # everything else is the base's
    # the operator's settings override the intents' timing (tests, demos), not the canary's share
    fast = _policy_for(bindings, intents, LoopSettings(run=RUN, shadow_s=2.0, canary_s=4.0), base)
    assert (fast.shadow_s, fast.canary_s, fast.canary_fraction) == (2.0, 4.0, pytest.approx(0.1))


def test_pacing_ignores_intents_gone_or_broken_and_keeps_the_base_without_any() -> None:
    bindings, intents = two_intents(rollout={"shadowSeconds": 90, "canarySeconds": 45, "canaryFraction": 0.1})
    intents[CART] = {**intents[CART], "spec": {"slo": {"p95Ms": 1}}}  # broken since bound
    base = ro.RolloutPolicy(shadow_s=5.0, canary_s=7.0, canary_fraction=0.5)
    policy = _policy_for(bindings, intents, LoopSettings(run=RUN), base)
    assert (policy.shadow_s, policy.canary_s, policy.canary_fraction) == (30.0, 60.0, 0.25)  # checkout's alone
    assert _policy_for([], {}, LoopSettings(run=RUN), base) == base
