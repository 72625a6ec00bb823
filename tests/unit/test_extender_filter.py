"""The extender's filter: intent placement (regions, tiers, classes) and accelerators, each failure named."""

from __future__ import annotations

from tests.unit.extender_objects import cache_of, deployment, intent, node, pod

from kubeagora.kubeapi.selectors import matches
from kubeagora.scheduler_plugin.cache import node_info
from kubeagora.scheduler_plugin.filtering import filter_pod
from kubeagora.scheduler_plugin.workload import pod_demand

NODES = [
    node("c0", region="region-0"),
    node("c1", region="region-1"),
    node("e1", region="region-1", tier="edge", node_class="cpu", cpu="4", memory="8Gi"),
    node("m1", region="region-1", tier="edge", node_class="mcu", cpu="1", memory="512Mi"),
    node("g0", region="region-0", node_class="gpu", gpus=4),
    node("g1", region="region-1", node_class="gpu", gpus=4),
    node("t1", region="region-1", node_class="tpu", tpus=4),
]
ALL = [n["metadata"]["name"] for n in NODES]


def test_a_resident_service_may_only_use_the_regions_of_its_intent() -> None:
    cache = cache_of(NODES, deployments=[deployment("checkout")],
                     intents=[intent("checkout", "checkout", regions=["region-1"])])
    out = filter_pod(cache, pod_demand(pod("checkout-abc", labels={"app": "checkout", "pod-template-hash": "x"})), ALL)
    assert out.passed == ["c1", "e1", "m1", "g1", "t1"]
    assert set(out.unresolvable) == {"c0", "g0"}
    assert not out.failed
    assert out.unresolvable["c0"] == ("intent shop/checkout placement.regions: node region 'region-0' "
                                      "not in [region-1]")


def test_tiers_and_node_classes_restrict_too() -> None:
    cache = cache_of(NODES, deployments=[deployment("api")],
                     intents=[intent("api", "api", tiers=["edge"], nodeClasses=["cpu"])])
    out = filter_pod(cache, pod_demand(pod("api-1", labels={"app": "api"})), ALL)
    assert out.passed == ["e1"]
    assert "placement.tiers: node tier 'cloud' not in [edge]" in out.unresolvable["c1"]
    assert "placement.nodeClasses: node node class 'mcu' not in [cpu]" in out.unresolvable["m1"]


def test_a_pod_of_no_intent_passes_everywhere() -> None:
    cache = cache_of(NODES, deployments=[deployment("checkout")],
                     intents=[intent("checkout", "checkout", regions=["region-1"])])
    for stranger in (pod("other", labels={"app": "other"}),  # another Deployment's pod
                     pod("checkout-x", namespace="elsewhere", labels={"app": "checkout"})):  # another namespace
        out = filter_pod(cache, pod_demand(stranger), ALL)
        assert out.passed == ALL
        assert not out.failed
        assert not out.unresolvable


def test_an_intent_whose_deployment_is_unknown_claims_no_pod() -> None:
    cache = cache_of(NODES, intents=[intent("checkout", "checkout", regions=["region-1"])])
    assert filter_pod(cache, pod_demand(pod("c", labels={"app": "checkout"})), ALL).passed == ALL


def test_two_intents_claiming_a_pod_must_both_hold() -> None:
    cache = cache_of(NODES, deployments=[deployment("a", match_labels={"team": "t"}),
                                         deployment("b", match_labels={"app": "ab"})],
                     intents=[intent("ia", "a", regions=["region-1"]), intent("ib", "b", nodeClasses=["gpu"])])
    out = filter_pod(cache, pod_demand(pod("p", labels={"team": "t", "app": "ab"})), ALL)
    assert out.passed == ["g1"]
    assert out.unresolvable["c0"].startswith("intent shop/ia, shop/ib placement.regions")


def test_a_gpu_pod_goes_only_to_gpu_nodes_with_free_gpus() -> None:
    busy = [pod(f"busy{i}", node_name="g0", gpus=1) for i in range(4)]
    cache = cache_of(NODES, busy)
    out = filter_pod(cache, pod_demand(pod("llm", gpus=1, template="llm")), ALL)
    assert out.passed == ["g1"]
    assert out.failed == {"g0": "accelerators: 0 of 4 nvidia.com/gpu free, pod requests 1"}  # preemption may help
    assert out.unresolvable["c1"] == ("accelerators: pod requests 1 nvidia.com/gpu, only gpu nodes have it "
                                      "(node class cpu)")
    assert "node class tpu" in out.unresolvable["t1"]


def test_a_gpu_pod_asking_more_than_a_node_has_is_unresolvable_there() -> None:
    cache = cache_of([node("small", node_class="gpu", gpus=1), node("big", node_class="gpu", gpus=4)])
    out = filter_pod(cache, pod_demand(pod("train", gpus=2)), ["small", "big"])
    assert out.passed == ["big"]
    assert set(out.unresolvable) == {"small"}


def test_a_tpu_pod_goes_only_to_tpu_nodes() -> None:
    out = filter_pod(cache_of(NODES), pod_demand(pod("t", tpus=1)), ALL)
    assert out.passed == ["t1"]
    assert len(out.unresolvable) == len(ALL) - 1


def test_nodes_the_cache_does_not_know_pass_and_full_nodes_sent_take_precedence() -> None:
    cache = cache_of(NODES)
    out = filter_pod(cache, pod_demand(pod("llm", gpus=1)), ["g1", "stranger"])
    assert out.passed == ["g1", "stranger"]
    relabelled = node_info(node("g1", region="region-1", node_class="cpu"))
    out = filter_pod(cache, pod_demand(pod("llm", gpus=1)), ["g1"], offered={"g1": relabelled})
    assert out.passed == []
    assert "node class cpu" in out.unresolvable["g1"]


def test_label_selectors_follow_kubernetes_semantics() -> None:
    labels = {"app": "web", "tier": "front"}
    assert matches({"matchLabels": {"app": "web"}}, labels)
    assert not matches({"matchLabels": {"app": "api"}}, labels)
    assert matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]},
                                         {"key": "gone", "operator": "DoesNotExist"},
                                         {"key": "app", "operator": "Exists"},
                                         {"key": "tier", "operator": "NotIn", "values": ["back"]}]}, labels)
    assert not matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels)
    assert not matches({}, labels)
    assert not matches(None, labels)
    assert not matches({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, labels)


def test_min_trust_keeps_a_pod_off_nodes_the_operator_distrusts_and_says_so() -> None:
    distrusted = node("c2", region="region-0", annotations={"kubeagora.io/trust": "0.3"})
    half = node("c3", region="region-0", annotations={"kubeagora.io/trust": "0.6"})
    strict = intent("checkout", "checkout")
    strict["spec"]["placement"]["minTrust"] = 0.5
    cache = cache_of([*NODES, distrusted, half], deployments=[deployment("checkout")], intents=[strict])
    demand = pod_demand(pod("checkout-abc", labels={"app": "checkout", "pod-template-hash": "x"}))
    out = filter_pod(cache, demand, ["c0", "c2", "c3"])
    assert out.passed == ["c0", "c3"]  # no verdict published on c0: nothing held against it
    assert out.failed == {"c2": "intent shop/checkout placement.minTrust: node trusted 0.3 < 0.5"}
    # an intent without minTrust is not held back by trust here (the bids weigh it instead)
    cache = cache_of([*NODES, distrusted], deployments=[deployment("checkout")],
                     intents=[intent("checkout", "checkout")])
    assert filter_pod(cache, demand, ["c0", "c2"]).passed == ["c0", "c2"]
