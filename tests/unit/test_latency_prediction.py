"""The clairvoyant planner's latency prediction against what the engine records for the same fixed plan."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.sim_helpers import small_scenario

from kubeagora.controllers.latency_prediction import (
    node_utilisation,
    predict_latency_batch_ms,
    predict_latency_ms,
)
from kubeagora.model import Place, Scale
from kubeagora.sim.engine import Engine
from kubeagora.sim.latency import INTERFERENCE, interference_slowdown


def _hold_plan(total_rps: float, replicas: int, node_name: str, seconds: int = 200) -> tuple[Engine, int, int]:
    """Web service 0 runs `replicas` pods on one node under a constant rate; returns (engine, service, node)."""
    scenario = small_scenario(duration_s=seconds + 60, total_rps=total_rps, services=2, mix={"web": 1})
    engine = Engine(scenario)
    service = scenario.services[0]
    node = [n.name for n in scenario.nodes].index(node_name)
    engine.apply([Scale(service.name, 0)] + [Place(service.name, node_name)] * replicas)
    for _ in range(20):  # cold start, then drain what piled up meanwhile
        engine.step()
    engine.state.replicas.backlog[:] = 0.0
    return engine, 0, node


@pytest.mark.parametrize(("total_rps", "replicas"), [(500, 3), (600, 3), (900, 6)])
def test_prediction_matches_the_engine_for_a_fixed_plan(total_rps: float, replicas: int) -> None:
    engine, s, node = _hold_plan(total_rps, replicas, "cloud-cpu-0-0")
    p95s, p99s = [], []
    for _ in range(15):
        for _ in range(10):
            engine.step()
        p95, p99 = engine.recorder.last_window_percentiles()
        p95s.append(p95[s])
        p99s.append(p99[s])
    r = engine.state.replicas
    mine = (r.service == s) & (r.state == 2)
    assert mine.sum() == replicas
    service = engine.scenario.services[s]
    beta = INTERFERENCE[engine.scenario.nodes[node].node_class]
    service_ms = r.base_ms[mine] / engine.state.node_speed[node] * interference_slowdown(
        beta, engine.state.node_util[node])
    rate_rps = float(engine.scenario.workload.rate_at(engine.state.t)[s])
    predicted = predict_latency_ms(service_ms, r.net_ms[mine], rate_rps / replicas,
                                   service.concurrency, service.service_time_cv,
                                   engine.scenario.topology.loss_good)
    # most windows see no packet-loss burst: their median is the steady state the model describes
    assert predicted[0] == pytest.approx(float(np.median(p95s)), rel=0.03)
    assert predicted[1] == pytest.approx(float(np.median(p99s)), rel=0.03)


def test_a_replica_that_cannot_keep_up_has_an_infinite_tail() -> None:
    service_ms = np.array([25.0, 25.0])
    assert predict_latency_ms(service_ms, np.zeros(2), 161.0, 4, 0.8) == (np.inf, np.inf)
    assert predict_latency_ms(np.array([]), np.array([]), 10.0, 4, 0.8) == (np.inf, np.inf)
    assert predict_latency_ms(np.array([]), np.array([]), 0.0, 4, 0.8) == (0.0, 0.0)


def test_the_tail_grows_with_load_and_with_a_far_or_slow_replica() -> None:
    near = np.full(4, 10.0)
    light = predict_latency_ms(np.full(4, 25.0), near, 60.0, 4, 0.8)
    heavy = predict_latency_ms(np.full(4, 25.0), near, 130.0, 4, 0.8)
    assert light[0] < heavy[0]
    assert light[1] < heavy[1]
    far = predict_latency_ms(np.full(4, 25.0), np.array([10.0, 10.0, 10.0, 110.0]), 60.0, 4, 0.8)
    assert far[0] > light[0]
    slow = predict_latency_ms(np.array([25.0, 25.0, 25.0, 40.0]), near, 60.0, 4, 0.8)
    assert slow[1] > light[1]


def test_a_web_replica_at_ninety_percent_busy_misses_its_slo() -> None:
    """What the planner once assumed: ρ ≈ 0.9 is fine. With 4 workers and cv 0.8 the p95 is far above 150 ms."""
    service_ms, concurrency = 25.0, 4
    rate = 0.9 * concurrency * 1000.0 / service_ms
    p95, p99 = predict_latency_ms(np.array([service_ms]), np.array([15.0]), rate, concurrency, 0.8)
    assert p95 > 150.0
    assert p99 > 250.0


def test_batch_prediction_equals_one_by_one() -> None:
    service_ms = np.array([[25.0, 25.0, 30.0], [20.0, 22.0, 24.0]])
    network_ms = np.array([[12.0, 20.0, 30.0], [12.0, 12.0, 90.0]])
    rates = np.array([80.0, 100.0])
    p95, p99 = predict_latency_batch_ms(service_ms, network_ms, rates, 4, 0.8, 1e-4)
    for k in range(2):
        assert (p95[k], p99[k]) == pytest.approx(
            predict_latency_ms(service_ms[k], network_ms[k], float(rates[k]), 4, 0.8, 1e-4))


def test_node_utilisation_matches_the_engine() -> None:
    engine, _s, node = _hold_plan(900, 6, "cloud-cpu-0-0", seconds=60)
    for _ in range(30):
        engine.step()
    r = engine.state.replicas
    live = r.state != 0
    n_nodes = engine.n_nodes
    rate = engine.scenario.workload.rate_at(engine.state.t)
    per_replica = rate / np.maximum(np.bincount(r.service[live], minlength=engine.n_services), 1)
    concurrency = np.array([x.concurrency for x in engine.scenario.services], dtype=float)
    cpu = np.array([x.cpu_request for x in engine.scenario.services])
    predicted = node_utilisation(
        r.node[live], r.base_ms[live], per_replica[r.service[live]],
        concurrency[r.service[live]], cpu[r.service[live]], r.accelerators[live],
        engine.state.node_speed, engine.node_beta, engine.node_cores,
        np.asarray(engine.node_acc, dtype=float),
    )
    assert predicted.shape == (n_nodes,)
    assert predicted[node] == pytest.approx(engine.state.node_util[node], abs=0.02)
