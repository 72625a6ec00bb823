"""The mock kubelet's pure parts: nodes, lease schedule, faults, pod status, traffic, metrics, plan."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from kubeagora.cli import app
from kubeagora.kubelet import leases
from kubeagora.kubelet import nodes as nodes_mod
from kubeagora.kubelet.errors import KubeletError
from kubeagora.kubelet.faults import (
    PodCrash,
    crashes_between,
    manual_fault,
    node_faults,
    pod_crashes,
)
from kubeagora.kubelet.plan import make_plan
from kubeagora.kubelet.pods import (
    Action,
    ContainerRun,
    IpPool,
    Timeline,
    cold_start_s,
    decide,
    pod_status,
    quantity,
    requests,
    service_of,
    workload_of,
)
from kubeagora.kubelet.traffic import (
    BUCKETS_S,
    PodTable,
    TrafficModel,
    parse_traffic,
    profile_from_template,
)
from kubeagora.model import Node, NodeClass, Tier
from kubeagora.sim.scenario import FaultEvent
from kubeagora.sim.topology import build_topology

GPU_NODE = Node("g", Tier.CLOUD, "region-0", "region-0-cloud", NodeClass.GPU, 32.0, 256.0, 4, 1.0, 200.0, 1800.0)
MCU_NODE = Node("m", Tier.EDGE, "region-0", "region-0-z0", NodeClass.MCU, 1.0, 0.5, 0, 1.0, 2.0, 6.0)


# nodes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 20, 50, 100, 300, 1000, 3000])
def test_topology_for_nodes_is_about_n_with_gpus(n: int) -> None:
    topo = build_topology(nodes_mod.topology_for_nodes(n), np.random.default_rng(1))
    assert abs(len(topo.nodes) - n) <= 0.15 * n
    classes = {nd.node_class for nd in topo.nodes}
    assert NodeClass.GPU in classes
    assert NodeClass.CPU in classes
    assert len({nd.name for nd in topo.nodes}) == len(topo.nodes)


def test_topology_for_nodes_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        nodes_mod.topology_for_nodes(0)


def test_node_manifest_labels_capacity_and_cidr() -> None:
    m = nodes_mod.manifest(GPU_NODE, "gpu-a", 3, "2026-01-01T00:00:00Z")
    labels = m["metadata"]["labels"]
    assert labels[nodes_mod.LABEL_TIER] == "cloud"
    assert labels[nodes_mod.LABEL_CLASS] == "gpu"
    assert labels[nodes_mod.LABEL_REGION] == "region-0"
    assert labels[nodes_mod.LABEL_ZONE] == "region-0-cloud"
    assert labels[nodes_mod.LABEL_HOSTNAME] == "gpu-a"
    cap = m["status"]["capacity"]
    assert cap == {"cpu": "32", "memory": "262144Mi", "pods": "110", "ephemeral-storage": "100Gi",
                   "nvidia.com/gpu": "4"}
    assert m["spec"]["podCIDR"] == "10.64.3.0/24"
    ready = [c for c in m["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    assert nodes_mod.capacity(MCU_NODE)["cpu"] == "1"
    assert nodes_mod.capacity(MCU_NODE)["memory"] == "512Mi"


def test_tpu_capacity_and_fractional_cpu() -> None:
    tpu = Node("t", Tier.CLOUD, "r", "z", NodeClass.TPU, 2.5, 1.0, 4)
    cap = nodes_mod.capacity(tpu)
    assert cap["google.com/tpu"] == "4"
    assert cap["cpu"] == "2500m"


def test_throttle_condition_and_kept_transition_times() -> None:
    conds = nodes_mod.conditions("T2", nodes_mod.NodeHealthView(throttle_factor=0.5), {"Ready": "T0"})
    by_type = {c["type"]: c for c in conds}
    assert by_type[nodes_mod.CONDITION_THROTTLED]["status"] == "True"
    assert by_type["Ready"]["lastTransitionTime"] == "T0"
    assert by_type["Ready"]["lastHeartbeatTime"] == "T2"
    assert nodes_mod.throttle_annotation_patch(None)["metadata"]["annotations"][nodes_mod.ANNOTATION_THROTTLE] is None


def test_parse_taint() -> None:
    assert nodes_mod.parse_taint("a=b:NoSchedule") == {"key": "a", "value": "b", "effect": "NoSchedule"}
    assert nodes_mod.parse_taint("a:NoExecute") == {"key": "a", "effect": "NoExecute"}
    with pytest.raises(ValueError, match="EFFECT"):
        nodes_mod.parse_taint("a=b")


# leases ------------------------------------------------------------------------------------------


def test_lease_renewals_every_quarter_duration_spread_evenly() -> None:
    assert leases.RENEW_INTERVAL_S == leases.LEASE_DURATION_S / 4 == 10
    n = 1000
    offsets = leases.stagger(n, leases.RENEW_INTERVAL_S)
    counts = np.zeros(n, dtype=int)
    per_tick = []
    t = 0.0
    while t < 60.0 - 1e-9:
        due = leases.due(offsets, leases.RENEW_INTERVAL_S, t, t + 0.5)
        counts[due] += 1
        per_tick.append(len(due))
        t += 0.5
    assert (counts == 6).all()  # each node once every 10 s
    assert max(per_tick) - min(per_tick) <= 1  # a steady 50 per half second, no burst


def test_due_is_empty_when_time_does_not_advance() -> None:
    assert leases.due(leases.stagger(5, 10.0), 10.0, 3.0, 3.0).size == 0


def test_lease_manifest_and_patch() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    m = leases.lease_manifest("n1", "uid-1", now)
    assert m["metadata"]["namespace"] == "kube-node-lease"
    assert m["spec"] == {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2026-01-02T03:04:05.123456Z"}
    assert m["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert leases.renew_patch(now) == {"spec": {"renewTime": "2026-01-02T03:04:05.123456Z"}}


# faults ------------------------------------------------------------------------------------------


def _event(kind: str, at: float, nodes: tuple[int, ...], duration: float | None = None, factor: float = 0.5,
           services: tuple[int, ...] = ()) -> FaultEvent:
    return FaultEvent(at, kind, nodes, services, (), duration, factor, kind)


def test_node_faults_over_time() -> None:
    events = [_event("node-termination", 10, (0,)), _event("zone-outage", 5, (1, 2), duration=10),
              _event("region-partition", 0, (3,), duration=100), _event("gpu-throttle", 0, (4,), factor=0.4)]
    before = node_faults(events[:2], 5, 4.9)
    assert before.heard.all()
    assert before.serving.all()
    mid = node_faults(events, 5, 12.0)
    assert mid.heard.tolist() == [False, False, False, False, True]
    assert mid.serving.tolist() == [False, False, False, True, True]  # a partitioned region still serves
    assert mid.throttle_factor(4) == pytest.approx(0.4)
    assert mid.throttle_factor(0) is None
    after = node_faults(events, 5, 15.0)  # the zone is back; the terminated node is not
    assert after.heard.tolist()[:3] == [False, True, True]


def test_pod_crashes_and_manual_faults() -> None:
    crashes = pod_crashes([_event("pod-crash", 30, (), services=(1,))], ["a", "b"])
    assert crashes == [PodCrash(30, "b")]
    assert crashes_between(crashes, 29.5, 30.0) == ["b"]
    assert crashes_between(crashes, 30.0, 31.0) == []
    e = manual_fault("node-termination", [2], 7.0, None)
    assert node_faults([e], 3, 7.0).heard.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="pod-crash"):
        manual_fault("pod-crash", [1], 0.0, None)
    with pytest.raises(ValueError, match="duration"):
        manual_fault("zone-outage", [1], 0.0, -1.0)


# pods --------------------------------------------------------------------------------------------


def test_service_and_cold_start() -> None:
    assert service_of({"app": "a", "kubeagora.io/service": "s"}) == "s"
    assert service_of({"app": "a"}) == "a"
    assert service_of(None) is None
    assert cold_start_s({"kubeagora.io/cold-start-s": "1.5"}, NodeClass.GPU) == 1.5
    assert cold_start_s({"kubeagora.io/cold-start-s": "x"}, NodeClass.GPU) == 25.0
    assert cold_start_s(None, NodeClass.CPU, {NodeClass.CPU: 6.0}) == 6.0


def test_a_pods_workload_is_its_deployment_as_opentelemetry_names_it() -> None:
    def owned(kind: str, name: str, labels: dict[str, str]) -> dict[str, object]:
        return {"name": "x-1", "labels": labels,
                "ownerReferences": [{"kind": kind, "name": name, "controller": True}]}

    assert workload_of(owned("ReplicaSet", "checkout-5d9c7b8f6", {"pod-template-hash": "5d9c7b8f6"})) == "checkout"
    assert workload_of(owned("ReplicaSet", "bare-rs", {"app": "a"})) == "bare-rs"  # no Deployment behind it
    assert workload_of(owned("StatefulSet", "db", {"app": "a"})) == "db"
    assert workload_of({"name": "solo", "labels": {"app": "a"}}) == "a"
    assert workload_of({"name": "solo"}) == "solo"


def test_decide() -> None:
    pending = {"metadata": {}, "status": {"phase": "Pending"}}
    assert decide("ADDED", pending, known=False, stopping=False) is Action.START
    assert decide("MODIFIED", pending, known=True, stopping=False) is Action.NONE
    assert decide("ADDED", {"status": {"phase": "Running"}}, False, False) is Action.ADOPT
    deleting = {"metadata": {"deletionTimestamp": "t"}, "status": {"phase": "Running"}}
    assert decide("MODIFIED", deleting, True, False) is Action.STOP
    assert decide("MODIFIED", deleting, True, True) is Action.NONE
    assert decide("DELETED", deleting, True, True) is Action.FORGET
    assert decide("ADDED", {"status": {"phase": "Succeeded"}}, False, False) is Action.NONE


def test_pod_status_running_then_crashed() -> None:
    run = ContainerRun("T1", False, "T1")
    body = pod_status("abcdef123", "10.64.0.1", "10.64.0.2", "T0", "T1", [("app", "img:1")], [("init", "i:1")], run)
    st = body["status"]
    assert st["phase"] == "Running"
    assert st["podIP"] == "10.64.0.2"
    assert st["hostIP"] == "10.64.0.1"
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "False",
                     "ContainersReady": "False", "PodScheduled": "True"}
    cs = st["containerStatuses"][0]
    assert cs["started"] is True
    assert cs["ready"] is False
    assert "running" in cs["state"]
    assert st["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    crashed = pod_status("abcdef123", "h", "p", "T0", "T1", [("app", "img:1")], [],
                         ContainerRun("T3", False, "T3", 1, ("T1", "T3")))["status"]["containerStatuses"][0]
    assert crashed["restartCount"] == 1
    assert crashed["lastState"]["terminated"]["finishedAt"] == "T3"


def test_ip_pool_reuses_and_honours_preferred() -> None:
    pool = IpPool(nodes_mod.pod_cidr(1))
    a, b = pool.take(), pool.take()
    assert (a, b) == ("10.64.1.2", "10.64.1.3")
    pool.give_back(a)
    assert pool.take() == a
    assert pool.take("10.64.1.77") == "10.64.1.77"
    assert pool.take("10.64.1.77") != "10.64.1.77"  # taken: another one


def test_timeline_orders_and_replaces() -> None:
    tl = Timeline()
    tl.at(5.0, "ready", "a")
    tl.at(2.0, "ready", "b")
    tl.at(9.0, "ready", "a")  # replaces a's first transition
    tl.at(3.0, "delete", "c")
    tl.cancel("c")
    assert tl.pop_due(6.0) == [("ready", "b")]
    assert tl.pop_due(10.0) == [("ready", "a")]
    assert len(tl) == 0


def test_quantities_and_requests() -> None:
    assert quantity("500m") == 0.5
    assert quantity("2") == 2.0
    assert quantity("1Gi") == 2.0**30
    assert quantity(None) == 0
    pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "250m"}, "limits": {"nvidia.com/gpu": "1"}}},
                                   {"resources": {"requests": {"cpu": "1"}}}]}}
    assert requests(pod, "cpu") == 1.25
    assert requests(pod, "nvidia.com/gpu") == 1.0


# traffic and metrics -----------------------------------------------------------------------------


def _model(rps: float = 200.0) -> tuple[TrafficModel, PodTable]:
    topo = build_topology(nodes_mod.topology_for_nodes(20), np.random.default_rng(3))
    model = TrafficModel(topo.nodes, topo.ingress_rtt_ms, seed=4)
    model.set_profile(profile_from_template("default/web", "web", rps))
    table = PodTable(capacity=2)  # grows
    cpu = [j for j, n in enumerate(topo.nodes) if n.node_class == NodeClass.CPU]
    for k in range(6):
        table.add(f"ns/p{k}", 0, cpu[k % len(cpu)], cpu=0.5)
        table.set_ready(f"ns/p{k}", True)
    return model, table


def test_traffic_counts_and_histogram_follow_the_latency_model() -> None:
    model, table = _model()
    n = len(model.nodes)
    for _ in range(60):
        model.tick(1.0, table, np.ones(n, dtype=bool), np.ones(n))
    served = model.requests[0]
    assert served == pytest.approx(200 * 60, rel=0.05)
    assert model.bucket_counts[0].sum() == pytest.approx(served)
    mean_s = model.latency_sum_s[0] / served
    assert 0.025 < mean_s < 0.2  # 25 ms service time + tens of ms of network
    assert model.ready_pods[0] == 6
    assert (model.node_utilization >= 0).all()
    assert model.node_utilization.max() > 0
    assert (model.node_power_w >= model.node_idle_w - 1e-9).all()


def test_no_ready_pod_drops_and_down_nodes_draw_nothing() -> None:
    model, table = _model()
    n = len(model.nodes)
    for k in range(6):
        table.set_ready(f"ns/p{k}", False)
    model.tick(1.0, table, np.zeros(n, dtype=bool), np.ones(n))
    assert model.requests[0] == 0
    assert model.dropped[0] > 0
    assert (model.node_power_w == 0).all()
    table.remove("ns/p0")
    assert len(table) == 5
    assert "ns/p0" not in table


def _families(model: TrafficModel) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    from kubeagora.kubelet.metrics import exposition, make_registry

    n = len(model.nodes)
    text = exposition(make_registry(model, [f"n{j}" for j in range(n)], lambda: np.ones(n, dtype=bool))).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_the_exposition_is_what_the_otel_and_istio_presets_read() -> None:
    from kubeagora.operator.metric_presets import ISTIO, OTEL

    # past six pods' capacity, even with their CPU burst above the request (about 8,000 req/s): some are dropped
    model, table = _model(rps=20000.0)
    n = len(model.nodes)
    for _ in range(10):
        model.tick(1.0, table, np.ones(n, dtype=bool), np.ones(n))
    assert model.dropped[0] > 0
    families = _families(model)
    for preset in (OTEL, ISTIO):
        samples = [s for f in families.values() for s in f.samples]
        mine = {s.name for s in samples if s.labels.get(preset.namespace_label) == "default"
                and s.labels.get(preset.workload_label) == "web"}
        assert {preset.requests, preset.latency_buckets} <= mine, preset.name
    otel = families["http_server_request_duration_seconds"].samples
    count = {s.labels["http_response_status_code"]: s.value for s in otel if s.name.endswith("_count")}
    assert count == {"200": model.requests[0], "503": model.dropped[0]}
    served = [s for s in otel if s.name.endswith("_bucket") and s.labels["http_response_status_code"] == "200"]
    assert len(served) == len(BUCKETS_S) + 1
    values = [s.value for s in served]
    assert values == sorted(values)  # cumulative
    istio = {(s.name, s.labels["response_code"], s.labels.get("le")): s.value
             for s in families["istio_request_duration_milliseconds"].samples + families["istio_requests"].samples}
    assert istio[("istio_requests_total", "503", None)] == model.dropped[0]
    for s in served:  # the same histogram in milliseconds
        le = s.labels["le"]
        assert istio[("istio_request_duration_milliseconds_bucket", "200",
                      le if le == "+Inf" else f"{1000 * float(le):g}")] == s.value
    assert {"kubeagora_node_power_watts", "kubeagora_node_utilization_ratio"} <= set(families)
    assert not any(name.startswith("kubeagora_") for name in families if "node" not in name)


def test_parse_traffic() -> None:
    spec = parse_traffic({"services": {"a": 5, "b": {"rps": 2.5, "template": "llm"}}}, "t.yaml")
    assert spec["a"].rps == 5
    assert spec["b"].template == "llm"
    with pytest.raises(ValueError, match=r"services\.a"):
        parse_traffic({"services": {"a": -1}}, "t.yaml")
    with pytest.raises(ValueError, match="unknown template"):
        parse_traffic({"services": {"a": {"rps": 1, "template": "nope"}}}, "t.yaml")
    with pytest.raises(ValueError, match="'services'"):
        parse_traffic([1, 2], "t.yaml")


# plan and CLI ------------------------------------------------------------------------------------


def test_plan_from_scenario_has_services_rates_and_faults() -> None:
    plan = make_plan("node-zone-failure", None, name_prefix="mk-")
    assert all(name.startswith("mk-") for name in plan.names)
    assert plan.faults
    assert plan.scenario_rps
    name = next(iter(plan.scenario_services))
    profile = plan.profile(name, None)
    assert profile.rps == pytest.approx(plan.scenario_rps[name])
    assert plan.profile(name, {"kubeagora.io/rps": "3"}).rps == 3.0
    assert plan.profile("other", {"kubeagora.io/template": "llm"}).service_time_ms[NodeClass.GPU] == 140.0
    assert not make_plan("node-zone-failure", None, faults=False).faults


def test_plan_bad_input() -> None:
    with pytest.raises(KubeletError, match="exactly one"):
        make_plan(None, None)
    with pytest.raises(KubeletError, match="unknown scenario"):
        make_plan("nope", None)
    with pytest.raises(KubeletError, match="name-prefix"):
        make_plan(None, 10, name_prefix="Bad_")


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["mock-kubelet", "--kubeconfig", str(tmp_path / "nope"), "--nodes", "5"])
    assert missing.exit_code == 2
    assert "no such file" in missing.output
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\n")
    both = runner.invoke(app, ["mock-kubelet", "--kubeconfig", str(kc), "--nodes", "5", "--scenario", "x"])
    assert both.exit_code == 2
    assert "exactly one" in both.output
    bad = tmp_path / "traffic.yaml"
    bad.write_text("services: {a: -3}\n")
    traffic = runner.invoke(app, ["mock-kubelet", "--kubeconfig", str(kc), "--nodes", "5", "--traffic", str(bad)])
    assert traffic.exit_code == 2
    assert "services.a" in traffic.output
