"""The engine's behaviour as a user of the simulator would notice it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.sim_helpers import SMALL_TOPOLOGY, small_scenario

from kubeagora.controllers.base import StaticController
from kubeagora.model import Migrate, QuarantineNode, Scale, SetConcurrency, ShedLoad
from kubeagora.sim.engine import READY, Engine
from kubeagora.sim.run import simulate
from kubeagora.sim.scenario import FaultEvent, ScenarioModel, compile_scenario


def run_steps(engine: Engine, seconds: float) -> None:
    for _ in range(int(seconds / engine.dt)):
        engine.step()


def test_same_seed_gives_identical_results_and_another_seed_does_not() -> None:
    sc = small_scenario(duration_s=300, bursts=[{"at_s": 100, "duration_s": 60, "factor": 6}])
    a = simulate(sc, StaticController())
    b = simulate(sc, StaticController())
    assert simulated(a.metrics) == simulated(b.metrics)
    assert a.timeseries == b.timeseries
    other = simulate(small_scenario(duration_s=300, seed=8, bursts=[{"at_s": 100, "duration_s": 60, "factor": 6}]),
                     StaticController())
    assert simulated(other.metrics) != simulated(a.metrics)


def simulated(metrics: dict[str, float | None]) -> dict[str, float | None]:
    """All metrics but the controller's measured CPU time, which is a property of the host."""
    return {k: v for k, v in metrics.items() if k != "overhead_us_per_req"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    total_rps=st.floats(10, 3000),
    services=st.integers(1, 5),
    scale_to=st.integers(0, 6),
    scale_at=st.integers(0, 100),
    fault=st.sampled_from(["none", "node-termination", "zone-outage", "region-partition", "gpu-throttle",
                           "packet-loss", "pod-crash"]),
    shed=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_requests_are_conserved(total_rps: float, services: int, scale_to: int, scale_at: int, fault: str,
                                shed: float, seed: int) -> None:
    """arrived = served + dropped + lost + still queued, at every moment, whatever happens."""
    faults = [] if fault == "none" else [{"at_s": 30, "kind": fault, "duration_s": 40}]
    sc = small_scenario(duration_s=150, total_rps=total_rps, services=services, faults=faults, seed=seed)
    engine = Engine(sc)
    for t in range(150):
        if t == scale_at:
            engine.apply([Scale(sc.services[0].name, scale_to), ShedLoad(sc.services[-1].name, shed)])
        engine.step()
        c = engine.state.counters
        accounted = c.served.sum() + c.dropped.sum() + c.lost.sum() + engine.queued().sum()
        assert c.arrived.sum() == pytest.approx(accounted, rel=1e-9, abs=1e-6)


def test_scaling_up_adds_ready_replicas_after_the_cold_start() -> None:
    sc = small_scenario(mix={"web": 1}, services=1)
    engine = Engine(sc)
    name = sc.services[0].name
    engine.apply([Scale(name, 4)])
    _, ready = engine.pods()
    assert ready[0] == 1
    cold_s = max(sc.services[0].cold_start_s.values())
    run_steps(engine, cold_s + 1)
    _, ready = engine.pods()
    assert ready[0] == 4


def test_more_replicas_serve_an_overload_with_lower_latency() -> None:
    sc = small_scenario(mix={"web": 1}, services=1, total_rps=600, duration_s=200)
    one = simulate(sc, StaticController())

    class SixReplicas(StaticController):
        interval_s = 1.0

        def decide(self, obs, state):  # type: ignore[no-untyped-def]
            return [Scale(sc.services[0].name, 6)], state

    six = simulate(sc, SixReplicas())
    assert six.metrics["p50_ms"] < one.metrics["p50_ms"] / 5
    assert six.metrics["slo_violation_pct"] < one.metrics["slo_violation_pct"]
    assert six.metrics["replica_seconds"] > one.metrics["replica_seconds"]


def six_web_replicas_and_their_busiest_node() -> tuple[Engine, int]:
    engine = Engine(small_scenario(mix={"web": 1}, services=1, total_rps=200))
    engine.apply([Scale(engine.scenario.services[0].name, 6)])
    run_steps(engine, 20)
    r = engine.state.replicas
    return engine, int(np.bincount(r.node[r.state == READY]).argmax())


def test_a_terminated_node_loses_requests_until_kubernetes_evicts_and_replaces_its_pods() -> None:
    engine, victim = six_web_replicas_and_their_busiest_node()
    r = engine.state.replicas
    engine._apply_fault(_fault(engine, victim), restore=False)
    lost_before = engine.state.counters.lost.sum()
    run_steps(engine, 30)
    assert engine.state.counters.lost.sum() > lost_before, "requests still routed to the dead node are lost"
    run_steps(engine, engine.platform.node_monitor_grace_s)
    lost_mid = engine.state.counters.lost.sum()
    run_steps(engine, 30)
    assert engine.state.counters.lost.sum() == pytest.approx(lost_mid), "NotReady node's endpoints are removed"
    on_victim = (r.state != 0) & (r.node == victim)
    assert on_victim.any(), "pods stay bound until the eviction timeout"
    run_steps(engine, engine.platform.pod_eviction_s + 30)
    r = engine.state.replicas
    assert not ((r.state != 0) & (r.node == victim)).any()
    _, ready = engine.pods()
    assert ready[0] == 6, "the ReplicaSet recreated the evicted pods elsewhere"


def _fault(engine: Engine, node: int) -> FaultEvent:
    return FaultEvent(engine.state.t, "node-termination", (node,), (), (), None, 1.0, "test")


def test_quarantining_a_node_replaces_its_pods_at_once() -> None:
    engine, victim = six_web_replicas_and_their_busiest_node()
    sc, r = engine.scenario, engine.state.replicas
    engine.apply([QuarantineNode(sc.nodes[victim].name)])
    run_steps(engine, 40)
    r = engine.state.replicas
    assert not ((r.state != 0) & (r.node == victim)).any()
    _, ready = engine.pods()
    assert ready[0] == 6


def test_migrate_keeps_the_old_replica_until_the_new_one_is_ready() -> None:
    sc = small_scenario(mix={"web": 1}, services=1)
    engine = Engine(sc)
    r = engine.state.replicas
    src = int(r.node[r.state == READY][0])
    dst = next(i for i, n in enumerate(sc.nodes) if i != src and engine.svc_feasible[0, i])
    refused = engine.apply([Migrate(sc.services[0].name, sc.nodes[src].name, sc.nodes[dst].name)])
    assert refused == []
    engine.step()
    _, ready = engine.pods()
    assert ready[0] == 1
    run_steps(engine, 15)
    r = engine.state.replicas
    live_nodes = set(r.node[r.state == READY].tolist())
    assert live_nodes == {dst}


def test_residency_keeps_replicas_in_the_allowed_regions() -> None:
    sc = small_scenario(mix={"iot-ingest": 1}, services=4, total_rps=100)
    engine = Engine(sc)
    engine.apply([Scale(s.name, 5) for s in sc.services])
    r = engine.state.replicas
    for k in np.flatnonzero(r.state != 0):
        svc = sc.services[r.service[k]]
        assert svc.allowed_regions is not None
        assert sc.nodes[r.node[k]].region in svc.allowed_regions


def test_where_a_service_may_run_is_its_node_classes_and_regions_node_by_node() -> None:
    """The engine builds the services × nodes table from per-class and per-region tables; it must be the
    definition: the service runs on the node's class and the node is in one of its regions."""
    sc = small_scenario(mix={"iot-ingest": 1, "ml-inference": 1, "web": 1}, services=9, total_rps=300)
    engine = Engine(sc)
    expected = np.array([[s.can_run_on(n.node_class) and (s.allowed_regions is None or n.region in s.allowed_regions)
                          for n in sc.nodes] for s in sc.services])
    assert expected.any(axis=1).all(), "every service runs somewhere"
    assert not expected.all(), "the mix must restrict some services somewhere"
    assert any(s.allowed_regions is not None for s in sc.services)
    np.testing.assert_array_equal(engine.svc_feasible, expected)


def test_gpu_throttling_slows_gpu_services() -> None:
    base = dict(mix={"ml-inference": 1}, services=1, total_rps=500, duration_s=300)
    calm = simulate(small_scenario(**base), StaticController())
    capped = simulate(small_scenario(**base, faults=[{"at_s": 0, "kind": "gpu-throttle", "target": "region-0",
                                                      "factor": 0.4},
                                                     {"at_s": 0, "kind": "gpu-throttle", "target": "region-1",
                                                      "factor": 0.4}]), StaticController())
    assert capped.metrics["p50_ms"] > calm.metrics["p50_ms"] * 1.1


def test_a_partition_fails_the_requests_of_the_cut_off_region() -> None:
    sc = small_scenario(duration_s=200, total_rps=300, faults=[{"at_s": 50, "kind": "region-partition",
                                                                "target": "region-1", "duration_s": 100}])
    res = simulate(sc, StaticController())
    # region 1's nodes go NotReady (the control plane is in region 0): their endpoints are removed, so
    # its users' requests fail, and requests crossing the cut in the first seconds are lost
    assert res.extras["lost"] + res.extras["dropped"] > 0.05 * res.extras["arrived"]
    assert res.metrics["mttr_s"] is not None


def test_fork_runs_independently_of_the_original() -> None:
    sc = small_scenario(duration_s=100)
    engine = Engine(sc)
    run_steps(engine, 10)
    twin = engine.fork()
    twin.apply([Scale(sc.services[0].name, 5)])
    run_steps(twin, 20)
    assert engine.state.t == 10
    assert engine.state.desired[0] != 5
    run_steps(engine, 20)
    assert twin.state.counters.arrived.sum() > 0
    assert engine.recorder is not twin.recorder


def test_scaling_down_during_a_migration_keeps_the_source_pod_counted() -> None:
    sc = small_scenario(mix={"web": 1}, services=1)
    engine = Engine(sc)
    name = sc.services[0].name
    engine.apply([Scale(name, 3)])
    run_steps(engine, 15)
    r = engine.state.replicas
    src = int(r.node[r.state == READY][0])
    dst = next(i for i, n in enumerate(sc.nodes) if i != src and engine.svc_feasible[0, i])
    assert engine.apply([Migrate(name, sc.nodes[src].name, sc.nodes[dst].name)]) == []
    engine.apply([Scale(name, 2)])  # the starting migration target is the first pod the ReplicaSet removes
    run_steps(engine, 40)
    r = engine.state.replicas
    live = (r.state == READY) | (r.state == 1)
    assert live.sum() == 2
    assert not r.doomed[live].any(), "no pod is left outside the ReplicaSet's count"


def test_cold_start_delta_is_the_extra_tail_while_pods_start() -> None:
    sc = small_scenario(mix={"web": 1}, services=1, total_rps=200, duration_s=300,
                        bursts=[{"at_s": 150, "duration_s": 100, "factor": 4, "ramp_s": 1}])

    class ScaleAtTheBurst(StaticController):
        interval_s = 1.0

        def decide(self, obs, state):  # type: ignore[no-untyped-def]
            want = 3 if obs.time_s < 150 else 8
            return [Scale(sc.services[0].name, want)], state

    res = simulate(sc, ScaleAtTheBurst())
    delta = res.metrics["cold_start_p99_delta_ms"]
    assert delta is not None
    assert delta > 50.0, "requests queue behind capacity that is still starting"


def test_scaling_one_service_up_and_another_down_in_one_call_survives_slot_growth() -> None:
    sc = small_scenario(mix={"web": 1}, services=2, total_rps=100)
    engine = Engine(sc)
    engine.apply([Scale(sc.services[1].name, 20)])
    capacity = engine.state.replicas.state.shape[0]
    engine.apply([Scale(sc.services[0].name, 50), Scale(sc.services[1].name, 1)])
    assert engine.state.replicas.state.shape[0] > capacity, "the first scale-up grew the pod slots"
    pods, _ = engine.pods()
    assert pods[0] + engine.state.unscheduled[0] >= 50 - engine.state.unscheduled[0]
    assert pods[1] == 1


def test_trace_replay_follows_the_trace_rate(tmp_path: Path) -> None:
    counts = np.r_[np.full(300, 2.0), np.full(300, 6.0)]
    trace = tmp_path / "t.txt"
    trace.write_text(" ".join(str(int(c)) for c in counts))
    sc = compile_scenario(ScenarioModel.model_validate({
        "name": "trace", "duration_s": 600, "topology": SMALL_TOPOLOGY, "services": {"count": 2},
        "workload": {"trace": {"path": str(trace), "scale": 100.0, "smoothing_s": 10}}}), "trace")
    rates = sc.workload.rates(0.0, 600).sum(axis=1)
    assert rates[100] == pytest.approx(200.0)
    assert rates[500] == pytest.approx(600.0)
    assert 200.0 < rates[300] < 600.0, "the step is smoothed over the window"


def test_more_concurrency_slots_than_the_service_has_cores_for_add_no_capacity() -> None:
    sc = small_scenario(mix={"web": 1}, services=1, total_rps=100)
    engine = Engine(sc)
    name = sc.services[0].name
    run_steps(engine, 5)
    native = engine.observe().capacity_rps[0]
    engine.apply([SetConcurrency(name, 4 * sc.services[0].concurrency)])
    run_steps(engine, 5)
    assert engine.observe().capacity_rps[0] == pytest.approx(native, rel=0.05)
    engine.apply([SetConcurrency(name, max(1, sc.services[0].concurrency // 2))])
    run_steps(engine, 5)
    assert engine.observe().capacity_rps[0] < 0.6 * native
