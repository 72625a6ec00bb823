"""The multi-agent controller: how it resolves, delivers and records proposals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from tests.unit.observations import in_regions, node, observation, with_replicas
from tests.unit.sim_helpers import small_scenario
from typer.testing import CliRunner

from kubeagora.agents.base import Lane, Proposal
from kubeagora.cli import app
from kubeagora.controllers.mas import MasController, MasSettings, one_request_per_target, resolve_conflicts
from kubeagora.decision import rollout as ro
from kubeagora.model import Migrate, Observation, Place, QuarantineNode, Scale, ShedLoad
from kubeagora.operator.records import worth_recording
from kubeagora.sim.engine import Engine
from kubeagora.sim.run import simulate


def test_placed_replicas_replace_a_plain_scale_up_and_the_bigger_scale_wins() -> None:
    obs = observation(ready=2)
    up3 = Proposal("scaling", Scale("web", 3), "forecast")
    up5 = Proposal("reliability", Scale("web", 5), "playbook")
    place = Proposal("placement", Place("web", "node-0"), "contract net")
    kept, dropped = resolve_conflicts(obs, [up3, up5])
    assert kept == [up5]
    assert [p for p, _ in dropped] == [up3]
    kept, _ = resolve_conflicts(obs, [up3, place])
    assert kept == [place]


def test_an_incident_decides_before_routine_work_on_the_same_target() -> None:
    obs = observation(ready=4)
    incident = Proposal("reliability", Scale("web", 6), "node lost", lane=Lane.INCIDENT)
    routine = Proposal("cost_energy", Scale("web", 3), "idle")
    kept, dropped = resolve_conflicts(obs, [incident, routine])
    assert kept == [incident]
    assert "already decided" in dropped[0][1]


def test_capacity_adding_moves_take_the_fast_path_and_capacity_removing_ones_do_not() -> None:
    sc = small_scenario(mix={"web": 1}, services=1, total_rps=300, duration_s=120)
    obs = Engine(sc).observe()
    name = sc.services[0].name
    assert MasController._fast_path(obs, Proposal("scaling", Scale(name, 5), "up"))
    assert not MasController._fast_path(obs, Proposal("scaling", Scale(name, 0), "down"))


def test_a_run_keeps_a_record_of_every_decision_that_serialises() -> None:
    sc = small_scenario(duration_s=240, total_rps=900, bursts=[{"at_s": 100, "duration_s": 80, "factor": 4}])
    result = simulate(sc, MasController())
    assert result.decisions, "the MAS decided something during a 4x burst"
    json.dumps(result.decisions)
    record = result.decisions[0]
    assert {"id", "proposals", "stage", "transitions", "shield"} <= set(record)
    assert record["proposals"][0]["agent"]
    assert record["proposals"][0]["reason"]
    stages = {d["stage"] for d in result.decisions}
    assert stages <= {s.value for s in ro.Stage}
    assert "Applied" in stages


def test_explain_prints_who_decided_what_and_why(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    args = ["simulate", "--scenario", "burst-hotspot", "--controller", "mas", "--duration", "480", "--json", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, ["explain", str(out), "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert "burst-hotspot · mas" in result.output
    assert any(agent in result.output for agent in ("scaling", "placement", "reliability", "scheduler"))
    missing = CliRunner().invoke(app, ["explain", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2
    assert "no such file" in missing.output
    assert "Traceback" not in missing.output


def _silent_fleet(n_silent: int) -> Observation:
    """One web replica on a live node; `n_silent` more nodes silent for a minute (an old topology's)."""
    nodes = (node("live"), *(node(f"old-{i}") for i in range(n_silent)))
    obs = with_replicas(observation(nodes=nodes, arrival_rps=20.0, capacity_rps=160.0, p95_ms=60.0, p99_ms=90.0),
                        [(0, 0, True)])
    heard = np.array([True] + [False] * n_silent)
    return replace(obs, node_ready=heard, node_heartbeat_age_s=np.where(heard, 0.0, 60.0))


def test_a_request_to_a_person_is_filed_once_per_action_and_target_not_every_tick() -> None:
    """Twenty silent nodes under a one-quarantine rate limit: the issue saw 20+ AwaitingApproval
    QuarantineNodes in a minute, one per node per tick. Each (action, target) now waits once."""
    controller = MasController()
    obs = _silent_fleet(20)
    state = controller.initial_state(obs)
    waiting_per_tick = []
    for tick in range(12):
        _, state = controller.decide(replace(obs, time_s=5.0 * tick), state)
        waiting_per_tick.append(sorted(ro.request_key(a) for r in state.active
                                       if r.stage is ro.Stage.AWAITING_APPROVAL for a in r.actions))
    assert waiting_per_tick[0], "the rate limit sent quarantines to a person"
    assert all(len(w) == len(set(w)) for w in waiting_per_tick), "one open request per (action, target)"
    assert waiting_per_tick[-1] == waiting_per_tick[1], "nothing re-filed after the first ticks"
    repeats = [r for r in state.finished if "already awaits a person" in r.transitions[-1].why]
    assert repeats
    assert not any(worth_recording(r) for r in repeats), "repeats leave no AgentAction"
    recorded = [r for r in (*state.active, *state.finished) if worth_recording(r)
                and any(t.to_stage is ro.Stage.AWAITING_APPROVAL for t in r.transitions)]
    assert len(recorded) == len(waiting_per_tick[-1]) == 20


def test_one_request_per_target_keeps_the_first_of_a_tick_and_lets_other_targets_through() -> None:
    obs = observation()
    risky = [Proposal("sentinel", QuarantineNode("node-0"), "odd", risk=0.9),
             Proposal("triage", QuarantineNode("node-0"), "again", risk=1.0),
             Proposal("scaling", Scale("web", 0), "idle", risk=0.9)]
    records = [ro.screen(ro.propose(f"r{i}", [p], obs), 0.0, (), None) for i, p in enumerate(risky)]
    assert all(r.stage is ro.Stage.AWAITING_APPROVAL for r in records)
    kept, repeats = one_request_per_target(records, (), 0.0)
    assert [r.id for r in kept] == ["r0", "r2"]
    assert [r.id for r in repeats] == ["r1"]
    kept, repeats = one_request_per_target([records[2]], kept, 5.0)
    assert kept == []
    assert repeats[0].stage is ro.Stage.REJECTED


def test_actions_the_world_cannot_enact_are_never_put_to_a_person() -> None:
    """On a cluster without an ingress hook a ShedLoad waited for approval during an ordinary burst."""
    sc = small_scenario(mix={"web": 1}, services=1, total_rps=300, duration_s=120)
    obs = Engine(sc).observe()
    name = sc.services[0].name
    controller = MasController(MasSettings(unenactable=frozenset({"ShedLoad"})))
    kept, dropped = controller._enactable_only([Proposal("scheduler", ShedLoad(name, 0.6), "shed", risk=0.6),
                                                Proposal("scaling", Scale(name, 5), "up")])
    assert [p.agent for p in kept] == ["scaling"]
    assert "cannot be enacted here" in dropped[0][1]
    overloaded = replace(obs, arrival_rps=obs.capacity_rps * 3 + 500.0, p95_ms=obs.p95_ms * 0 + 900.0,
                         p99_ms=obs.p99_ms * 0 + 2000.0)
    _, state = controller.decide(overloaded, controller.initial_state(overloaded))
    assert not any(isinstance(a, ShedLoad) for r in state.active for a in r.actions)


def test_a_move_back_into_a_services_regions_is_never_canaried_so_never_rolled_back() -> None:
    """The issue: the data steward's Migrate out of region-1 was canaried and rolled back, and the
    replica stayed where its data must not be."""
    obs = observation()
    steward = Proposal("data_steward", Migrate("web", "node-in-region-1", "node-0", "residency"), "residency")
    other = Proposal("cost_energy", Migrate("web", "node-0", "node-1", "cheaper"), "cheaper")
    assert MasController._fast_path(obs, steward)
    assert not MasController._fast_path(obs, other)


def test_a_move_the_twin_had_no_time_for_does_not_use_the_disruption_budget() -> None:
    """A capacity-removing move that passed the shield but was never delivered (the twin had no time for it
    this tick, or turned it down) used to count against the shield's disruption budget all the same, and
    so held back the moves that did need it."""
    nodes = (node("near-idle"), node("near-busy"), node("far", "region-1"))
    obs = in_regions(with_replicas(observation(nodes=nodes, arrival_rps=60.0), [(0, 2, True), (0, 0, True)]),
                     ("region-0", "region-1"))
    obs = replace(obs, node_utilization=np.array([0.05, 0.9, 0.1]))
    screened = MasController()
    _, state = screened.decide(obs, screened.initial_state(obs))
    assert [type(a).__name__ for r in state.active for a in r.actions] == ["Migrate"]
    assert [e.kind for e in state.shield.events] == ["migrate"]  # delivered: in its shadow stage, counted
    no_time = MasController(MasSettings(max_twin_runs_per_tick=0))
    _, state = no_time.decide(obs, no_time.initial_state(obs))
    assert state.active == ()
    assert state.shield.events == ()
