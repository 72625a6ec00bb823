"""The extender's watch cache: what each watch event does to the nodes' labels, capacity and load."""

from __future__ import annotations

import pytest
from tests.unit.extender_objects import cache_of, deployment, intent, node, pod

from kubeagora.model import NodeClass
from kubeagora.scheduler_plugin.cache import DEPLOYMENTS, INTENTS, NODES, PODS, ClusterCache


def load(cache: ClusterCache, name: str) -> tuple[float, float, float, float]:
    s = cache.slot[name]
    return (float(cache.cpu_allocated[s]), float(cache.memory_allocated_gib[s]), float(cache.gpus_allocated[s]),
            float(cache.colocated_service_ms[s]))


def test_a_node_is_read_from_its_labels_allocatable_and_annotations() -> None:
    cache = cache_of([node("g", region="region-1", tier="fog", node_class="gpu", cpu="16", memory="64Gi", gpus=2,
                           speed=0.9, annotations={"kubeagora.io/gpu-throttle-factor": "0.4"})])
    info = cache.nodes["g"]
    assert (info.region, info.tier, info.node_class, info.zone) == ("region-1", "fog", NodeClass.GPU, "region-1-z0")
    assert (info.cpu_cores, info.memory_gib, info.gpus, info.tpus) == (16.0, 64.0, 2.0, 0.0)
    assert info.speed == pytest.approx(0.9 * 0.4)  # a power-capped GPU is slower
    assert info.dynamic_power_w == 700.0 - 110.0  # the simulator's fog GPU shape
    s = cache.slot["g"]
    assert cache.schedulable[s]
    assert cache.beta[s] == 0.6


def test_a_not_ready_or_cordoned_node_is_not_schedulable() -> None:
    cordoned = node("c")
    cordoned["spec"] = {"unschedulable": True}
    cache = cache_of([node("down", ready=False), cordoned, node("up")])
    assert [bool(cache.schedulable[cache.slot[n]]) for n in ("down", "c", "up")] == [False, False, True]


def test_bound_pods_add_their_requests_to_their_node_and_take_them_back() -> None:
    cache = cache_of([node("a"), node("b")])
    cache.apply(PODS, "ADDED", pod("w1", node_name="a", cpu="500m", memory="512Mi", template="web"))
    cache.apply(PODS, "ADDED", pod("w2", node_name="a", cpu="250m", template="web"))
    assert load(cache, "a") == pytest.approx((0.75, 0.5 + 0.25, 0.0, 50.0))  # web: 25 ms per request on CPU
    cache.apply(PODS, "MODIFIED", pod("w2", node_name="b", cpu="250m", template="web"))
    assert load(cache, "a") == pytest.approx((0.5, 0.5, 0.0, 25.0))
    assert load(cache, "b") == pytest.approx((0.25, 0.25, 0.0, 25.0))
    cache.apply(PODS, "MODIFIED", pod("w1", node_name="a", phase="Succeeded"))  # a finished pod frees its node
    cache.apply(PODS, "DELETED", pod("w2", node_name="b"))
    assert load(cache, "a") == load(cache, "b") == pytest.approx((0.0, 0.0, 0.0, 0.0))
    assert not cache.pods


def test_an_unbound_pod_takes_nothing() -> None:
    cache = cache_of([node("a")])
    cache.apply(PODS, "ADDED", pod("pending"))
    assert load(cache, "a") == (0.0, 0.0, 0.0, 0.0)
    assert not cache.pods


def test_a_pod_seen_before_its_node_keeps_its_load_for_the_node() -> None:
    cache = cache_of([])
    cache.apply(PODS, "ADDED", pod("llm", node_name="g", cpu="4", gpus=1, template="llm"))
    assert cache.slots_of(["g"]) == []  # not a node yet
    cache.apply(NODES, "ADDED", node("g", node_class="gpu", gpus=4))
    assert cache.slots_of(["g"]) == [cache.slot["g"]]
    assert load(cache, "g")[:3] == (4.0, 0.25, 1.0)


def test_the_node_arrays_grow_past_their_first_capacity() -> None:
    cache = cache_of([node(f"n{i}", cpu=str(i + 1)) for i in range(11)])
    assert [float(cache.cpu_cores[cache.slot[f"n{i}"]]) for i in range(11)] == [float(i + 1) for i in range(11)]
    assert all(cache.speed[cache.slot[f"n{i}"]] == 1.0 for i in range(11))


def test_a_relist_forgets_what_is_gone() -> None:
    cache = cache_of([node("a"), node("b")], [pod("p", node_name="a")])
    cache.replace(NODES, [node("b")])
    cache.replace(PODS, [])
    assert set(cache.nodes) == {"b"}
    assert cache.slots_of(["a", "b"]) == [cache.slot["b"]]
    assert load(cache, "a") == (0.0, 0.0, 0.0, 0.0)


def test_deployments_and_intents_are_kept_by_namespace_and_name() -> None:
    cache = cache_of([], deployments=[deployment("checkout")],
                     intents=[intent("checkout", "checkout", regions=["region-1"])])
    assert cache.selectors[("shop", "checkout")] == {"matchLabels": {"app": "checkout"}}
    assert cache.intents[("shop", "checkout")].placement.regions == frozenset({"region-1"})
    cache.apply(INTENTS, "DELETED", intent("checkout", "checkout"))
    cache.apply(DEPLOYMENTS, "DELETED", deployment("checkout"))
    assert not cache.intents
    assert not cache.selectors


def test_an_intent_without_a_deployment_target_is_ignored() -> None:
    bad = intent("x", "checkout")
    bad["spec"]["targetRef"]["kind"] = "StatefulSet"
    cache = cache_of([], intents=[bad, {"metadata": {"name": "empty", "namespace": "shop"}, "spec": {}}])
    assert not cache.intents


def test_healthy_once_nodes_and_pods_are_listed_and_other_events_are_ignored() -> None:
    cache = ClusterCache()
    assert not cache.healthy()
    cache.replace(NODES, [])
    assert not cache.healthy()
    cache.replace(PODS, [])
    assert cache.healthy()
    cache.apply(NODES, "BOOKMARK", {"metadata": {"resourceVersion": "7"}})
    assert not cache.nodes
    with pytest.raises(ValueError, match="unknown kind"):
        cache.apply("services", "ADDED", {})


def test_users_enter_at_the_first_edge_zone_of_their_region() -> None:
    cache = cache_of([node("e1", tier="edge", zone="region-0-z1"), node("e0", tier="edge", zone="region-0-z0"),
                      node("c", tier="cloud")])
    assert cache.user_zone == {"region-0": "region-0-z0"}
