"""The extender's scores: the placement agent's Contract-Net bids, cheapest node first, 0..10."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.unit.extender_objects import cache_of, deployment, intent, node, pod

from kubeagora.coordination.contract_net import announce, award
from kubeagora.scheduler_plugin.bids import BidSettings, ledger_for, task_for
from kubeagora.scheduler_plugin.cache import ClusterCache
from kubeagora.scheduler_plugin.network import LinkLatencies, ingress_rtt_ms
from kubeagora.scheduler_plugin.placement import ANYWHERE
from kubeagora.scheduler_plugin.protocol import MAX_EXTENDER_PRIORITY
from kubeagora.scheduler_plugin.scoring import bids_for, prioritize_pod, scores_from_costs
from kubeagora.scheduler_plugin.workload import pod_demand

SETTINGS = BidSettings()


def scores(cache: ClusterCache, p: dict[str, Any], names: list[str]) -> dict[str, int]:
    return prioritize_pod(cache, pod_demand(p), p["metadata"]["annotations"], names, SETTINGS)


def llm(name: str = "llm-0", **kw: Any) -> dict[str, Any]:
    return pod(name, labels={"app": "llm"}, cpu="4", memory="24Gi", gpus=1, template="llm", **kw)


def noisy(node_name: str, count: int) -> list[dict[str, Any]]:
    """GPU work already on a node: other LLM replicas, one GPU each, little CPU."""
    return [pod(f"noisy-{node_name}-{i}", labels={"app": "noisy"}, cpu="100m", gpus=1, template="llm",
                node_name=node_name) for i in range(count)]


GPU_NODES = [node("g-fast", node_class="gpu", gpus=4, speed=1.0), node("g-slow", node_class="gpu", gpus=4, speed=0.8)]


def test_a_gpu_service_goes_to_the_gpu_node_with_the_least_interference() -> None:
    # alone, the faster GPU node wins: the bids price slowness
    idle = scores(cache_of(GPU_NODES), llm(), ["g-fast", "g-slow"])
    assert idle["g-fast"] == MAX_EXTENDER_PRIORITY > idle["g-slow"]
    # with three GPUs of the fast node busy, the replica would slow itself and its neighbours there
    busy = scores(cache_of(GPU_NODES, noisy("g-fast", 3)), llm(), ["g-fast", "g-slow"])
    assert busy["g-slow"] == MAX_EXTENDER_PRIORITY > busy["g-fast"]


def test_more_co_located_work_makes_a_dearer_bid() -> None:
    nodes = [node(f"g{i}", node_class="gpu", gpus=4) for i in range(4)]
    cache = cache_of(nodes, [p for i in range(4) for p in noisy(f"g{i}", i)])
    offered = bids_for(cache, pod_demand(llm()), {}, [f"g{i}" for i in range(4)], SETTINGS)
    assert offered is not None
    interference = offered.bids.interference_ms.tolist()
    assert interference == sorted(interference)
    assert len(set(interference)) == 4
    assert offered.bids.cost_ms.tolist() == sorted(offered.bids.cost_ms.tolist())
    got = scores(cache, llm(), [f"g{i}" for i in range(4)])
    assert got["g0"] == MAX_EXTENDER_PRIORITY
    assert got["g3"] < got["g0"]


def test_the_users_region_is_nearer() -> None:
    cache = cache_of([node("far", region="region-0"), node("near", region="region-1")])
    got = scores(cache, pod("web-0", template="web", annotations={"kubeagora.io/origin-region": "region-1"}),
                 ["far", "near"])
    assert got["near"] == MAX_EXTENDER_PRIORITY > got["far"]


def test_an_intents_first_region_stands_for_its_users() -> None:
    nodes = [node("r0", region="region-0"), node("r1", region="region-1"), node("r2", region="region-2")]
    cache = cache_of(nodes, deployments=[deployment("web")], intents=[intent("web", "web", regions=["region-2"])])
    got = scores(cache, pod("web-0", labels={"app": "web"}, template="web"), ["r0", "r1", "r2"])
    assert got == {"r0": 0, "r1": 0, "r2": MAX_EXTENDER_PRIORITY}  # outside the residency: cannot bid


def test_a_cleaner_grid_and_a_trusted_node_bid_lower() -> None:
    clean = node("clean", region="hydro")
    dirty = node("dirty", region="coal")
    claims_dirtier = node("claims", region="hydro", annotations={"kubeagora.io/carbon-g-per-kwh": "600"})
    settings = BidSettings(region_carbon_g_per_kwh={"hydro": 60.0, "coal": 600.0})
    p = pod("api-0", cpu="8", template="api")
    bids = bids_for(cache_of([clean, dirty, claims_dirtier]), pod_demand(p), p["metadata"]["annotations"],
                    ["clean", "dirty", "claims"], settings)
    assert bids is not None
    assert bids.bids.carbon_g_per_h[0] < bids.bids.carbon_g_per_h[1]
    assert bids.bids.cost_ms[0] < bids.bids.cost_ms[1]
    assert bids.bids.carbon_g_per_h[2] == pytest.approx(bids.bids.carbon_g_per_h[1])  # a dirtier claim counts
    # trust is the operator's to publish (kept in the cache's trust column), never read from the node
    cache = cache_of([node("full"), node("half")])
    cache.trust[cache.slot["half"]] = 0.5
    got = scores(cache, p, ["full", "half"])
    assert got["full"] == MAX_EXTENDER_PRIORITY
    assert got["half"] == pytest.approx(MAX_EXTENDER_PRIORITY / 2, abs=1)


def test_a_pod_the_extender_knows_nothing_about_scores_zero_everywhere() -> None:
    cache = cache_of([node("a"), node("b", region="region-1")])
    assert scores(cache, pod("plain"), ["a", "b"]) == {"a": 0, "b": 0}


def test_unknown_and_infeasible_nodes_score_zero() -> None:
    cache = cache_of([node("ok"), node("down", ready=False)])
    assert scores(cache, pod("w", template="web"), ["ok", "down", "stranger"]) == {
        "ok": MAX_EXTENDER_PRIORITY, "down": 0, "stranger": 0}


def test_scores_are_the_ratio_of_the_best_bid_to_each() -> None:
    got = scores_from_costs(["a", "b", "c", "d"], np.array([19.0, 39.0, 199.0, np.inf]))
    assert got == {"a": 10, "b": 5, "c": 1, "d": 0}
    assert scores_from_costs(["x"], np.array([np.inf])) == {"x": 0}


def test_the_scores_rank_nodes_as_the_placement_agent_s_bids_do() -> None:
    cache = cache_of([*GPU_NODES, node("g-far", region="region-1", node_class="gpu", gpus=4)], noisy("g-fast", 2))
    names = ["g-fast", "g-slow", "g-far"]
    bids = announce(task_for(pod_demand(llm()), ANYWHERE, "region-0"),
                    ledger_for(cache, cache.slots_of(names), "region-0", SETTINGS))
    winner = award(bids)
    got = scores(cache, llm(annotations={"kubeagora.io/origin-region": "region-0"}), names)
    assert winner is not None
    assert max(got, key=lambda n: got[n]) == winner.node
    assert [got[b.node] for b in sorted(bids, key=lambda b: b.cost_ms)] == sorted(got.values(), reverse=True)


def test_the_rtt_estimate_follows_the_topology_s_paths() -> None:
    links = LinkLatencies(edge_access_ms=20, fog_ms=5, cloud_hop_ms=1, inter_region_ms=80)
    rtt = ingress_rtt_ms("region-0",
                         regions=["region-0", "region-0", "region-0", "region-0", "region-1"],
                         zones=["region-0-z0", "region-0-z1", "region-0-z0", "region-0-cloud", "region-1-cloud"],
                         tiers=["edge", "edge", "fog", "cloud", "cloud"],
                         user_zone={"region-0": "region-0-z0"}, links=links)
    assert rtt.tolist() == [20.0, 50.0, 30.0, 26.0, 106.0]
    assert ingress_rtt_ms(None, ["region-0"], ["z"], ["edge"], {}).tolist() == [0.0]
