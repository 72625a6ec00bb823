"""The operator publishes its trust in nodes (annotation kubeagora.io/trust) and reads it back after a restart."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from tests.unit.operator_objects import checkout_cluster, node, node_signals, signals
from tests.unit.test_operator_control_loop import FakeSignals, loop_over

from kubeagora.operator import adapter, enact

CHECKOUT = adapter.service_key("default", "checkout")


def published(value: str | None, name: str = "n1") -> dict[str, Any]:
    obj = node(name)
    if value is not None:
        obj["metadata"]["annotations"][enact.ANNOTATION_TRUST] = value
    return obj


def written(requests: list[enact.ApiRequest]) -> dict[str, str]:
    out = {}
    for r in requests:
        assert r.content_type == enact.MERGE_PATCH
        assert r.body == {"metadata": {"annotations": {enact.ANNOTATION_TRUST: r.body["metadata"]["annotations"][
            enact.ANNOTATION_TRUST]}}}  # that one key, nothing else of the node
        out[r.path.rsplit("/", 1)[1]] = r.body["metadata"]["annotations"][enact.ANNOTATION_TRUST]
    return out


def test_trust_is_published_when_it_moves_a_step_and_when_it_is_whole_again() -> None:
    nodes = {"never": published(None, "never"), "fresh": published(None, "fresh"),
             "near": published("0.25", "near"), "moved": published("0.2", "moved"),
             "back": published("0.95", "back"), "junk": published("1e9", "junk")}
    trust = {"fresh": 0.2, "near": 0.2, "moved": 0.35, "junk": 0.5}
    assert written(enact.trust_requests(trust, nodes)) == {"fresh": "0.2", "moved": "0.35", "back": "1",
                                                          "junk": "0.5"}


def test_nothing_is_written_for_a_cluster_whose_nodes_were_never_distrusted() -> None:
    nodes = {f"n{i}": published(None, f"n{i}") for i in range(50)}
    assert enact.trust_requests({}, nodes) == []
    assert enact.trust_requests({"bidder:default/checkout": 0.0}, nodes) == []  # not a node


def test_a_restarted_operator_keeps_the_distrust_it_published() -> None:
    """The attack: a node distrusted by the operator waits for a restart (a rollout, a leader change), which
    forgot every score: the new run would publish trust 1 again on its first tick."""
    world = checkout_cluster()
    distrusted = world["nodes"][0]["metadata"]["name"]
    world = copy.deepcopy(world)
    world["nodes"][0]["metadata"]["annotations"][enact.ANNOTATION_TRUST] = "0.2"
    sig = FakeSignals({CHECKOUT: signals(CHECKOUT, offered_rps=50.0, p95_ms=40.0, p99_ms=60.0)},
                      {n["metadata"]["name"]: node_signals(n["metadata"]["name"], 0.3) for n in world["nodes"]})
    loop, api = loop_over(world, sig)
    for _ in range(2):
        asyncio.run(loop.tick())
    assert loop.state.mas is not None
    assert 0.2 <= loop.state.mas.trust[distrusted] < 0.3
    assert not [b for b in api.to("PATCH", f"/api/v1/nodes/{distrusted}")
                if enact.ANNOTATION_TRUST in str(b)]
