"""The clairvoyant planner (fault outlook, planning ahead of faults), the registry, and every controller on the
default scenario."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.sim_helpers import small_scenario

from kubeagora.controllers.clairvoyant import ClairvoyantPlanner
from kubeagora.controllers.fault_outlook import FaultOutlook
from kubeagora.controllers.registry import CONTROLLER_NAMES, make_controller
from kubeagora.model import Migrate, Place, QuarantineNode
from kubeagora.sim.engine import Engine
from kubeagora.sim.run import RunResult, simulate
from kubeagora.sim.scenario import DEFAULT_SCENARIO, compile_scenario, load_scenario


def test_fault_outlook_reads_deaths_partitions_and_throttles_ahead() -> None:
    scenario = small_scenario(faults=[
        {"at_s": 100, "kind": "node-termination", "target": "cloud-cpu-0-0"},
        {"at_s": 200, "kind": "region-partition", "target": "region-1", "duration_s": 50},
        {"at_s": 300, "kind": "gpu-throttle", "target": "region-0", "duration_s": 50, "factor": 0.4},
    ])
    outlook = FaultOutlook.from_scenario(scenario)
    names = [n.name for n in scenario.nodes]
    dead = names.index("cloud-cpu-0-0")
    assert not outlook.dead_nodes(0, 99)[dead]
    assert outlook.dead_nodes(90, 110)[dead]
    assert outlook.dead_nodes(1000, 1001)[dead]
    assert outlook.nodes_dying_for_good(99, 101, run_end_s=120)[dead]
    region1 = np.array([n.region == "region-1" for n in scenario.nodes])
    # users in region 0 lose region 1's nodes; users in region 1 lose everything (the control plane
    # in region 0 drops region 1's endpoints, and region 0 is out of reach)
    assert (outlook.cut_off_nodes(0, 190, 210) == region1).all()
    assert outlook.cut_off_nodes(1, 190, 210).all()
    assert not outlook.cut_off_nodes(0, 251, 290).any()
    gpu0 = [i for i, n in enumerate(scenario.nodes) if n.name == "cloud-gpu-0-0"]
    assert outlook.speed_factor(290, 310)[gpu0] == pytest.approx(0.4)
    assert outlook.speed_factor(0, 290)[gpu0] == pytest.approx(1.0)


def _run(controller: ClairvoyantPlanner, engine: Engine, until_s: float) -> list[object]:
    state = controller.initial_state(engine.observe())
    actions: list[object] = []
    every = round(controller.interval_s / engine.scenario.step_s)
    i = 0
    while engine.state.t < until_s:
        if i % every == 0 and i > 0:
            decided, state = controller.decide(engine.observe(), state)
            assert engine.apply(decided) == []
            actions.extend(decided)
        engine.step()
        i += 1
    return actions


def test_clairvoyant_planner_moves_replicas_off_a_node_before_it_dies_and_quarantines_it() -> None:
    scenario = small_scenario(duration_s=400, total_rps=600, faults=[
        {"at_s": 200, "kind": "node-termination", "target": "cloud-cpu-0-0"}])
    engine = Engine(scenario)
    planner = ClairvoyantPlanner(scenario)
    doomed = [n.name for n in scenario.nodes].index("cloud-cpu-0-0")
    actions = _run(planner, engine, 199)
    r = engine.state.replicas
    assert not ((r.node == doomed) & (r.state != 0)).any(), "nothing left on the node when it dies"
    assert QuarantineNode("cloud-cpu-0-0", "clairvoyant: the node dies before the next tick") in actions
    assert not any(isinstance(a, Place) and a.node == "cloud-cpu-0-0" for a in actions[-40:])
    assert all(not isinstance(a, Migrate) or a.to_node != "cloud-cpu-0-0" for a in actions)
    assert engine.state.counters.lost.sum() == 0


def test_clairvoyant_planner_adds_capacity_before_a_gpu_throttle() -> None:
    scenario = small_scenario(duration_s=400, total_rps=900, services=3, mix={"ml-inference": 1}, faults=[
        {"at_s": 300, "kind": "gpu-throttle", "target": "region-0", "duration_s": 60, "factor": 0.4}])
    engine = Engine(scenario)
    planner = ClairvoyantPlanner(scenario)
    _run(planner, engine, 200)
    before = int(engine.observe().ready_replicas.sum())
    _run(planner, engine, 300)
    ready_at_throttle = int(engine.observe().ready_replicas.sum())
    assert ready_at_throttle > before


def test_registry_knows_every_baseline_and_rejects_others() -> None:
    assert set(CONTROLLER_NAMES) == {"static", "heuristic", "hpa", "keda", "rayserve", "knative", "mpc", "mas",
                                     "clairvoyant"}
    model, source = load_scenario(DEFAULT_SCENARIO)
    with pytest.raises(ValueError, match="known: static, heuristic"):
        make_controller("vpa", compile_scenario(model, source))


@pytest.fixture(scope="module")
def default_runs() -> dict[str, RunResult]:
    model, source = load_scenario(DEFAULT_SCENARIO)
    scenario = compile_scenario(model, source, duration_s=300)
    return {name: simulate(scenario, make_controller(name, scenario)) for name in CONTROLLER_NAMES}


@pytest.mark.parametrize("name", CONTROLLER_NAMES)
def test_every_controller_completes_the_default_scenario(
    default_runs: dict[str, RunResult], name: str
) -> None:
    metrics = default_runs[name].metrics
    assert default_runs[name].controller == name
    assert metrics["throughput_rps"] is not None
    assert metrics["throughput_rps"] > 0
    assert 0.0 <= metrics["slo_violation_pct"] <= 100.0
    assert not any(d.get("kind") == "Refused" for d in default_runs[name].decisions)


@pytest.fixture(scope="module")
def ten_minute_runs() -> dict[str, RunResult]:
    """Ten minutes of the default scenario: long enough for its load to drift past a static fleet."""
    model, source = load_scenario(DEFAULT_SCENARIO)
    scenario = compile_scenario(model, source, duration_s=600)
    return {name: simulate(scenario, make_controller(name, scenario)) for name in ("static", "hpa", "clairvoyant")}


def test_autoscalers_add_replicas_as_the_load_drifts_up(ten_minute_runs: dict[str, RunResult]) -> None:
    """From the warm start (60 % utilisation) HPA sheds down to its 80 % target; the planner sheds what the
    SLO does not need and then follows the drift up."""
    static = ten_minute_runs["static"].timeseries["pods"]
    assert static[-1] == min(static) == max(static)
    assert min(ten_minute_runs["hpa"].timeseries["pods"]) < static[-1]
    planner = ten_minute_runs["clairvoyant"].timeseries["pods"]
    assert planner[-1] > min(planner)


def test_clairvoyant_planner_violates_less_than_static_and_hpa(ten_minute_runs: dict[str, RunResult]) -> None:
    planner = ten_minute_runs["clairvoyant"].metrics
    for name in ("static", "hpa"):
        assert planner["slo_violation_pct"] < ten_minute_runs[name].metrics["slo_violation_pct"], name
    assert planner["replica_seconds"] <= ten_minute_runs["static"].metrics["replica_seconds"]
    assert not any(d["kind"] == "Refused" for d in ten_minute_runs["clairvoyant"].decisions)


def test_the_packet_loss_spell_dominates_five_minutes(default_runs: dict[str, RunResult]) -> None:
    """In five minutes most violations come from one packet-loss spell on region 1's access network,
    which no placement avoids (its retransmission timeout alone takes the p99 past 250 ms). Beyond it,
    windows close to their targets tip over now and then (a window's verdict is a probability,
    `sim/verdict.py`), more often in a leaner fleet: every controller that drops nothing is within a
    point of the best, the clairvoyant planner (the leanest) included."""
    no_drops = {name: run for name, run in default_runs.items() if run.metrics["lost_per_million"] == 0}
    assert "clairvoyant" in no_drops
    best = min(run.metrics["slo_violation_pct"] for run in no_drops.values())
    assert best > 1.0  # the spell is in everyone's figure
    for name, run in no_drops.items():
        assert run.metrics["slo_violation_pct"] <= best + 1.0, name
