"""The operator's adapter: cluster objects and Prometheus signals → the agents' Observation; intents → bindings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from tests.unit.operator_objects import (
    by_key,
    deployment,
    intent,
    node,
    node_signals,
    pod,
    signals,
)

from kubeagora.model import NodeClass, Tier
from kubeagora.operator import adapter
from kubeagora.operator.view import ClusterView, key_of
from kubeagora.sim.catalog import template_service
from kubeagora.sim.topology import NODE_SHAPES

CHECKOUT = adapter.service_key("default", "checkout")

GIB = 2**30


# ---------------------------------------------------------------------------------------------- quantities
@pytest.mark.parametrize(("quantity", "cores"), [
    ("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("250000n", 0.00025), ("1500000u", 1.5), ("100m", 0.1),
    (4, 4.0), (0.25, 0.25), (None, 0.0), ("", 0.0),
])
def test_cpu_quantities_read_as_cores(quantity: Any, cores: float) -> None:
    assert adapter.cpu_cores(quantity) == pytest.approx(cores)


@pytest.mark.parametrize(("quantity", "gib"), [
    ("512Mi", 0.5), ("256Mi", 0.25), ("2Gi", 2.0), ("65536Mi", 64.0), ("1048576Ki", 1.0), ("1Ti", 1024.0),
    ("1G", 1e9 / GIB), ("500M", 500e6 / GIB), ("128k", 128e3 / GIB), (str(3 * GIB), 3.0), (None, 0.0), ("", 0.0),
])
def test_memory_quantities_read_as_gib(quantity: Any, gib: float) -> None:
    assert adapter.memory_gib(quantity) == pytest.approx(gib)


# ---------------------------------------------------------------------------------------------- nodes
def test_a_mock_kubelet_node_reads_back_as_the_node_it_was_made_from() -> None:
    obj = node("fog-gpu-3", Tier.FOG, NodeClass.GPU, region="region-2", zone="region-2-z1", speed=1.25)
    n = adapter.node_from_object(obj)
    cores, memory, accelerators, idle_w, peak_w = NODE_SHAPES[(Tier.FOG, NodeClass.GPU)]
    assert (n.name, n.tier, n.node_class, n.region, n.zone) == ("fog-gpu-3", Tier.FOG, NodeClass.GPU, "region-2",
                                                                "region-2-z1")
    assert (n.cpu_cores, n.memory_gib, n.accelerators) == (cores, memory, accelerators)
    assert n.speed_factor == pytest.approx(1.25)
    assert (n.idle_power_w, n.peak_power_w) == (idle_w, peak_w)


def test_tpus_count_as_accelerators_and_allocatable_wins_over_capacity() -> None:
    obj = node("cloud-tpu-0", Tier.CLOUD, NodeClass.TPU)
    assert adapter.node_from_object(obj).accelerators == 4
    # one TPU held back by the device plugin: only what is allocatable counts
    obj["status"]["allocatable"] = {**obj["status"]["allocatable"], "google.com/tpu": "3", "cpu": "31500m"}
    n = adapter.node_from_object(obj)
    assert n.accelerators == 3
    assert n.cpu_cores == pytest.approx(31.5)


def test_a_node_without_kubeagora_labels_is_a_cloud_cpu_node_of_unit_speed() -> None:
    obj = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": "kind-worker", "labels": {"kubernetes.io/hostname": "kind-worker"}},
           "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                      "conditions": [{"type": "Ready", "status": "True"}]}}
    n = adapter.node_from_object(obj)
    assert (n.tier, n.node_class, n.region, n.accelerators, n.speed_factor) == (Tier.CLOUD, NodeClass.CPU,
                                                                                "region-0", 0, 1.0)
    assert (n.cpu_cores, n.memory_gib) == (8.0, 16.0)


def test_a_node_with_foreign_label_values_does_not_stop_the_observation() -> None:
    obj = node("odd-0")
    obj["metadata"]["labels"][adapter.LABEL_TIER] = "core"
    obj["metadata"]["labels"][adapter.LABEL_CLASS] = "fpga"
    obj["metadata"]["annotations"][adapter.ANNOTATION_SPEED] = "fast"
    n = adapter.node_from_object(obj)
    assert (n.tier, n.node_class, n.speed_factor) == (Tier.CLOUD, NodeClass.CPU, 1.0)


def test_node_readiness_quarantine_and_throttle() -> None:
    assert adapter.node_ready(node("a"))
    assert not adapter.node_ready(node("a", ready=False))
    assert not adapter.node_ready({"metadata": {"name": "new"}, "status": {}})
    assert not adapter.node_quarantined(node("a", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]))
    assert adapter.node_quarantined(node("a", taints=[{"key": adapter.TAINT_QUARANTINE, "effect": "NoExecute"}]))
    assert adapter.throttle(node("g", Tier.CLOUD, NodeClass.GPU, throttle=0.6)) == pytest.approx(0.6)
    assert adapter.throttle(node("g", Tier.CLOUD, NodeClass.GPU)) == 1.0


# ---------------------------------------------------------------------------------------------- observe
def checkout_world() -> dict[str, Any]:
    """A small cluster: three nodes in two regions, the managed checkout Deployment and an unmanaged one."""
    nodes = [
        node("edge-cpu-0", Tier.EDGE, NodeClass.CPU, index=0, speed=1.0),
        node("cloud-cpu-0", Tier.CLOUD, NodeClass.CPU, index=1, speed=2.0,
             taints=[{"key": adapter.TAINT_QUARANTINE, "value": "true", "effect": "NoExecute"}]),
        node("cloud-gpu-0", Tier.CLOUD, NodeClass.GPU, region="region-1", index=2, speed=1.0, ready=False,
             throttle=0.5),
    ]
    checkout = deployment("checkout", replicas=6)
    search = deployment("search", replicas=1)
    pods = [
        pod("checkout-a", "checkout", "edge-cpu-0"),                              # Ready
        pod("checkout-b", "checkout", "cloud-cpu-0"),                             # Ready, twice as fast
        pod("checkout-c", "checkout", "edge-cpu-0", ready=False),                 # starting
        pod("checkout-d", "checkout", None),                                      # not scheduled yet
        pod("checkout-e", "checkout", "edge-cpu-0", terminating=True),            # on its way out
        pod("checkout-f", "checkout", "cloud-cpu-0", phase="Failed", ready=False),
        pod("checkout-x", "checkout", "edge-cpu-0", namespace="staging"),         # same labels, other namespace
        pod("search-a", "search", "edge-cpu-0", cpu="2", memory="1Gi"),           # another Deployment's pod
        pod("llm-a", "llm", "cloud-gpu-0", cpu="4", memory="24Gi", gpus=1),
    ]
    bindings, unbound = adapter.bind([intent("checkout")], by_key([checkout, search]), ["region-0", "region-1"])
    assert not unbound
    return {"nodes": nodes, "pods": pods, "deployments": by_key([checkout, search]), "bindings": bindings}


def observe(world: dict[str, Any], sigs: dict[str, Any] | None = None, node_sigs: dict[str, Any] | None = None,
            counters: adapter.Counters | None = None, now_s: float = 100.0) -> Any:
    return adapter.observe(now_s, world["nodes"], world["pods"], world["deployments"], world["bindings"],
                           sigs or {}, node_sigs or {}, counters or adapter.Counters())


def test_replicas_ready_and_pending_per_service() -> None:
    obs = observe(checkout_world())
    assert [s.name for s in obs.services] == [CHECKOUT]
    assert obs.desired_replicas.tolist() == [6]
    assert obs.ready_replicas.tolist() == [2]
    # the starting pod and the unscheduled one; not the terminating, the failed or other namespaces' pods
    assert obs.pending_replicas.tolist() == [2]
    names = [n.name for n in obs.nodes]
    rows = sorted(zip(obs.replica_node.tolist(), obs.replica_ready.tolist(), strict=True))
    assert rows == sorted([(names.index("edge-cpu-0"), True), (names.index("cloud-cpu-0"), True),
                           (names.index("edge-cpu-0"), False)])
    assert set(obs.replica_service.tolist()) == {0}


def test_capacity_counts_ready_pods_only_at_their_nodes_speed() -> None:
    world = checkout_world()
    obs = observe(world)
    service = world["bindings"][0].service
    per_replica = service.concurrency * 1000.0 / service.service_time_ms[NodeClass.CPU]  # 160 req/s for web
    # checkout-a at speed 1 and checkout-b at speed 2; the starting pod adds nothing yet
    assert obs.capacity_rps[0] == pytest.approx(per_replica * (1.0 + 2.0))


def test_pod_timestamps_give_each_replica_its_start_and_ready_time_on_the_loop_clock() -> None:
    """creationTimestamp and the Ready condition's lastTransitionTime, as a cluster reports a pod's cold start."""
    world = checkout_world()
    epoch_at_zero = adapter.timestamp_s("2024-05-01T12:00:00Z")
    for p in world["pods"]:
        p["metadata"]["creationTimestamp"] = "2024-05-01T12:01:00Z"
        for c in p["status"]["conditions"]:
            if c["type"] == "Ready":
                c["lastTransitionTime"] = "2024-05-01T12:01:09Z"
    obs = adapter.observe(100.0, world["nodes"], world["pods"], world["deployments"], world["bindings"], {}, {},
                          adapter.Counters(), epoch_at_zero_s=epoch_at_zero)
    assert obs.replica_started_s is not None
    assert obs.replica_ready_s is not None
    assert obs.replica_started_s.tolist() == [60.0, 60.0, 60.0]
    ready_at = obs.replica_ready_s[obs.replica_ready].tolist()
    assert ready_at == [69.0, 69.0]
    assert np.isnan(obs.replica_ready_s[~obs.replica_ready]).all(), "a starting pod has no Ready time yet"
    # without the loop's clock the timestamps are not reported, and a malformed one reads as unknown
    assert observe(world).replica_started_s is None
    assert np.isnan(adapter.timestamp_s("yesterday"))


def test_allocated_cpu_per_node_counts_every_live_pod_on_it() -> None:
    obs = observe(checkout_world())
    alloc = dict(zip([n.name for n in obs.nodes], obs.node_cpu_allocated.tolist(), strict=True))
    # edge: checkout-a, checkout-c, search-a and staging's checkout-x; not the terminating checkout-e
    assert alloc["edge-cpu-0"] == pytest.approx(0.5 + 0.5 + 2.0 + 0.5)
    assert alloc["cloud-cpu-0"] == pytest.approx(0.5)  # checkout-b; the failed checkout-f holds nothing
    assert alloc["cloud-gpu-0"] == pytest.approx(4.0)
    mem = dict(zip([n.name for n in obs.nodes], obs.node_memory_allocated_gib.tolist(), strict=True))
    assert mem["cloud-gpu-0"] == pytest.approx(24.0)
    acc = dict(zip([n.name for n in obs.nodes], obs.node_accelerators_allocated.tolist(), strict=True))
    assert acc == {"edge-cpu-0": 0, "cloud-cpu-0": 0, "cloud-gpu-0": 1}


def test_pods_of_other_deployments_do_not_count_as_replicas() -> None:
    world = checkout_world()
    # more search pods change nothing for checkout
    world["pods"] += [pod(f"search-{i}", "search", "edge-cpu-0") for i in "bcd"]
    obs = observe(world)
    assert (obs.ready_replicas.tolist(), obs.pending_replicas.tolist()) == ([2], [2])
    assert len(obs.replica_service) == 3


def test_a_terminating_pod_is_neither_replica_nor_allocation() -> None:
    world = checkout_world()
    before = observe(world)
    world["pods"] = [p for p in world["pods"] if p["metadata"]["name"] != "checkout-e"]
    after = observe(world)
    assert np.array_equal(before.node_cpu_allocated, after.node_cpu_allocated)
    assert np.array_equal(before.replica_node, after.replica_node)
    assert before.ready_replicas.tolist() == after.ready_replicas.tolist()


def test_nodes_are_sorted_by_name_with_their_state() -> None:
    world = checkout_world()
    world["nodes"] = list(reversed(world["nodes"]))
    obs = observe(world, node_sigs={"edge-cpu-0": node_signals("edge-cpu-0", 0.4, 33.0)})
    assert [n.name for n in obs.nodes] == ["cloud-cpu-0", "cloud-gpu-0", "edge-cpu-0"]
    assert obs.node_ready.tolist() == [True, False, True]
    assert obs.node_heartbeat_age_s.tolist() == [0.0, 60.0, 0.0]
    assert obs.node_quarantined.tolist() == [True, False, False]
    # the GPU node's speed factor under its power cap
    assert obs.node_speed.tolist() == pytest.approx([2.0, 0.5, 1.0])
    assert obs.node_utilization.tolist() == pytest.approx([0.0, 0.0, 0.4])
    # no power series: the node's idle draw
    idle = {k: v[3] for k, v in NODE_SHAPES.items()}
    assert obs.node_power_w.tolist() == pytest.approx([idle[(Tier.CLOUD, NodeClass.CPU)],
                                                       idle[(Tier.CLOUD, NodeClass.GPU)], 33.0])


def test_latency_and_load_come_from_the_signals_and_nan_passes_through() -> None:
    world = checkout_world()
    quiet = observe(world)
    assert math.isnan(quiet.p95_ms[0])
    assert math.isnan(quiet.p99_ms[0])
    assert quiet.arrival_rps.tolist() == [0.0]
    assert quiet.queue_length.tolist() == [0.0]

    busy = observe(world, {CHECKOUT: signals(CHECKOUT, 300.0, 200.0, 100.0, p95_ms=145.0, p99_ms=260.0)})
    assert busy.arrival_rps.tolist() == [300.0]
    assert (busy.p95_ms.tolist(), busy.p99_ms.tolist()) == ([145.0], [260.0])
    # Little's law over p95 minus the 25 ms service time and the 20 ms access RTT: 200 req/s × 0.1 s
    assert busy.queue_length[0] == pytest.approx(20.0)

    served_nothing = observe(world, {CHECKOUT: signals(CHECKOUT, 50.0, 0.0, 50.0)})
    assert math.isnan(served_nothing.p99_ms[0])
    assert served_nothing.arrival_rps.tolist() == [50.0]


def test_rtt_by_tier_and_region_and_regions_include_the_services_origin() -> None:
    obs = observe(checkout_world())
    assert obs.regions == ("region-0", "region-1")
    names = [n.name for n in obs.nodes]
    r0 = obs.regions.index("region-0")
    assert obs.ingress_rtt_ms[r0, names.index("edge-cpu-0")] == pytest.approx(adapter.ACCESS_RTT_MS)
    assert obs.ingress_rtt_ms[r0, names.index("cloud-cpu-0")] == pytest.approx(adapter.ACCESS_RTT_MS + 15.0)
    assert obs.ingress_rtt_ms[r0, names.index("cloud-gpu-0")] == pytest.approx(
        adapter.ACCESS_RTT_MS + 15.0 + adapter.INTER_REGION_RTT_MS)
    assert set(obs.region_carbon_g_per_kwh) == {"region-0", "region-1"}


def test_a_binding_whose_deployment_vanished_reads_as_no_replicas() -> None:
    world = checkout_world()
    world["deployments"] = {}
    obs = observe(world)
    assert (obs.desired_replicas.tolist(), obs.ready_replicas.tolist(), obs.capacity_rps.tolist()) == ([0], [0], [0])
    assert len(obs.replica_service) == 0


# ---------------------------------------------------------------------------------------------- counters
def web(name: str = "checkout") -> Any:
    return template_service("web", name)


def test_counters_integrate_the_rates_over_the_time_between_ticks() -> None:
    services = [web("checkout"), web("cart")]
    first = adapter.advance_counters(adapter.Counters(), 100.0, {"checkout": signals("checkout", 100.0)}, services)
    # the first tick has no interval to integrate over
    assert first.at_s == 100.0
    assert first.arrived == {"checkout": 0.0, "cart": 0.0}
    sig = {"checkout": signals("checkout", 100.0, 90.0, 10.0)}
    second = adapter.advance_counters(first, 110.0, sig, services)
    assert (second.arrived["checkout"], second.served["checkout"], second.dropped["checkout"]) == pytest.approx(
        (1000.0, 900.0, 100.0))
    assert second.arrived["cart"] == 0.0  # no series: no traffic
    third = adapter.advance_counters(second, 115.0, sig, services)
    assert third.arrived["checkout"] == pytest.approx(1500.0)
    # a clock that goes back adds nothing
    back = adapter.advance_counters(third, 112.0, sig, services)
    assert back.arrived["checkout"] == pytest.approx(1500.0)
    assert back.at_s == 112.0


def test_busy_core_seconds_of_a_saturated_replica_are_its_cpu_request() -> None:
    # web: 25 ms per request, 4 slots: one replica flat out serves 160 req/s and, as in the simulator
    # and the mock kubelet, uses its CPU request (the slots share it)
    service = web()
    per_replica_rps = service.concurrency * 1000.0 / service.service_time_ms[NodeClass.CPU]
    start = adapter.advance_counters(adapter.Counters(), 0.0, {}, [service])
    busy = {"checkout": signals("checkout", 3 * per_replica_rps)}
    after = adapter.advance_counters(start, 10.0, busy, [service], {"checkout": 3})
    assert after.busy["checkout"] == pytest.approx(3 * service.cpu_request * 10.0)
    # idle pods burn the platform's idle share of their request, as in the simulator
    idle = adapter.advance_counters(after, 20.0, {"checkout": signals("checkout", 0.0)}, [service], {"checkout": 3})
    assert idle.busy["checkout"] - after.busy["checkout"] == pytest.approx(
        3 * service.cpu_request * adapter.IDLE_CPU_FRACTION * 10.0)


def test_observe_reports_the_counters_it_is_given() -> None:
    world = checkout_world()
    key = CHECKOUT
    counters = adapter.Counters(100.0, {key: 5000.0}, {key: 4900.0}, {key: 100.0}, {key: 80.0})
    obs = observe(world, counters=counters)
    assert (obs.arrived_total.tolist(), obs.served_total.tolist(), obs.dropped_total.tolist(),
            obs.busy_core_seconds_total.tolist()) == ([5000.0], [4900.0], [100.0], [80.0])


# ---------------------------------------------------------------------------------------------- bind
def test_the_example_intent_binds_its_deployment_with_the_pod_templates_requests() -> None:
    dep = deployment("checkout", cpu="750m", memory="1Gi")
    (b,), unbound = adapter.bind([intent("checkout")], by_key([dep]), ["region-0", "region-1"])
    assert unbound == []
    assert (b.namespace, b.intent, b.deployment, b.autonomy) == ("default", "checkout", "checkout", "auto")
    s = b.service
    assert s.name == CHECKOUT
    assert (s.slo_p95_ms, s.slo_p99_ms, s.min_replicas, s.max_replicas) == (150.0, 250.0, 1, 20)
    assert (s.tenant, s.origin_region, s.allowed_regions) == ("retail", "region-0", ("region-0",))
    # the pod template's real requests win over the catalog's web profile (0.5 core, 0.25 GiB)
    assert (s.cpu_request, s.memory_request_gib) == pytest.approx((0.75, 1.0))
    assert s.service_time_ms == template_service("web", "checkout").service_time_ms


def test_without_requests_in_the_pod_template_the_catalog_profile_stands() -> None:
    dep = deployment("checkout", cpu=None)
    (b,), _ = adapter.bind([intent("checkout")], by_key([dep]), ["region-0"])
    web_profile = template_service("web", "checkout")
    assert (b.service.cpu_request, b.service.memory_request_gib) == (web_profile.cpu_request,
                                                                     web_profile.memory_request_gib)


def test_an_intent_whose_deployment_is_missing_is_unbound_and_says_why() -> None:
    other_namespace = deployment("checkout", namespace="staging")
    bound, (u,) = adapter.bind([intent("checkout")], by_key([other_namespace]), ["region-0"])
    assert bound == []
    assert u.key == CHECKOUT
    assert "deployment default/checkout not found" in u.why
    assert not u.target_found


def test_a_service_is_its_deployment_in_its_namespace_whatever_its_pods_labels() -> None:
    # the series are labelled by namespace and workload (the Deployment), not by a pod label
    for labels in ({"tier": "front"}, {"app": "shop", "kubeagora.io/service": "checkout-svc"}):
        dep = deployment("checkout", namespace="shop", selector=labels, template_labels=labels)
        (b,), unbound = adapter.bind([intent("checkout", namespace="shop")], by_key([dep]), ["region-0"])
        assert unbound == []
        assert b.service.name == adapter.service_key("shop", "checkout") == "shop/checkout"


def test_two_intents_on_one_service_bind_only_the_first() -> None:
    dep = deployment("checkout")
    bound, (u,) = adapter.bind([intent("checkout-b", "checkout"), intent("checkout-a", "checkout")],
                               by_key([dep]), ["region-0"])
    assert [b.intent for b in bound] == ["checkout-a"]  # by namespace and name, not by arrival
    assert u.key == "default/checkout-b"
    assert "deployment default/checkout is managed by another intent already" in u.why
    assert u.target_found


def test_the_template_comes_from_the_intent_then_the_pod_annotation_then_web() -> None:
    gpu_classes = {"tiers": ["cloud"], "nodeClasses": ["gpu"]}
    llm_dep = deployment("chat", template="llm", cpu=None, gpus=1)
    # no workload in the intent: the pod template's annotation says llm
    (b,), _ = adapter.bind([intent("chat", workload=None, placement=gpu_classes)], by_key([llm_dep]), ["region-0"])
    assert b.service.service_time_ms == {NodeClass.GPU: 140.0}
    assert b.service.slo_p99_ms == 250.0  # the intent's SLO, not the template's
    assert b.service.accelerator_request == 1
    # the intent's workload.template wins over the annotation
    web_dep = deployment("checkout", template="llm")
    (b,), _ = adapter.bind([intent("checkout")], by_key([web_dep]), ["region-0"])
    assert b.service.service_time_ms == {NodeClass.CPU: 25.0}
    # neither: web
    bare = deployment("checkout", template=None)
    (b,), _ = adapter.bind([intent("checkout", workload=None)], by_key([bare]), ["region-0"])
    assert b.service.service_time_ms == {NodeClass.CPU: 25.0}


def test_a_template_that_cannot_run_where_the_intent_allows_is_unbound_with_the_reason() -> None:
    llm_on_cpu = deployment("chat", template="llm")
    bound, (u,) = adapter.bind([intent("chat", workload=None)], by_key([llm_on_cpu]), ["region-0"])
    assert bound == []
    assert "spec.placement.nodeClasses" in u.why
    assert u.target_found
    unknown = deployment("checkout")
    bound, (u,) = adapter.bind([intent("checkout", workload={"template": "mainframe"})], by_key([unknown]),
                               ["region-0"])
    assert bound == []
    assert "mainframe" in u.why


def test_an_invalid_intent_is_unbound_naming_its_field() -> None:
    bad = intent("checkout", slo={"p95Ms": 300, "p99Ms": 250})
    bound, (u,) = adapter.bind([bad], by_key([deployment("checkout")]), ["region-0"])
    assert bound == []
    assert "slo" in u.why
    assert not u.target_found


def test_without_regions_in_the_intent_the_service_lives_in_the_first_cluster_region() -> None:
    placement = {"tiers": ["edge", "fog", "cloud"], "nodeClasses": ["cpu"]}
    (b,), _ = adapter.bind([intent("checkout", placement=placement)], by_key([deployment("checkout")]),
                           ["region-3", "region-4"])
    assert b.service.origin_region == "region-3"
    assert b.service.allowed_regions is None
    (b,), _ = adapter.bind([intent("checkout", placement=placement)], by_key([deployment("checkout")]), [])
    assert b.service.origin_region == "region-0"


def test_autonomy_is_carried_into_the_binding() -> None:
    (b,), _ = adapter.bind([intent("checkout", autonomy="approve")], by_key([deployment("checkout")]), ["region-0"])
    assert b.autonomy == "approve"


# ---------------------------------------------------------------------------------------------- the watch cache
def test_the_view_keeps_the_last_state_of_each_object_the_watches_delivered() -> None:
    view = ClusterView()
    view.apply("nodes", None, node("edge-cpu-0"))             # kopf's initial listing
    view.apply("pods", "ADDED", pod("checkout-a", "checkout", None))
    view.apply("pods", "MODIFIED", pod("checkout-a", "checkout", "edge-cpu-0"))
    view.apply("pods", "ADDED", pod("checkout-a", "checkout", "edge-cpu-0", namespace="staging"))
    assert view.events == 4
    assert [key_of(p) for p in view.all("pods")] == ["default/checkout-a", "staging/checkout-a"]
    got = view.get("pods", "default/checkout-a")
    assert got is not None
    assert got["spec"]["nodeName"] == "edge-cpu-0"
    assert key_of(node("edge-cpu-0")) == "edge-cpu-0"  # cluster-scoped: the name alone
    view.apply("pods", "DELETED", pod("checkout-a", "checkout", "edge-cpu-0"))
    view.apply("pods", "DELETED", pod("never-seen", "checkout", None))  # a delete of what was never seen is fine
    assert [key_of(p) for p in view.all("pods")] == ["staging/checkout-a"]
    assert view.get("pods", "default/checkout-a") is None
    with pytest.raises(KeyError, match="services"):
        view.apply("services", "ADDED", {"metadata": {"name": "x"}})


def test_a_deployment_selecting_by_match_expressions_finds_its_pods() -> None:
    dep = deployment("checkout", template_labels={"app": "checkout", "track": "stable"})
    dep["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["checkout"]},
                                                    {"key": "track", "operator": "NotIn", "values": ["canary"]}]}
    mine = pod("checkout-0", "checkout", "edge-cpu-0", labels={"app": "checkout", "track": "stable"})
    canary = pod("checkout-1", "checkout", "edge-cpu-0", labels={"app": "checkout", "track": "canary"})
    assert adapter.pods_of(dep, [mine, canary]) == [mine]


def test_ready_pods_of_each_service_come_from_the_watch() -> None:
    world = checkout_world()
    assert adapter.ready_pods_of(world["bindings"], world["deployments"], world["pods"]) == {"default/checkout": 2}
