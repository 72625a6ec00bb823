"""Model error: the world the engine runs strays from the declared specs; the controllers see only the specs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tests.unit.sim_helpers import small_scenario, uniform_world
from typer.testing import CliRunner

from kubeagora.cli import app
from kubeagora.controllers.clairvoyant import ClairvoyantPlanner
from kubeagora.controllers.registry import make_controller
from kubeagora.model import NODE_CLASSES, NodeClass, Scale, WorldParameters
from kubeagora.sim.engine import Engine
from kubeagora.sim.run import simulate
from kubeagora.sim.scenario import ScenarioError, compile_scenario, load_scenario, parse_scenario

runner = CliRunner()


def test_zero_model_error_is_the_declared_world_and_the_same_seed_errs_the_same_way() -> None:
    assert WorldParameters.draw(5, 7, 0.0, seed=3).is_nominal
    a, b = WorldParameters.draw(5, 7, 0.3, seed=3), WorldParameters.draw(5, 7, 0.3, seed=3)
    assert np.array_equal(a.service_time_factor, b.service_time_factor)
    half = WorldParameters.draw(5, 7, 0.15, seed=3)
    np.testing.assert_allclose(np.log(half.node_speed_factor), np.log(a.node_speed_factor) / 2)
    other = WorldParameters.draw(5, 7, 0.3, seed=4)
    assert not np.array_equal(a.service_time_factor, other.service_time_factor)


def test_factors_are_lognormal_around_the_declared_values_with_the_given_sigma() -> None:
    world = WorldParameters.draw(4000, 4000, 0.3, seed=1)
    for factors in (world.service_time_factor, world.cold_start_factor, world.node_speed_factor):
        logs = np.log(factors).ravel()
        assert abs(float(np.median(logs))) < 0.02, "median 1: the specs are right on average"
        assert float(np.std(logs)) == pytest.approx(0.3, rel=0.05)
        assert float(np.abs(logs).max()) <= 0.9 + 1e-12, "clipped at 3σ"


def test_the_world_is_drawn_apart_from_the_scenario_so_everything_else_stays() -> None:
    model, source = load_scenario("steady-drift")
    exact = compile_scenario(model, source, seed=2)
    wrong = compile_scenario(model, source, seed=2, model_error=0.3)
    assert exact.world is None
    assert exact.model_error == 0.0
    assert wrong.world is not None
    assert wrong.model_error == 0.3
    assert wrong.services == exact.services
    assert wrong.nodes == exact.nodes
    assert wrong.faults == exact.faults
    np.testing.assert_array_equal(wrong.workload.rates(0.0, 50), exact.workload.rates(0.0, 50))
    from_yaml = parse_scenario("name: x\nmodel_error: 0.3\n", "x.yaml")
    assert compile_scenario(from_yaml, "x.yaml").model_error == 0.3
    with pytest.raises(ScenarioError, match="model error"):
        compile_scenario(model, source, model_error=1.5)


def test_the_engine_runs_the_true_world_but_observes_only_the_declared_one() -> None:
    nominal = small_scenario(services=2, mix={"web": 1}, total_rps=200)
    slow = uniform_world(nominal, service_time=2.0, cold_start=1.5, interference=2.0, node_speed=0.8)
    wrong = replace(nominal, world=slow, model_error=0.3)
    exact_engine, wrong_engine = Engine(nominal), Engine(wrong)
    cpu = NODE_CLASSES.index(NodeClass.CPU)
    assert wrong_engine.svc_time_ms[0, cpu] == pytest.approx(2.0 * exact_engine.svc_time_ms[0, cpu])
    assert wrong_engine.svc_cold_s[0, cpu] == pytest.approx(1.5 * exact_engine.svc_cold_s[0, cpu])
    np.testing.assert_allclose(wrong_engine.node_beta, 2.0 * exact_engine.node_beta)
    np.testing.assert_allclose(wrong_engine.node_speed0, 0.8 * exact_engine.node_speed0)
    for engine in (exact_engine, wrong_engine):
        for _ in range(30):
            engine.step()
    exact_obs, wrong_obs = exact_engine.observe(), wrong_engine.observe()
    # what a cluster reports: the same capacity and speeds by the specs, whatever the truth
    np.testing.assert_allclose(wrong_obs.capacity_rps, exact_obs.capacity_rps)
    np.testing.assert_allclose(wrong_obs.node_speed, [n.speed_factor for n in nominal.nodes])
    # ...while the truth shows in what is measured: each request burns more CPU
    cpu_per_request = [o.busy_core_seconds_total.sum() / o.served_total.sum() for o in (exact_obs, wrong_obs)]
    assert cpu_per_request[1] > 1.8 * cpu_per_request[0]
    # the true capacity (what the recorder measures time-to-scale against) is the slower world's
    assert wrong_engine.state.capacity_rps is not None
    assert exact_engine.state.capacity_rps is not None
    assert wrong_engine.state.capacity_rps.sum() < 0.5 * exact_engine.state.capacity_rps.sum()


def test_a_pod_takes_the_true_cold_start_to_become_ready() -> None:
    nominal = small_scenario(services=1, mix={"web": 1}, total_rps=50)
    engine = Engine(replace(nominal, world=uniform_world(nominal, cold_start=3.0)))
    name, declared_s = nominal.services[0].name, nominal.services[0].cold_start_on(NodeClass.CPU)
    engine.apply([Scale(name, int(engine.observe().desired_replicas[0]) + 1)])
    steps_to_ready = 0
    while engine.observe().pending_replicas[0] > 0 and steps_to_ready < 200:
        engine.step()
        steps_to_ready += 1
    assert steps_to_ready >= 3.0 * declared_s - 1, "the declared 6-8 s are 18-24 s in this world"


def test_only_the_clairvoyant_planner_reads_the_true_world() -> None:
    model, source = load_scenario("gpu-throttle")
    scenario = compile_scenario(model, source, seed=3, model_error=0.3)
    engine = Engine(scenario)
    planner = make_controller("oracle", scenario)  # the old name still builds the clairvoyant planner
    assert isinstance(planner, ClairvoyantPlanner)
    node_class = engine.node_class
    true_ms = engine.svc_time_ms[:, node_class]
    np.testing.assert_allclose(planner.base_ms, true_ms)
    np.testing.assert_allclose(planner.node_beta, engine.node_beta)
    np.testing.assert_allclose(planner.node_true_speed, engine.node_speed0)


def test_model_error_changes_the_outcome_of_a_run_and_zero_changes_nothing() -> None:
    model, source = load_scenario("steady-drift")
    runs = {}
    for sigma in (None, 0.0, 0.3):
        scenario = compile_scenario(model, source, seed=1, duration_s=300, model_error=sigma)
        runs[sigma] = simulate(scenario, make_controller("hpa", scenario)).metrics
    same = ("slo_violation_pct", "p99_ms", "replica_seconds", "energy_j_per_req")
    assert {k: runs[None][k] for k in same} == {k: runs[0.0][k] for k in same}
    assert runs[0.3]["energy_j_per_req"] != runs[0.0]["energy_j_per_req"]


def test_simulate_and_bench_take_model_error_and_record_it(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = runner.invoke(app, ["simulate", "--scenario", "steady-drift", "--controller", "hpa", "--duration",
                                 "60", "--model-error", "0.3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["scenarios"]["steady-drift"]["model_error"] == 0.3
    assert "--model-error 0.3" in document["command"]
    bench = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--scenarios", "steady-drift", "--controllers", "static", "--duration",
                                 "60", "--jobs", "1", "--json", str(bench)])
    assert result.exit_code == 0, result.output
    document = json.loads(bench.read_text())
    assert document["scenarios"]["steady-drift"]["model_error"] == 0.0
    assert "--model-error" not in document["command"]


@pytest.mark.parametrize("name", ["rayserve", "knative"])
def test_concurrency_autoscalers_count_requests_in_flight_not_a_declared_service_time(name: str) -> None:
    """Ray Serve's replicas and Knative's queue-proxy count ongoing requests themselves; in a world twice
    as slow as declared they see twice the requests in service, and provision about twice the replicas."""
    # started with the replicas the load needs in either world, so that neither begins with a backlog
    nominal = replace(small_scenario(services=2, mix={"web": 1}, total_rps=600, duration_s=400), warm_start=True)
    slow = uniform_world(nominal, service_time=2.0)
    replicas = {}
    for label, scenario in (("declared", nominal), ("slow", replace(nominal, world=slow, model_error=0.3))):
        result = simulate(scenario, make_controller(name, scenario))
        replicas[label] = float(np.mean(result.timeseries["ready_replicas"][-15:]))  # the last 150 s, settled
    assert replicas["slow"] > 1.5 * replicas["declared"]
