"""A node scoring itself up through what it writes on its own Node object (its kubelet's credentials
may set its annotations): speed, trust, carbon. On today's main a node with ``speed-factor: 1e9``
scored 10 and every honest node 0. Trust is the operator's verdict, written where only it may write
(see ``test_node_written_trust.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.extender_objects import cache_of, node, pod

from kubeagora.scheduler_plugin.bids import BidSettings
from kubeagora.scheduler_plugin.cache import NODES, ClusterCache
from kubeagora.scheduler_plugin.scoring import prioritize_pod
from kubeagora.scheduler_plugin.workload import pod_demand

HONEST = ("honest-a", "honest-b", "honest-c")
WEB = pod("web-0", template="web", cpu="2")


def scores(cache: ClusterCache, names: list[str], settings: BidSettings | None = None) -> dict[str, int]:
    return prioritize_pod(cache, pod_demand(WEB), WEB["metadata"]["annotations"], names, settings or BidSettings())


def honest_nodes() -> list[dict[str, Any]]:
    return [node(name, speed=speed) for name, speed in zip(HONEST, (1.0, 0.98, 0.95), strict=True)]


@pytest.mark.parametrize("claim", ["1e9", "1e308", "inf", "1.5", "nan", "-1", "0"])
def test_a_node_claiming_to_be_fast_does_not_outscore_the_honest_ones(claim: str) -> None:
    liar = node("liar", annotations={"kubeagora.io/speed-factor": claim})
    cache = cache_of([*honest_nodes(), liar])
    got = scores(cache, [*HONEST, "liar"])
    assert got["liar"] <= max(got[n] for n in HONEST), got
    assert max(got[n] for n in HONEST) == 10


def test_a_lying_node_does_not_take_the_pod_from_a_better_node() -> None:
    """The honest node is nearer the pod's users; the liar claims a billion-fold speed."""
    near = node("near", region="region-1")
    liar = node("liar", region="region-0", annotations={"kubeagora.io/speed-factor": "1e9"})
    cache = cache_of([near, liar])
    p = pod("web-0", template="web", cpu="2", annotations={"kubeagora.io/origin-region": "region-1"})
    got = prioritize_pod(cache, pod_demand(p), p["metadata"]["annotations"], ["near", "liar"], BidSettings())
    assert got["near"] == 10 > got["liar"], got


def test_the_extender_reads_only_the_operators_published_trust() -> None:
    """Trust is read from ``kubeagora.io/trust``, which only the operator may write: the admission policy
    ``kubeagora-node-trust-operator-only`` refuses the node's own write (``test_node_written_trust.py``
    performs that attack on the real API server). Here: a published verdict lowers the node's score, and a
    value that is not a trust in [0, 1] counts as no verdict (1, never above an honest node)."""
    cache = cache_of(honest_nodes())
    before = scores(cache, list(HONEST))
    cache.apply(NODES, "MODIFIED", node("honest-a", speed=1.0, annotations={"kubeagora.io/trust": "0.2"}))
    assert cache.trust[cache.slot["honest-a"]] == 0.2
    after = scores(cache, list(HONEST))
    assert after["honest-a"] < before["honest-a"]
    assert after["honest-a"] < after["honest-b"]
    for junk in ("1e9", "inf", "nan", "-1", "high"):
        cache.apply(NODES, "MODIFIED", node("honest-a", speed=1.0, annotations={"kubeagora.io/trust": junk}))
        assert cache.trust[cache.slot["honest-a"]] == 1.0


def test_a_node_claiming_a_clean_grid_does_not_outscore_its_neighbours() -> None:
    settings = BidSettings(region_carbon_g_per_kwh={"region-0": 400.0})
    liar = node("liar", annotations={"kubeagora.io/carbon-g-per-kwh": "0"})
    cache = cache_of([node("honest-a"), liar])
    got = scores(cache, ["honest-a", "liar"], settings)
    assert got["liar"] <= got["honest-a"], got
