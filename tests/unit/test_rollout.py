"""Progressive delivery: shadow, canary, full; a bad canary is rolled back and not retried for a while."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tests.unit.observations import advance as later
from tests.unit.observations import observation

from kubeagora.agents.base import Proposal
from kubeagora.decision.rollout import (
    Rollout,
    RolloutMemory,
    RolloutPolicy,
    Stage,
    advance,
    approve,
    as_json,
    damp,
    deny,
    propose,
    remember,
    screen,
    split_for_canary,
)
from kubeagora.decision.shield import Rejection, Violation
from kubeagora.decision.twin import ArmOutcome, TwinVerdict
from kubeagora.model import Action, Migrate, Observation, Scale, ShedLoad

POLICY = RolloutPolicy(shadow_s=30.0, canary_s=60.0, canary_settle_s=10.0, cooldown_s=600.0,
                       oscillation_window_s=300.0)


def web_at(time_s: float = 1000.0, p99_ms: float = 100.0, replicas: int = 4, dropped: float = 0.0,
           arrived: float = 0.0) -> Observation:
    return observation(time_s=time_s, ready=replicas, p99_ms=p99_ms, p95_ms=p99_ms * 0.7, arrival_rps=200.0,
                       capacity_rps=160.0 * replicas, dropped_total=dropped, arrived_total=arrived)


def scale_proposal(replicas: int) -> Proposal:
    return Proposal("scaler", Scale("web", replicas), "demand fell", inputs={"arrival_rps": 200.0},
                    predicted_effect={"replicas": float(replicas)}, risk=0.1)


def twin_said(accepted: bool = True, predicted_p99_ms: float = 100.0) -> TwinVerdict:
    arm = ArmOutcome((predicted_p99_ms,), predicted_p99_ms / 250.0, 0.0, 0.0, 24_000.0)
    return TwinVerdict(accepted, () if accepted else ("web: predicted p99 rises",), arm, arm, 0.25, 120.0, (0, 1, 2))


def run(rollout: Rollout, observations: Sequence[Observation]) -> tuple[Rollout, list[tuple[Action, ...]]]:
    enacted = []
    for obs in observations:
        rollout, actions = advance(rollout, obs, POLICY)
        if actions:
            enacted.append(actions)
    return rollout, enacted


def screened(proposal: Proposal, obs: Observation) -> Rollout:
    rollout = screen(propose("r-1", [proposal], obs), obs.time_s, [], twin_said(), POLICY)
    assert rollout.stage is Stage.SHADOW
    return rollout


def test_a_healthy_canary_goes_on_to_the_full_change() -> None:
    start = web_at()
    rollout = screened(scale_proposal(2), start)
    shadow = [later(start, t) for t in (10, 20, 30)]
    canary = [later(start, t) for t in (40, 60, 80, 90)]
    rollout, enacted = run(rollout, shadow + canary)
    assert rollout.stage is Stage.APPLIED
    # one replica first (a quarter of the change, at least one), then the rest
    assert enacted == [(Scale("web", 3, "canary of 2"),), (Scale("web", 2),)]
    assert [t.to_stage for t in rollout.transitions] == [Stage.PROPOSED, Stage.SHADOW, Stage.CANARY, Stage.APPLIED]
    assert [t.at_s for t in rollout.transitions] == [1000.0, 1000.0, 1030.0, 1090.0]


def test_a_canary_that_worsens_p99_is_rolled_back_and_not_retried_during_the_cooldown() -> None:
    start = web_at()
    rollout = screened(scale_proposal(2), start)
    shadow = [later(start, t) for t in (10, 20, 30)]
    worse = later(start, 40, p99_ms=200.0)  # p99/target 0.4 → 0.8
    rollout, enacted = run(rollout, [*shadow, worse])
    assert rollout.stage is Stage.ROLLED_BACK
    assert enacted[-1] == (Scale("web", 4, "rollback"),)
    assert "canary p99/target 0.80 vs baseline 0.40" in rollout.transitions[-1].why

    memory = remember(RolloutMemory(), rollout, worse, POLICY)
    retry = scale_proposal(2)
    kept, suppressed = damp(memory, [retry], later(start, 100), POLICY)
    assert kept == ()
    assert "cooling down" in suppressed[0][1]
    # a scale-up of the same service is another action and passes
    kept, _ = damp(memory, [scale_proposal(6)], later(start, 100), POLICY)
    assert len(kept) == 1
    # after the cooldown the same move may be tried again
    kept, _ = damp(memory, [retry], later(start, 40 + 601), POLICY)
    assert kept == (retry,)


def test_one_noisy_window_under_the_canary_does_not_roll_back_a_sustained_rise_does() -> None:
    """The canary is judged on its mean p99 since it settled, as the baseline is the shadow's mean: one
    10-second window's p99 scatters by more than the 10 points of the target judged, and a single noisy
    window rolled back good moves (then kept them from being retried for ten minutes)."""
    start = web_at()
    shadow = [later(start, t) for t in (10, 20, 30)]  # p99/target 0.40
    noisy = [later(start, 40), later(start, 50, p99_ms=140.0), *(later(start, t) for t in (60, 70, 80, 90))]
    rollout, _ = run(screened(scale_proposal(2), start), shadow + noisy)
    assert rollout.stage is Stage.APPLIED  # 0.40 and 0.56: a mean of 0.48, within 0.10 of the baseline
    sustained = [later(start, 40, p99_ms=140.0), later(start, 50, p99_ms=140.0)]
    rollout, _ = run(screened(scale_proposal(2), start), shadow + sustained)
    assert rollout.stage is Stage.ROLLED_BACK
    assert "canary p99/target 0.56 vs baseline 0.40" in rollout.transitions[-1].why


def test_a_canary_that_drops_requests_is_rolled_back() -> None:
    start = web_at()
    rollout = screened(scale_proposal(2), start)
    shadow = [later(start, t, arrived_total=2000.0 * t) for t in (10, 20, 30)]
    # during the canary 5 % of arrivals are dropped while p99 stays put
    canary = [later(start, t, arrived_total=2000.0 * t, dropped_total=100.0 * (t - 30)) for t in (35, 45)]
    rollout, enacted = run(rollout, shadow + canary)
    assert rollout.stage is Stage.ROLLED_BACK
    assert enacted[-1] == (Scale("web", 4, "rollback"),)
    assert "error rate" in rollout.transitions[-1].why


def test_oscillating_scale_proposals_are_damped() -> None:
    start = web_at()
    rollout = screened(scale_proposal(6), start)  # scale up, applied
    rollout, _ = run(rollout, [later(start, t) for t in (10, 30, 50, 90)])
    assert rollout.stage is Stage.APPLIED
    memory = remember(RolloutMemory(), rollout, later(start, 90), POLICY)
    after = later(start, 120, desired_replicas=6)
    kept, suppressed = damp(memory, [scale_proposal(4)], after, POLICY)
    assert kept == ()
    assert "reverses a scale" in suppressed[0][1]
    # more in the same direction is fine, and so is the reversal once the window has passed
    assert len(damp(memory, [scale_proposal(8)], after, POLICY)[0]) == 1
    assert len(damp(memory, [scale_proposal(4)], later(start, 90 + 301, desired_replicas=6), POLICY)[0]) == 1


def test_a_reversal_that_is_applied_puts_the_reversed_move_on_cooldown() -> None:
    memory = remember(RolloutMemory(), run(screened(scale_proposal(6), web_at()),
                                           [later(web_at(), t) for t in (10, 30, 50, 90)])[0], later(web_at(), 90))
    # a reversal that got through anyway (a person approved it): the move it reversed cools down
    down_start = web_at(time_s=1200.0, replicas=6)
    down = screen(propose("r-2", [scale_proposal(4)], down_start), 1200.0, [], None, POLICY)
    down, _ = run(down, [later(down_start, t) for t in (10, 30, 50, 90)])
    assert down.stage is Stage.APPLIED
    memory = remember(memory, down, later(down_start, 90), POLICY)
    past_the_window = later(down_start, 90 + 301, desired_replicas=4)
    kept, suppressed = damp(memory, [scale_proposal(8)], past_the_window, POLICY)
    assert kept == ()
    assert "reversed by r-2" in suppressed[0][1]


def test_screening_sends_hard_violations_to_rejected_and_soft_ones_or_high_risk_to_a_person() -> None:
    obs = web_at()
    base = propose("r-1", [scale_proposal(2)], obs)
    hard = Rejection(scale_proposal(2), Violation("slo-invariant", "too few", {"replicas_needed": 3}))
    soft = Rejection(scale_proposal(2), Violation("budget", "over", {}, person_may_approve=True))
    assert screen(base, 1000.0, [hard], twin_said(), POLICY).stage is Stage.REJECTED
    assert screen(base, 1000.0, [], twin_said(accepted=False), POLICY).stage is Stage.REJECTED
    waiting = screen(base, 1000.0, [soft], twin_said(), POLICY)
    assert waiting.stage is Stage.AWAITING_APPROVAL
    risky = screen(base, 1000.0, [], twin_said(), POLICY, risk=0.8)
    assert risky.stage is Stage.AWAITING_APPROVAL
    assert "risk 0.80" in risky.transitions[-1].why
    assert approve(risky, 1100.0, "alice").stage is Stage.SHADOW
    assert deny(risky, 1100.0, "alice").transitions[-1].why == "denied by alice"


def test_a_twin_that_mispredicted_the_shadow_asks_a_person() -> None:
    start = web_at(p99_ms=240.0)  # the twin said 100 ms, the service runs at 240 ms
    rollout = screen(propose("r-1", [scale_proposal(2)], start), 1000.0, [], twin_said(predicted_p99_ms=50.0),
                     POLICY)
    rollout, enacted = run(rollout, [later(start, t) for t in (10, 20, 30)])
    assert rollout.stage is Stage.AWAITING_APPROVAL
    assert enacted == []
    assert rollout.shadow_p99_error_slo_share is not None
    assert rollout.shadow_p99_error_slo_share > 0.5


def test_the_canary_is_a_fraction_of_the_change() -> None:
    obs = web_at(replicas=4)
    canary, rest, undo = split_for_canary(obs, [Scale("web", 12)], 0.25)
    assert canary == (Scale("web", 6, "canary of 12"),)
    assert rest == (Scale("web", 12),)
    assert undo == (Scale("web", 4, "rollback"),)
    moves = [Migrate("web", "node-0", f"node-{i}") for i in range(1, 5)]
    canary, rest, undo = split_for_canary(obs, moves, 0.25)
    assert canary == (moves[0],)
    assert rest == tuple(moves[1:])
    assert undo == (Migrate("web", "node-1", "node-0", "rollback"),)
    canary, _, _ = split_for_canary(obs, [ShedLoad("web", 0.4)], 0.25)
    assert canary[0] == ShedLoad("web", 0.1, "canary")


def test_every_decision_serialises_to_json_with_its_stages_and_inputs() -> None:
    start = web_at()
    rollout = screened(scale_proposal(2), start)
    rollout, _ = run(rollout, [later(start, t) for t in (10, 20, 30, 40, 90)])
    record = json.loads(json.dumps(as_json(rollout), allow_nan=False))
    assert record["stage"] == "Applied"
    assert record["agents"] == ["scaler"]
    assert record["proposals"][0]["action"] == {"kind": "Scale", "service": "web", "replicas": 2, "reason": ""}
    assert record["proposals"][0]["inputs"] == {"arrival_rps": 200.0}
    assert record["proposals"][0]["lane"] == "ROUTINE"
    assert record["shield"] == [{"allowed": True, "guard": "", "reason": "", "figures": {},
                                 "person_may_approve": False}]
    assert record["twin"]["accepted"] is True
    assert [(t["at_s"], t["to_stage"]) for t in record["transitions"]][1:] == [
        (1000.0, "Shadow"), (1030.0, "Canary"), (1090.0, "Applied")]
