"""The mock kubelet's Burstable CPU model: what a pod wants, what CFS gives it on a shared node, how
fast it then serves, and what the resource metrics API then reports (above 100 % under overload)."""

from __future__ import annotations

import numpy as np
import pytest

from kubeagora.kubelet import cpu_share as cs
from kubeagora.kubelet import resource_metrics as rm
from kubeagora.kubelet.traffic import BUCKETS_S, IDLE_CPU_FRACTION, PodTable, TrafficModel, profile_from_template
from kubeagora.model import Node, NodeClass, Tier
from kubeagora.sim.catalog import TEMPLATES

IDLE = IDLE_CPU_FRACTION
INF = np.inf


def arr(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_cores_follow_the_load_from_idle_through_the_request_and_beyond() -> None:
    request = arr(0.5, 0.5, 0.5, 0.5)
    cores = cs.cores_for_load(request, arr(0.0, 0.5, 1.0, 3.0), IDLE)
    assert cores == pytest.approx([0.5 * IDLE, 0.5 * (IDLE + (1 - IDLE) * 0.5), 0.5, 0.5 * (IDLE + (1 - IDLE) * 3)])
    assert cs.load_ratio_served(request, cores, IDLE) == pytest.approx([0.0, 0.5, 1.0, 3.0])
    assert cs.load_ratio_served(arr(0.0), arr(1.0), IDLE) == pytest.approx([0.0])


def test_wanted_cores_are_what_the_work_needs_up_to_the_limit() -> None:
    request = arr(0.5, 0.5, 0.5)
    wanted = cs.wanted_cores(request, arr(INF, 1.0, 1.0), arr(3.0, 3.0, 0.5), IDLE)
    assert wanted == pytest.approx([cs.cores_for_load(arr(0.5), arr(3.0), IDLE)[0], 1.0,
                                    cs.cores_for_load(arr(0.5), arr(0.5), IDLE)[0]])


def test_a_node_with_room_gives_every_pod_what_it_wants() -> None:
    wanted = arr(2.0, 0.1, 3.0)
    got = cs.share_node(wanted, cs.cfs_weight(arr(0.5, 0.5, 1.0)), np.array([0, 0, 1]), arr(4.0, 4.0))
    assert got == pytest.approx(wanted)


def test_an_oversubscribed_node_splits_by_request_and_gives_away_what_a_pod_leaves() -> None:
    # 4 cores; requests 0.5, 1.0 and 0.5; the third pod wants only 0.3, the first two want far more
    wanted, request = arr(5.0, 5.0, 0.3), arr(0.5, 1.0, 0.5)
    got = cs.share_node(wanted, cs.cfs_weight(request), np.zeros(3, dtype=np.int64), arr(4.0))
    assert got[2] == pytest.approx(0.3)
    assert got.sum() == pytest.approx(4.0)
    assert got[1] == pytest.approx(2 * got[0])  # in proportion to the requests
    assert got[0] == pytest.approx(3.7 / 3)


def test_no_weight_no_cores_and_no_wanted_no_cores() -> None:
    got = cs.share_node(arr(0.0, 1.0), cs.cfs_weight(arr(0.5, 0.0)), np.zeros(2, dtype=np.int64), arr(4.0))
    assert got == pytest.approx([0.0, 1.0])  # a pod without a request still gets idle cores


@pytest.mark.parametrize("seed", range(20))
def test_fair_shares_hold_their_invariants(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_nodes, n_pods = int(rng.integers(1, 5)), int(rng.integers(1, 30))
    node = rng.integers(0, n_nodes, n_pods)
    request = rng.choice([0.1, 0.25, 0.5, 1.0, 2.0], n_pods)
    cores = np.maximum(np.bincount(node, request, minlength=n_nodes), 0.5) * rng.uniform(1.0, 3.0, n_nodes)
    wanted = cs.cores_for_load(request, rng.exponential(1.5, n_pods), IDLE) * (rng.uniform(size=n_pods) > 0.1)
    got = cs.share_node(wanted, cs.cfs_weight(request), node, cores)
    used = np.bincount(node, got, minlength=n_nodes)
    assert np.all(got <= wanted + 1e-9)
    assert np.all(used <= cores + 1e-9)
    assert np.all(got >= np.minimum(wanted, request) - 1e-9)  # Σ requests ≤ cores: each gets its request
    for j in range(n_nodes):
        short = (node == j) & (got < wanted - 1e-9)
        if short.any():  # cores left over only if every pod of the node got what it wanted
            assert used[j] == pytest.approx(cores[j])
            per_weight = got[short] / request[short]
            assert per_weight == pytest.approx(np.full(short.sum(), per_weight[0]))
            satisfied = (node == j) & ~short
            assert np.all(wanted[satisfied] / request[satisfied] <= per_weight[0] + 1e-9)


def test_the_ceiling_is_what_a_pod_uses_plus_the_idle_cores_up_to_its_limit() -> None:
    # node 0 (4 cores): two pods using 1 core each, one limited to 1.5; node 1 (2 cores) full: held pods
    wanted, limit = arr(1.0, 1.0, 3.0, 3.0), arr(INF, 1.5, INF, INF)
    node, cores = np.array([0, 0, 1, 1]), arr(4.0, 2.0)
    granted = cs.share_node(wanted, cs.cfs_weight(arr(0.5, 0.5, 0.5, 0.5)), node, cores)
    assert granted == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert cs.ceiling_cores(wanted, granted, limit, node, cores) == pytest.approx([3.0, 1.5, 1.0, 1.0])


def test_capacity_ratio_only_above_nominal_unless_starved() -> None:
    request = arr(0.5, 0.5, 0.5, 0.0)
    wanted = cs.cores_for_load(request, arr(0.4, 3.0, 3.0, 1.0), IDLE)
    half = cs.cores_for_load(arr(0.5), arr(0.5), IDLE)[0]
    granted = np.array([wanted[0], wanted[1], half, 0.0])
    ceiling = np.array([wanted[0], cs.cores_for_load(arr(0.5), arr(4.0), IDLE)[0], half, 0.0])
    # below nominal: nominal; room for 4 ×: 4 ×; starved to half its request: half; no request: nominal
    assert cs.capacity_ratio(request, wanted, granted, ceiling, IDLE) == pytest.approx([1.0, 4.0, 0.5, 1.0])


def node(cores: float) -> Node:
    return Node("n0", Tier.CLOUD, "r0", "r0-z", NodeClass.CPU, cpu_cores=cores, memory_gib=64)


def web_capacity_rps() -> float:
    t = TEMPLATES["web"]
    return float(t["concurrency"]) * 1000.0 / float(t["service_time_ms"][NodeClass.CPU])


def run(cores: float, rps: float, pods: dict[str, tuple[float, float]], seconds: int = 40
        ) -> tuple[TrafficModel, PodTable, dict[str, float]]:
    """``pods``: name → (request, limit) of one web service's pods on one node; returns each pod's
    CPU utilisation (of its request) over the last 15 s, as the resource metrics API reports it."""
    model = TrafficModel([node(cores)], np.zeros((1, 1)), seed=3)
    table = PodTable(8)
    s = model.set_profile(profile_from_template("ns/web", "web", rps))
    for name, (request, lim) in pods.items():
        table.add(name, s, 0, cpu=request, cpu_limit=lim)
        table.set_ready(name, True)
    history = rm.UsageHistory()
    serving, throttle = np.ones(1, dtype=bool), np.ones(1)
    for t in range(seconds):
        model.tick(1.0, table, serving, throttle)
        history.record(float(t), {name: table.used_cpu_seconds(name) or 0.0 for name in pods})
    util = {}
    for name, (request, _) in pods.items():
        usage = history.usage(name)
        assert usage is not None
        util[name] = usage.cores / request
    return model, table, util


def p99_ms(model: TrafficModel) -> float:
    counts = model.bucket_counts[0]
    cum = np.cumsum(counts)
    return float(1000 * np.array([*BUCKETS_S, np.inf])[np.searchsorted(cum, 0.99 * cum[-1])])


def test_an_overloaded_pod_without_a_limit_uses_the_node_and_keeps_up() -> None:
    cap = web_capacity_rps()
    calm, _, _ = run(16.0, 0.3 * cap, {"a": (0.5, INF)})
    model, table, util = run(16.0, 3 * cap, {"a": (0.5, INF)})
    assert util["a"] == pytest.approx(IDLE + (1 - IDLE) * 3.0, rel=0.08)  # ~290 % of its request
    assert model.dropped.sum() == 0
    assert table.backlog.max() < 1.0  # it serves the load: no backlog builds
    assert p99_ms(model) <= p99_ms(calm)  # nor a queue: the idle cores serve the burst at once


def test_an_overloaded_pod_with_a_limit_stops_there_and_falls_behind() -> None:
    cap = web_capacity_rps()
    model, table, util = run(16.0, 3 * cap, {"a": (0.5, 1.0)})
    assert util["a"] == pytest.approx(2.0, rel=0.02)  # 1 core of a 0.5 request
    assert table.backlog.max() + model.dropped.sum() > 10 * cap  # a third of the load is left each second
    assert p99_ms(model) >= 1000.0  # and waits in the queue


def test_overloaded_pods_on_a_full_node_share_it_by_request() -> None:
    cap = web_capacity_rps()
    # two pods (0.5 and 1.0 requested) on 2 cores, each offered 3 × its nominal capacity: both want more
    _, _, util = run(2.0, 6 * cap, {"small": (0.5, INF), "big": (1.0, INF)})
    assert util["small"] * 0.5 + util["big"] * 1.0 == pytest.approx(2.0, rel=0.02)  # the node is full
    assert util["small"] == pytest.approx(util["big"], rel=0.05)  # same share per requested core
    assert util["small"] > 1.0


def test_below_its_request_a_pod_uses_what_the_work_needs() -> None:
    cap = web_capacity_rps()
    _, _, util = run(16.0, 0.5 * cap, {"a": (0.5, INF)})
    assert util["a"] == pytest.approx(IDLE + (1 - IDLE) * 0.5, rel=0.1)


def test_a_pod_has_a_cpu_limit_only_if_every_container_has_one() -> None:
    from kubeagora.kubelet.pods import limits

    def pod(*resources: dict[str, dict[str, str]]) -> dict[str, object]:
        return {"spec": {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}}

    assert limits(pod({"limits": {"cpu": "500m"}}, {"limits": {"cpu": "1"}}), "cpu") == pytest.approx(1.5)
    assert limits(pod({"limits": {"cpu": "500m"}}, {"requests": {"cpu": "1"}}), "cpu") == INF
    assert limits(pod({}), "cpu") == INF


def test_a_model_without_services_or_ready_pods_ticks() -> None:
    model = TrafficModel([node(4.0)], np.zeros((1, 1)), seed=1)
    table = PodTable(4)
    serving, throttle = np.ones(1, dtype=bool), np.ones(1)
    model.tick(1.0, table, serving, throttle)  # nothing at all
    s = model.set_profile(profile_from_template("ns/web", "web", 50.0))
    table.add("starting", s, 0, cpu=0.5)  # running, not Ready: idle CPU only
    model.tick(1.0, table, serving, throttle)
    assert table.used_cpu_seconds("starting") == pytest.approx(0.5 * IDLE)
    assert model.dropped[s] > 0  # no endpoints: its arrivals are lost
