"""Actions → the API requests that carry them out: scale subresource, eviction, taint; what cannot be enacted."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.unit.operator_objects import by_key, by_name, deployment, intent, node, pod

from kubeagora.model import (
    Action,
    LiftQuarantine,
    Migrate,
    NodeClass,
    Place,
    QuarantineNode,
    Scale,
    SetConcurrency,
    ShedLoad,
    Tier,
)
from kubeagora.operator import adapter, enact

CHECKOUT = adapter.service_key("default", "checkout")

SCALE_PATH = "/apis/apps/v1/namespaces/default/deployments/checkout/scale"


def cluster(replicas: int = 3) -> dict[str, Any]:
    nodes = [node("edge-cpu-0", Tier.EDGE, NodeClass.CPU, index=0),
             node("edge-cpu-1", Tier.EDGE, NodeClass.CPU, index=1,
                  taints=[{"key": "dedicated", "value": "pos", "effect": "NoSchedule"}]),
             node("cloud-cpu-0", Tier.CLOUD, NodeClass.CPU, index=2)]
    deps = [deployment("checkout", replicas=replicas), deployment("search", replicas=1)]
    pods = [pod("checkout-a", "checkout", "edge-cpu-0"),
            pod("checkout-b", "checkout", "edge-cpu-0"),
            pod("checkout-c", "checkout", "cloud-cpu-0"),
            pod("checkout-old", "checkout", "edge-cpu-1", terminating=True),
            pod("search-a", "search", "edge-cpu-1")]
    bindings, _ = adapter.bind([intent("checkout")], by_key(deps), ["region-0"])
    return {"bindings": {b.service.name: b for b in bindings}, "deployments": by_key(deps), "pods": pods,
            "nodes": by_name(nodes)}


def plan(actions: list[Action], world: dict[str, Any] | None = None) -> tuple[list[enact.ApiRequest],
                                                                              list[enact.NotEnacted]]:
    world = world or cluster()
    return enact.plan(actions, world["bindings"], world["deployments"], world["pods"], world["nodes"])


def test_scale_is_a_merge_patch_of_the_scale_subresource() -> None:
    (req,), skipped = plan([Scale(CHECKOUT, 5, "forecast 700 req/s")])
    assert skipped == []
    assert (req.method, req.path, req.content_type) == ("PATCH", SCALE_PATH, "application/merge-patch+json")
    assert req.body == {"spec": {"replicas": 5}}
    assert "forecast 700 req/s" in req.what


def test_several_places_for_one_service_are_one_patch_of_current_plus_k() -> None:
    world = cluster(replicas=3)
    (req,), skipped = plan([Place(CHECKOUT, "edge-cpu-0", "bid 1"), Place(CHECKOUT, "cloud-cpu-0", "bid 2"),
                            Place(CHECKOUT, "edge-cpu-0", "bid 3")], world)
    assert skipped == []
    assert (req.path, req.body) == (SCALE_PATH, {"spec": {"replicas": 6}})
    assert "3 more replica(s), best bids on edge-cpu-0, cloud-cpu-0, edge-cpu-0" in req.what


def test_a_place_after_a_scale_adds_to_the_scaled_count_and_a_scale_after_sets_it() -> None:
    (req,), _ = plan([Scale(CHECKOUT, 4), Place(CHECKOUT, "edge-cpu-0")])
    assert req.body == {"spec": {"replicas": 5}}
    (req,), _ = plan([Place(CHECKOUT, "edge-cpu-0"), Scale(CHECKOUT, 2)])
    assert req.body == {"spec": {"replicas": 2}}


def test_a_scale_below_zero_is_clamped() -> None:
    (req,), _ = plan([Scale(CHECKOUT, -1)])
    assert req.body == {"spec": {"replicas": 0}}


def test_migrate_evicts_a_pod_of_the_service_on_the_from_node() -> None:
    (req,), skipped = plan([Migrate(CHECKOUT, "cloud-cpu-0", "edge-cpu-0", "closer to users")])
    assert skipped == []
    assert (req.method, req.path) == ("POST", "/api/v1/namespaces/default/pods/checkout-c/eviction")
    assert req.body == {"apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": "checkout-c", "namespace": "default"}}
    assert "from cloud-cpu-0 (to edge-cpu-0)" in req.what


def test_migrations_from_one_node_evict_different_pods_and_stop_when_none_is_left() -> None:
    moves = [Migrate(CHECKOUT, "edge-cpu-0", "cloud-cpu-0") for _ in range(3)]
    requests, (skipped,) = plan(moves)
    assert sorted(r.path.split("/")[-2] for r in requests) == ["checkout-a", "checkout-b"]
    assert skipped.action == moves[2]
    assert "no pod of default/checkout left on edge-cpu-0" in skipped.why


def test_migrate_skips_a_node_with_only_terminating_or_other_services_pods() -> None:
    # edge-cpu-1 has a terminating checkout pod and a search pod: nothing of checkout to evict
    requests, (skipped,) = plan([Migrate(CHECKOUT, "edge-cpu-1", "edge-cpu-0")])
    assert requests == []
    assert "no pod of default/checkout left on edge-cpu-1" in skipped.why


def test_quarantine_appends_the_taint_and_keeps_the_existing_ones_if_the_node_is_unchanged() -> None:
    world = cluster()
    world["nodes"]["edge-cpu-1"]["metadata"]["resourceVersion"] = "4711"
    (req,), skipped = plan([QuarantineNode("edge-cpu-1", "no heartbeat for 40 s")], world)
    assert skipped == []
    assert (req.method, req.path, req.content_type) == ("PATCH", "/api/v1/nodes/edge-cpu-1",
                                                        "application/json-patch+json")
    assert req.body == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "4711"},
        {"op": "add", "path": "/spec/taints", "value": [
            {"key": "dedicated", "value": "pos", "effect": "NoSchedule"},
            {"key": adapter.TAINT_QUARANTINE, "value": "true", "effect": "NoExecute"}]}]
    assert "no heartbeat" in req.what


def test_lifting_a_quarantine_removes_only_our_taint_if_the_node_is_unchanged() -> None:
    world = cluster()
    world["nodes"]["edge-cpu-0"] = node("edge-cpu-0", Tier.EDGE, NodeClass.CPU, taints=[
        {"key": "dedicated", "value": "pos", "effect": "NoSchedule"},
        {"key": adapter.TAINT_QUARANTINE, "value": "true", "effect": "NoExecute"}])
    world["nodes"]["edge-cpu-0"]["metadata"]["resourceVersion"] = "12"
    (req,), _ = plan([LiftQuarantine("edge-cpu-0", "trust 0.90")], world)
    assert req.body == [{"op": "test", "path": "/metadata/resourceVersion", "value": "12"},
                        {"op": "add", "path": "/spec/taints",
                         "value": [{"key": "dedicated", "value": "pos", "effect": "NoSchedule"}]}]
    assert plan([LiftQuarantine("edge-cpu-1")], world)[0] == []  # not quarantined: nothing to lift


def test_a_node_quarantined_already_is_not_tainted_twice() -> None:
    world = cluster()
    world["nodes"]["edge-cpu-0"] = node("edge-cpu-0", Tier.EDGE, NodeClass.CPU,
                                        taints=[{"key": adapter.TAINT_QUARANTINE, "value": "true",
                                                 "effect": "NoExecute"}])
    requests, skipped = plan([QuarantineNode("edge-cpu-0")], world)
    assert (requests, skipped) == ([], [])


def test_a_quarantine_of_a_vanished_node_is_not_enacted() -> None:
    requests, (skipped,) = plan([QuarantineNode("edge-cpu-9")])
    assert requests == []
    assert "node edge-cpu-9 is gone" in skipped.why


@pytest.mark.parametrize("action", [SetConcurrency(CHECKOUT, 8), ShedLoad(CHECKOUT, 0.2)])
def test_concurrency_and_shedding_are_reported_not_enacted(action: Action) -> None:
    requests, (skipped,) = plan([action])
    assert requests == []
    assert skipped.action == action
    assert type(action).__name__ in skipped.why
    assert "ingress or runtime hook" in skipped.why


def test_actions_on_unmanaged_services_or_vanished_deployments_are_not_enacted() -> None:
    requests, (skipped,) = plan([Scale("default/search", 3)])
    assert requests == []
    assert "service default/search has no intent" in skipped.why
    world = cluster()
    world["deployments"] = {}
    requests, (skipped,) = plan([Scale(CHECKOUT, 3)], world)
    assert requests == []
    assert "deployment default/checkout is gone" in skipped.why


def test_a_mixed_tick_yields_every_request_and_each_body_serialises() -> None:
    requests, skipped = plan([Scale(CHECKOUT, 4), Migrate(CHECKOUT, "edge-cpu-0", "cloud-cpu-0"),
                              QuarantineNode("cloud-cpu-0"), ShedLoad(CHECKOUT, 0.1)])
    assert sorted(r.method + " " + r.path for r in requests) == [
        "PATCH /api/v1/nodes/cloud-cpu-0", f"PATCH {SCALE_PATH}",
        "POST /api/v1/namespaces/default/pods/checkout-a/eviction"]
    assert [type(s.action).__name__ for s in skipped] == ["ShedLoad"]
    for r in requests:
        orjson.dumps(r.body)  # what the API client sends


def test_a_quarantine_after_a_place_in_the_same_tick_still_finds_its_node() -> None:
    requests, skipped = plan([Place(CHECKOUT, "cloud-cpu-0"), QuarantineNode("edge-cpu-0", "silent")])
    assert skipped == []
    assert sorted(r.path for r in requests) == sorted([SCALE_PATH, "/api/v1/nodes/edge-cpu-0"])
