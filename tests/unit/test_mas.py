"""The multi-agent controller: how it resolves, delivers and records proposals."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.observations import observation
from tests.unit.sim_helpers import small_scenario
from typer.testing import CliRunner

from kubeagora.agents.base import Lane, Proposal
from kubeagora.cli import app
from kubeagora.controllers.mas import MasController, resolve_conflicts
from kubeagora.decision import rollout as ro
from kubeagora.model import Place, Scale
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
