"""Contract-Net placement: bids a reader can recompute by hand, residency, carbon, trust, capacity, ties."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from tests.unit.observations import observation, web_service

from kubeagora.coordination import contract_net
from kubeagora.coordination.bus import Bus
from kubeagora.coordination.contract_net import (
    INTERFERENCE_BETA,
    NodeBid,
    NodeLedger,
    PlacementTask,
    announce,
    award,
    commit,
    ledger_from_observation,
    move_bids,
    move_many,
    place_by_contract_net,
    task_from_observation,
    tasks_from_observation,
)
from kubeagora.model import Node, NodeClass, Observation, Service, Tier
from kubeagora.sim.engine import INTERFERENCE, Engine
from kubeagora.sim.scenario import compile_scenario, load_scenario


def node(name: str, region: str = "region-0", cores: float = 4.0, node_class: NodeClass = NodeClass.CPU,
         accelerators: int = 0) -> Node:
    # 60 W idle, 200 W peak: 140 W of dynamic power at full utilisation
    return Node(name, Tier.CLOUD, region, f"{region}-z0", node_class, cores, 16.0, accelerators)


def cluster(nodes: tuple[Node, ...], services: tuple[Service, ...] | None = None, *,
            utilisation: Any = 0.0, rtt_ms: Any = None, carbon: dict[str, float] | None = None,
            arrival_rps: float = 160.0) -> Observation:
    """One `web` replica already Ready on node 0; two regions; users of every service in region-0."""
    obs = observation(nodes=nodes, services=services, arrival_rps=arrival_rps)
    regions = ("region-0", "region-1")
    if rtt_ms is None:
        rtt_ms = [[20.0 if n.region == r else 80.0 for n in nodes] for r in regions]
    return replace(
        obs,
        regions=regions,
        ingress_rtt_ms=np.asarray(rtt_ms, dtype=np.float64),
        region_carbon_g_per_kwh=carbon or {"region-0": 300.0, "region-1": 60.0},
        node_utilization=np.broadcast_to(np.asarray(utilisation, dtype=np.float64), (len(nodes),)).copy(),
    )


def test_the_node_coefficients_are_the_simulators() -> None:
    assert dict(INTERFERENCE_BETA) == INTERFERENCE


def test_bids_break_down_into_interference_carbon_and_network_a_reader_can_recompute() -> None:
    obs = cluster((node("a"), node("b"), node("c", "region-1")), utilisation=[0.0, 0.5, 0.0])
    bids = announce(task_from_observation(obs, 0), ledger_from_observation(obs))

    # the new replica's load: 160 req/s over 2 replicas × 25 ms / 4 slots = half its slots busy,
    # so it burns 0.5 core × (5 % idle + 95 % × 0.5) = 0.2625 core, 0.065625 of a 4-core node
    du = 0.2625 / 4
    carbon_g_per_h = 140.0 * du * 300.0 / 1000.0  # 140 W dynamic × Δu × 300 g/kWh
    a, b, c = bids
    # a: idle, but the existing web replica (25 ms per request) is slowed too
    assert a.interference_ms == pytest.approx(25 * 0.4 * du**2 + 25 * 0.4 * du**2)
    assert a.carbon_g_per_h == pytest.approx(carbon_g_per_h)
    assert a.network_ms == 20.0
    # all three nodes serve it in 25 ms (the fastest feasible), so each pays 25 ms × 1 of slowness
    assert a.slowness_ms == pytest.approx(25.0)
    assert a.cost_ms == pytest.approx(a.interference_ms + 5.0 * carbon_g_per_h + 20.0 + 25.0)
    # b: half busy already (no replicas of ours there): the replica's own requests pay 1 + β·u²
    assert b.interference_ms == pytest.approx(25 * 0.4 * (0.5 + du) ** 2)
    assert b.cost_ms == pytest.approx(b.interference_ms + 5.0 * carbon_g_per_h + 20.0 + 25.0)
    # c: a cleaner grid (60 g/kWh) does not make up for 60 ms more RTT
    assert c.carbon_g_per_h == pytest.approx(carbon_g_per_h * 60 / 300)
    assert c.network_ms == 80.0
    assert award(bids) == a
    assert a.cost_ms < b.cost_ms < c.cost_ms


def test_a_nearer_but_much_slower_node_loses_the_bid() -> None:
    """kube-proxy splits traffic evenly: a replica 3x slower than its siblings becomes the bottleneck."""
    fast = node("far-cpu")
    slow = node("near-mcu", cores=1.0, node_class=NodeClass.MCU)
    ingester = replace(web_service(cpu_request=0.25, memory_request_gib=0.125),
                       service_time_ms={NodeClass.CPU: 4.0, NodeClass.MCU: 12.0})
    obs = cluster((fast, slow), services=(ingester,), rtt_ms=[[30.0, 15.0], [90.0, 90.0]])
    bids = announce(task_from_observation(obs, 0), ledger_from_observation(obs))
    assert bids[1].slowness_ms == pytest.approx(12.0 * 3.0)
    assert award(bids) == bids[0]


def test_residency_makes_a_node_infeasible_whatever_its_cost() -> None:
    eu_only = web_service(allowed_regions=("region-1",))
    obs = cluster((node("near"), node("far", "region-1")), services=(eu_only,))
    bids = announce(task_from_observation(obs, 0), ledger_from_observation(obs))
    assert not bids[0].feasible
    assert bids[0].infeasible_reason == "data residency: region not allowed"
    assert bids[0].cost_ms == np.inf
    winner = award(bids)
    assert winner is not None
    assert winner.node == "far"
    assert "cannot host (data residency" in bids[0].explain()


def test_the_cleaner_grid_wins_between_otherwise_equal_nodes() -> None:
    obs = cluster((node("dirty", "region-0"), node("clean", "region-1")), rtt_ms=[[20.0, 20.0], [20.0, 20.0]],
                  carbon={"region-0": 600.0, "region-1": 60.0}, arrival_rps=0.0)
    obs = replace(obs, replica_service=np.zeros(0, np.int64), replica_node=np.zeros(0, np.int64),
                  replica_ready=np.zeros(0, bool))
    placed = place_by_contract_net(obs, 0, 1)
    assert [bid.node for _, bid in placed] == ["clean"]
    # an idle replica burns 5 % of its 0.5-core request: 140 W × 0.025 / 4 cores × 60 g/kWh
    assert placed[0][1].carbon_g_per_h == pytest.approx(140.0 * 0.025 / 4 * 60.0 / 1000.0)


def test_a_half_trusted_node_pays_its_cost_again_and_loses() -> None:
    obs = cluster((node("a"), node("b")), arrival_rps=0.0)
    obs = replace(obs, replica_service=np.zeros(0, np.int64), replica_node=np.zeros(0, np.int64),
                  replica_ready=np.zeros(0, bool))
    bids = announce(task_from_observation(obs, 0), ledger_from_observation(obs, trust={"a": 0.5}))
    assert bids[0].trust_markup_ms == pytest.approx(bids[1].cost_ms)
    assert bids[0].cost_ms == pytest.approx(2 * bids[1].cost_ms)
    assert award(bids) == bids[1]
    assert "distrust" in bids[0].explain()
    untrusted = announce(task_from_observation(obs, 0), ledger_from_observation(obs, trust={"a": 0.01}))
    assert untrusted[0].infeasible_reason == "node not trusted"


def test_ties_go_to_the_lowest_node_index() -> None:
    obs = cluster((node("a"), node("b"), node("c")), arrival_rps=0.0)
    obs = replace(obs, replica_service=np.zeros(0, np.int64), replica_node=np.zeros(0, np.int64),
                  replica_ready=np.zeros(0, bool))
    bids = announce(task_from_observation(obs, 0), ledger_from_observation(obs))
    assert bids[0].cost_ms == bids[1].cost_ms == bids[2].cost_ms
    assert award(tuple(reversed(bids))) == bids[0]
    assert award(()) is None


def test_successive_awards_see_the_load_and_capacity_of_earlier_ones() -> None:
    # two 1-core nodes; each 0.5-core replica takes half a node: four fit, the fifth does not
    obs = cluster((node("a", cores=1.0), node("b", cores=1.0)), arrival_rps=640.0)
    obs = replace(obs, node_cpu_allocated=np.zeros(2), replica_service=np.zeros(0, np.int64),
                  replica_node=np.zeros(0, np.int64), replica_ready=np.zeros(0, bool))
    placed = place_by_contract_net(obs, 0, 5)
    # the replica loads node a, so the second goes to the idle b, then they alternate
    assert [n for n, _ in placed] == [0, 1, 0, 1]
    assert placed[2][1].interference_ms > placed[0][1].interference_ms


def test_nodes_that_cannot_run_the_class_or_lack_accelerators_do_not_bid() -> None:
    llm = Service("llm", {NodeClass.GPU: 80.0}, cpu_request=1.0, accelerator_request=1)
    gpu_busy = node("gpu-busy", node_class=NodeClass.GPU, cores=8.0, accelerators=1)
    gpu_free = node("gpu-free", node_class=NodeClass.GPU, cores=8.0, accelerators=2)
    obs = cluster((node("cpu"), gpu_busy, gpu_free), services=(llm,), arrival_rps=10.0)
    obs = replace(obs, node_accelerators_allocated=np.array([0, 1, 0]))
    bids = announce(task_from_observation(obs, 0), ledger_from_observation(obs))
    assert [b.infeasible_reason for b in bids] == ["node class cannot run the service",
                                                   "not enough free accelerators", ""]
    placed = place_by_contract_net(obs, 0, 3)
    assert [n for n, _ in placed] == [2, 2]  # two accelerators free on gpu-free, then none anywhere


def test_a_quarantined_node_does_not_bid() -> None:
    obs = cluster((node("a"), node("b")))
    obs = replace(obs, node_quarantined=np.array([True, False]))
    bids = announce(task_from_observation(obs, 0), ledger_from_observation(obs))
    assert bids[0].infeasible_reason == "node not ready or quarantined"
    assert award(bids) == bids[1]


def test_contract_net_over_the_bus_awards_what_the_pure_functions_award() -> None:
    obs = cluster((node("a"), node("b"), node("c", "region-1")), utilisation=[0.3, 0.0, 0.0])
    ledger = ledger_from_observation(obs)
    bus = Bus()
    # each node answers the call for bids with its own bid (Smith's contractors)
    for n in range(len(obs.nodes)):
        bus.respond(PlacementTask, lambda task, n=n: announce(task, ledger)[n])
    bids = bus.request(task_from_observation(obs, 0), NodeBid)
    assert award(bids) == award(announce(task_from_observation(obs, 0), ledger))
    assert [b.node for b in bids] == ["a", "b", "c"]


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        place_by_contract_net(cluster((node("a"),)), 0, -1)


def _move_bids_one_host_at_a_time(task: PlacementTask, ledger: NodeLedger, host: int) -> tuple[NodeBid, NodeBid] | None:
    """The definition `move_bids` batches: the ledger less one replica on the host, `announce`, then
    `award` over the other nodes."""
    added = commit(task, ledger, host)
    without = replace(
        ledger,
        cpu_free=2 * ledger.cpu_free - added.cpu_free,
        memory_free_gib=2 * ledger.memory_free_gib - added.memory_free_gib,
        accelerators_free=2 * ledger.accelerators_free - added.accelerators_free,
        utilisation=np.clip(2 * ledger.utilisation - added.utilisation, 0.0, 1.0),
        colocated_service_ms=np.maximum(2 * ledger.colocated_service_ms - added.colocated_service_ms, 0.0),
    )
    bids = announce(task, without)
    if not bids[host].feasible:
        return None
    best = award([b for b in bids if b.node_index != host])
    return None if best is None else (bids[host], best)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_move_bids_for_all_hosts_at_once_equal_the_bids_one_host_at_a_time(seed: int,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = compile_scenario(*load_scenario("diurnal-mixed"), seed=seed)
    engine = Engine(scenario)
    for _ in range(30):
        engine.step()
    rng = np.random.default_rng(seed)
    obs = engine.observe()
    # busy nodes (some full: the re-bid must hand the replica's resources back first), and some distrust
    obs = replace(obs, node_utilization=rng.uniform(0.0, 1.0, len(obs.nodes)),
                  node_cpu_allocated=np.array([n.cpu_cores for n in obs.nodes]) * rng.uniform(0.5, 1.0, len(obs.nodes)))
    trust = {n.name: float(t) for n, t in zip(obs.nodes, rng.uniform(0.0, 1.0, len(obs.nodes)), strict=True)}
    ledger = ledger_from_observation(obs, trust)
    compared = 0
    rows: list[tuple[PlacementTask, int]] = []
    for s in range(len(obs.services)):
        task = task_from_observation(obs, s)
        hosts = sorted({int(n) for n in obs.replica_node[obs.replica_service == s]})
        batched = move_bids(task, ledger, hosts)
        assert batched == [_move_bids_one_host_at_a_time(task, ledger, h) for h in hosts]
        compared += sum(pair is not None for pair in batched)
        rows += [(task, h) for h in hosts]
    assert compared > 0  # some hosts could move a replica: there was something to compare
    # every service's hosts at once, in chunks of a few rows: the same bids
    monkeypatch.setattr(contract_net, "_MOVE_CHUNK_CELLS", 3 * len(obs.nodes))
    one_at_a_time = [_move_bids_one_host_at_a_time(t, ledger, h) for t, h in rows]
    moves = move_many([t for t, _ in rows], [h for _, h in rows], ledger)
    assert [moves.pair(r) for r in range(len(rows))] == one_at_a_time
    # the same with the service-time rows read from the run's table
    moves = move_many([t for t, _ in rows], [h for _, h in rows], ledger, services=obs.services)
    assert [moves.pair(r) for r in range(len(rows))] == one_at_a_time


def test_tasks_for_many_services_are_the_tasks_one_at_a_time() -> None:
    scenario = compile_scenario(*load_scenario("burst-hotspot"))
    engine = Engine(scenario)
    for _ in range(20):
        engine.step()
    obs = engine.observe()
    many = tasks_from_observation(obs, range(len(obs.services)))
    for s, task in enumerate(many):
        service = obs.services[s]
        replicas_after = int(obs.ready_replicas[s] + obs.pending_replicas[s]) + 1
        busy = (float(obs.arrival_rps[s]) / replicas_after * min(service.service_time_ms.values()) / 1000.0
                / max(service.concurrency, 1))
        origin = obs.regions.index(service.origin_region) if service.origin_region in obs.regions else 0
        assert task == PlacementTask(s, service, origin, float(np.clip(busy, 0.0, 1.0)))
